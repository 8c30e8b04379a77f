// mla::convert refit (optional stage): closed-form ridge least-squares refits of a converted layer against the
// source GQA layer's attention on calibration tokens, in double: the value up-projection w_uv per head
// (refit_value_projection) and, optionally, o_proj across heads (refit_output_projection, at the end).
//
// Per query head h (KV group j), over every calibration token t:
//   x_h,t = sum_s p^MLA_h(t, s) c_s   [r]   what the converted layer's absorbed form multiplies W_uv^h with
//   o*_h,t = sum_s p^GQA_h(t, s) v_j,s [d]   the source head's attention output (before o_proj)
//   W_uv^h = argmin sum_t ||W_o,h (W x_h,t - o*_h,t)||^2 + lambda ||W - W0||^2
//          = (O*^T X + lambda W0) (X^T X + lambda I)^{-1},  lambda chosen by two-fold validation,
// shrinking towards the factorised W0 = W_uv^h (not towards 0): x_h are attention averages of latents, highly
// correlated across tokens, so a few hundred tokens under-determine r unknowns per output and a plain ridge
// over-fits (measured on a random 2-layer model: held-out error 0.2-0.4 -> 1.0-1.6 at r = 64-128 with
// 192 calibration tokens).
// Weighting by W_o,h does not change the minimiser when W_o,h has full column rank (d <= hidden), so the
// per-head solve is exact for that objective; coupling between heads through o_proj is ignored. The refit
// also compensates the converted layer's changed attention weights (errors of the keys and the RoPE cut),
// which the factorisation cannot see. Heads of one group get their own W_uv^h afterwards.
//
// After a centred factorisation (factorize.hpp) bo already carries the value mean, so the target is o*_h minus
// that head group's value_offset.
//
// x_h and o*_h are computed with the reference kernels on single-head probe layers whose o_proj is a
// selector [I; 0] (so it needs d <= hidden; the latent is read in chunks of at most hidden channels).
//
// Both refits take an optional `own_inputs` ([windows] of [tokens, hidden], same shapes as `windows`): the
// converted layer's regressors (x_h, z_t) are then computed on these (the converted model's own inputs, after
// its earlier layers) while the targets stay the source layer on `windows` (the source model's inputs). The
// sequential refit (pipeline.hpp) uses this so a layer also corrects part of the drift before it.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <vector>

#include "mla/convert/calibration.hpp"
#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"

namespace mla::convert {

struct refit_options {
  // Ridge relative to the mean eigenvalue of X^T X (shrinks towards the current W_uv or W_o); <= 0: chosen per
  // solve (per head for W_uv) by two-fold validation over even/odd windows, keeping the current weights when no
  // ridge validates better.
  double ridge = 0;
  int max_windows = 0;             // use only the first max_windows calibration windows; 0: all
  bool output_projection = false;  // pipeline: also refit o_proj (refit_output_projection) after w_uv
  // Sequential refit only (pipeline.hpp), with output_projection: the o_proj target also gets drift_weight times
  // the residual-stream drift before the layer (source stream minus the converted model's), so the layer also
  // cancels what the earlier layers left. 0: off.
  double drift_weight = 0;
};

namespace detail {

// [hidden, width] selector whose first `width` rows are I: out = attn * sel^T puts attn into columns [0, width).
template <class T>
ref::matrix<T> selector(int hidden, int width) {
  ref::matrix<T> s = ref::matrix<T>::Zero(hidden, width);
  s.topRows(width).setIdentity();
  return s;
}

// Sufficient statistics of min_W ||X W - Y||^2 in two folds (even / odd windows): X^T X, X^T Y, ||Y||^2.
struct least_squares_folds {
  dmatrix xtx[2], xty[2];
  double yy[2] = {0, 0};
  std::size_t windows = 0;
  least_squares_folds(Eigen::Index n, Eigen::Index m) {
    for (int f = 0; f < 2; ++f) {
      xtx[f] = dmatrix::Zero(n, n);
      xty[f] = dmatrix::Zero(n, m);
    }
  }
  void add(const dmatrix& x, const dmatrix& y) {  // x [tokens, n], y [tokens, m]: the next window
    const std::size_t f = windows++ % 2;
    xtx[f].noalias() += x.transpose() * x;
    xty[f].noalias() += x.transpose() * y;
    yy[f] += y.squaredNorm();
  }
  // ||X W - Y||^2 over one fold, from the statistics.
  double sq_error(int f, const dmatrix& w) const {
    return (w.transpose() * xtx[f] * w).trace() - 2.0 * (w.transpose() * xty[f]).trace() + yy[f];
  }
};

// W = (X^T X + lambda I)^{-1} (X^T Y + lambda W0): ridge shrinking towards w0 [n, m] (not towards 0, since the
// regressors are attention averages, highly correlated across tokens). ridge > 0: lambda = ridge * tr(X^T X)/n;
// otherwise lambda by two-fold validation over a grid, with "keep W0" a candidate too, so the refit never does
// worse than w0 on the validation folds.
inline dmatrix ridge_towards(const least_squares_folds& s, const dmatrix& w0, double ridge) {
  const dmatrix xtx_all = s.xtx[0] + s.xtx[1], xty_all = s.xty[0] + s.xty[1];
  const double scale = std::max(xtx_all.trace() / static_cast<double>(xtx_all.rows()), 1e-300);
  auto solve = [&](const dmatrix& a, const dmatrix& b, double lambda) -> dmatrix {
    dmatrix reg = a;
    reg.diagonal().array() += lambda;
    return reg.ldlt().solve(b + lambda * w0);
  };
  double best_lambda = -1;  // < 0: keep W0
  if (ridge > 0) {
    best_lambda = ridge * scale;
  } else if (s.windows >= 2) {
    double best_err = s.sq_error(0, w0) + s.sq_error(1, w0);
    for (double rel : {1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0}) {
      const double lambda = rel * scale;
      const double err = s.sq_error(1, solve(s.xtx[0], s.xty[0], lambda * 0.5)) +
                         s.sq_error(0, solve(s.xtx[1], s.xty[1], lambda * 0.5));  // a fold holds ~half the tokens
      if (err < best_err) {
        best_err = err;
        best_lambda = lambda;
      }
    }
  } else {
    best_lambda = 0;  // one window and no ridge given: plain least squares (tiny floor below)
  }
  return best_lambda < 0 ? w0 : solve(xtx_all, xty_all, std::max(best_lambda, 1e-12 * scale));
}

// The optional own inputs (or target shifts: `what`) must pair window by window with the source inputs.
template <class T>
void check_own_inputs(const char* who, const std::vector<ref::matrix<T>>& windows,
                      const std::vector<ref::matrix<T>>* own_inputs, const char* what = "own input") {
  if (!own_inputs) return;
  check(own_inputs->size() == windows.size(), who, ": ", own_inputs->size(), " ", what, " windows for ", windows.size(),
        " source input windows");
  for (std::size_t w = 0; w < windows.size(); ++w)
    check((*own_inputs)[w].rows() == windows[w].rows() && (*own_inputs)[w].cols() == windows[w].cols(), who, ": ", what,
          " window ", w, " is [", (*own_inputs)[w].rows(), ", ", (*own_inputs)[w].cols(), "], the source's is [",
          windows[w].rows(), ", ", windows[w].cols(), "]");
}

}  // namespace detail

template <class T>
ref::mla_layer<T> refit_value_projection(const ref::gqa_layer<T>& src, const ref::mla_layer<T>& dst,
                                         const std::vector<ref::matrix<T>>& windows, const refit_options& opt = {},
                                         const dvector& value_offset = {},
                                         const std::vector<ref::matrix<T>>* own_inputs = nullptr) {
  const char* who = "mla::convert::refit_value_projection";
  src.validate();
  dst.validate();
  check(!windows.empty(), who, ": no calibration windows");
  detail::check_own_inputs(who, windows, own_inputs);
  check(src.n_heads == dst.n_heads && src.hidden == dst.hidden && dst.v_head_dim == src.head_dim, who,
        ": layers do not match (heads ", src.n_heads, "/", dst.n_heads, ", hidden ", src.hidden, "/", dst.hidden,
        ", v_head_dim ", dst.v_head_dim, " vs head_dim ", src.head_dim, ")");
  const int d = src.head_dim, r = dst.latent_rank, hidden = src.hidden;
  check(d <= hidden, who, ": the probe needs head_dim (", d, ") <= hidden (", hidden, ")");
  check(value_offset.size() == 0 || value_offset.size() == Eigen::Index(src.n_kv_heads) * d, who, ": value offset has ",
        value_offset.size(), " entries, expected n_kv_heads * head_dim = ", src.n_kv_heads * d);

  const std::size_t nw = opt.max_windows > 0 ? std::min(windows.size(), std::size_t(opt.max_windows)) : windows.size();
  ref::mla_layer<T> out = dst;
  for (int h = 0; h < src.n_heads; ++h) {
    const int j = src.kv_head_of(h);
    // Source probe: one head with its KV group.
    ref::gqa_layer<T> gp;
    gp.hidden = hidden;
    gp.n_heads = gp.n_kv_heads = 1;
    gp.head_dim = d;
    gp.wq = src.wq.middleRows(Eigen::Index(h) * d, d);
    gp.wk = src.wk.middleRows(Eigen::Index(j) * d, d);
    gp.wv = src.wv.middleRows(Eigen::Index(j) * d, d);
    if (src.bq.size()) gp.bq = src.bq.segment(Eigen::Index(h) * d, d);
    if (src.bk.size()) gp.bk = src.bk.segment(Eigen::Index(j) * d, d);
    if (src.bv.size()) gp.bv = src.bv.segment(Eigen::Index(j) * d, d);
    if (src.sinks.size()) gp.sinks = src.sinks.segment(h, 1);
    gp.wo = detail::selector<T>(hidden, d);
    gp.rope = src.rope;
    gp.attention = src.attention;

    // MLA probe: one head, value up-projection = identity rows of one latent chunk.
    const int qk = dst.nope_dim + dst.rope_dim;
    ref::mla_layer<T> mp = dst;
    mp.n_heads = 1;
    mp.wq = dst.wq.middleRows(Eigen::Index(h) * qk, qk);
    if (dst.bq.size()) mp.bq = dst.bq.segment(Eigen::Index(h) * qk, qk);
    mp.w_uk = dst.w_uk.middleRows(Eigen::Index(h) * dst.nope_dim, dst.nope_dim);
    if (dst.sinks.size()) mp.sinks = dst.sinks.segment(h, 1);
    mp.bo.resize(0);

    detail::least_squares_folds stats(r, d);
    for (std::size_t wi = 0; wi < nw; ++wi) {
      const ref::matrix<T>& x = windows[wi];
      const ref::matrix<T>& xm = own_inputs ? (*own_inputs)[wi] : x;                 // what the converted layer sees
      dmatrix o_star = ref::gqa_prefill(gp, x).leftCols(d).template cast<double>();  // [tokens, d]
      // A centred conversion's value mean reaches the output through bo, so W_uv fits the rest.
      if (value_offset.size() != 0) o_star.rowwise() -= value_offset.segment(Eigen::Index(j) * d, d).transpose();
      dmatrix xh(x.rows(), r);  // [tokens, r]
      for (int c0 = 0; c0 < r; c0 += hidden) {
        const int cw = std::min(hidden, r - c0);
        mp.v_head_dim = cw;
        mp.w_uv = ref::matrix<T>::Zero(cw, r);
        mp.w_uv.middleCols(c0, cw).setIdentity();
        mp.wo = detail::selector<T>(hidden, cw);
        xh.middleCols(c0, cw) = ref::mla_prefill(mp, xm, ref::mla_form::absorbed).leftCols(cw).template cast<double>();
      }
      stats.add(xh, o_star);
    }
    const dmatrix w0 = dst.w_uv.middleRows(Eigen::Index(h) * d, d).transpose().template cast<double>();  // [r, d]
    const dmatrix w = detail::ridge_towards(stats, w0, opt.ridge);
    out.w_uv.middleRows(Eigen::Index(h) * d, d) = w.transpose().cast<T>();
  }
  out.validate();
  return out;
}

// Ridge refit of o_proj: W_o = argmin sum_t ||z_t W_o^T + b_o - y*_t||^2 + lambda ||W_o - W_o0||^2 over every
// calibration token t, where z_t [n_heads * v_head_dim] are the converted layer's per-head attention outputs
// (before o_proj) and y*_t [hidden] the source layer's output, plus row t of target_shift when given (the
// sequential refit's drift term); b_o stays. Unlike the per-head w_uv refit this couples the heads: one head's
// error can be compensated through the others' outputs. Same ridge rule as above (towards the current W_o, lambda
// by two-fold validation unless opt.ridge > 0); every other tensor is unchanged, so the cache and the shapes are
// as before.
template <class T>
ref::mla_layer<T> refit_output_projection(const ref::gqa_layer<T>& src, const ref::mla_layer<T>& dst,
                                          const std::vector<ref::matrix<T>>& windows, const refit_options& opt = {},
                                          const std::vector<ref::matrix<T>>* own_inputs = nullptr,
                                          const std::vector<ref::matrix<T>>* target_shift = nullptr) {
  const char* who = "mla::convert::refit_output_projection";
  src.validate();
  dst.validate();
  check(!windows.empty(), who, ": no calibration windows");
  detail::check_own_inputs(who, windows, own_inputs);
  detail::check_own_inputs(who, windows, target_shift, "target shift");
  check(src.hidden == dst.hidden, who, ": hidden sizes differ (", src.hidden, " vs ", dst.hidden, ")");
  const int hidden = dst.hidden, width = dst.n_heads * dst.v_head_dim;
  const std::size_t nw = opt.max_windows > 0 ? std::min(windows.size(), std::size_t(opt.max_windows)) : windows.size();

  // Probe: the same layer whose o_proj copies a chunk of at most `hidden` head-output columns, no bias.
  ref::mla_layer<T> probe = dst;
  probe.bo.resize(0);
  detail::least_squares_folds stats(width, hidden);
  for (std::size_t wi = 0; wi < nw; ++wi) {
    const ref::matrix<T>& x = windows[wi];
    const ref::matrix<T>& xm = own_inputs ? (*own_inputs)[wi] : x;  // what the converted layer sees
    dmatrix y = ref::gqa_prefill(src, x).template cast<double>();   // [tokens, hidden]
    if (dst.bo.size() != 0) y.rowwise() -= dst.bo.transpose().template cast<double>();
    if (target_shift) y += (*target_shift)[wi].template cast<double>();
    dmatrix z(x.rows(), width);  // [tokens, n_heads * v_head_dim]
    for (int c0 = 0; c0 < width; c0 += hidden) {
      const int cw = std::min(hidden, width - c0);
      probe.wo = ref::matrix<T>::Zero(hidden, width);
      probe.wo.block(0, c0, cw, cw).setIdentity();
      z.middleCols(c0, cw) = ref::mla_prefill(probe, xm, ref::mla_form::absorbed).leftCols(cw).template cast<double>();
    }
    stats.add(z, y);
  }
  const dmatrix w0 = dst.wo.transpose().template cast<double>();  // [width, hidden]
  ref::mla_layer<T> out = dst;
  out.wo = detail::ridge_towards(stats, w0, opt.ridge).transpose().cast<T>();
  out.validate();
  return out;
}

}  // namespace mla::convert
