// mla::convert::convert_layer: a GQA layer + its calibration moments -> a decoupled DeepSeek-style MLA layer
// (nope_dim = head_dim, rope_dim = d_R, v_head_dim = head_dim, latent_rank = r).
//
// Per query head h of KV group j (E_j^T picks head j's d channels of the stacked g*d key space; B_R, B_N from
// the rope plan; P = [P_K; P_V], D from the factorisation):
//   wq rows of head h:   [W_q,h ; (E_j^T B_R)^T W_q,h]       [d + d_R, hidden]  (bq alike)
//   w_kr / b_kr:         B_R^T W_k / B_R^T b_k              [d_R, hidden]       the shared RoPE key
//   w_dkv / b_dkv:       D = [w_dkv, b_dkv]                  [r, hidden + 1]      biases folded exactly
//   w_uk^h:              af^2 * (E_j^T B_N) P_K              [d, r]
//   w_uv^h:              E_j^T P_V                           [d, r]
//   wo, bo, sinks, sliding window, softmax scale: carried over.
// af is the source RoPE attention factor (YaRN; 1 otherwise). RoPE multiplies q and k by it, so source
// logits carry af^2 on every channel; the rope part keeps it through the target RoPE config (same scaling
// fields), the NoPE part gets it folded into w_uk.
//
// Softmax scale: the reference layer keeps the source's scale (1/sqrt(d) for Llama), so scores are the
// same numbers. A DeepSeek export uses 1/sqrt(d + d_R) and must multiply the q rows (nope and rope) by
// sqrt((d + d_R) / d) (TransMLA's scale fix, conversion-methods.md §2.6); the RoPE rows must also be
// permuted to the interleaved layout there (formats.md §2.3). The reference keeps NeoX order.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <vector>

#include "mla/convert/calibration.hpp"
#include "mla/convert/factorize.hpp"
#include "mla/convert/rope_strategy.hpp"
#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"

namespace mla::convert {

struct convert_options {
  rope_options rope;
  factor_options factor;
  int rank = 0;  // latent rank r; 0: full rank 2*g*d - d_R (exact after the RoPE split)
};

// Full latent rank of a layer under a rope width: every NoPE key coordinate and every value channel.
inline int full_latent_rank(int n_kv_heads, int head_dim, int rope_dim) { return 2 * n_kv_heads * head_dim - rope_dim; }

// Assembles the MLA layer from the source, a rope plan and factors (see the header comment).
template <class T>
ref::mla_layer<T> assemble_mla_layer(const ref::gqa_layer<T>& src, const rope_plan& plan, const factorization& f) {
  const char* who = "mla::convert::assemble_mla_layer";
  src.validate();
  const int g = src.n_kv_heads, d = src.head_dim, dr = plan.rope_dim, hidden = src.hidden;
  const int n_k = plan.nope_count();
  const int r = static_cast<int>(f.down.rows());
  check(plan.n_kv_heads == g && plan.head_dim == d, who, ": rope plan is for ", plan.n_kv_heads, "x", plan.head_dim,
        " keys, layer has ", g, "x", d);
  check(f.down.cols() == hidden + 1 && f.up.rows() == n_k + g * d && f.up.cols() == r, who, ": factors are down [",
        f.down.rows(), ", ", f.down.cols(), "], up [", f.up.rows(), ", ", f.up.cols(),
        "], expected [r, hidden+1 = ", hidden + 1, "] and [2*g*d - d_R = ", n_k + g * d, ", r]");
  const double af = ref::rope<double>(src.rope).attention_factor();

  ref::mla_layer<T> m;
  m.hidden = hidden;
  m.n_heads = src.n_heads;
  m.nope_dim = d;
  m.rope_dim = dr;
  m.latent_rank = r;
  m.v_head_dim = d;

  const dmatrix wq = src.wq.template cast<double>();  // [n_h*d, hidden]
  const int qk = d + dr;
  dmatrix wq_new(Eigen::Index(src.n_heads) * qk, hidden);
  dvector bq_new;
  if (src.bq.size() != 0) bq_new.resize(Eigen::Index(src.n_heads) * qk);
  const dmatrix wk = src.wk.template cast<double>();
  dmatrix w_uk(Eigen::Index(src.n_heads) * d, r), w_uv(Eigen::Index(src.n_heads) * d, r);
  const auto b_r = plan.rope_basis();  // [g*d, d_R]
  const auto b_n = plan.nope_basis();  // [g*d, n_K]
  for (int h = 0; h < src.n_heads; ++h) {
    const Eigen::Index j = src.kv_head_of(h);
    const auto wq_h = wq.middleRows(Eigen::Index(h) * d, d);  // [d, hidden]
    const dmatrix r_j = b_r.middleRows(j * d, d);             // [d, d_R]
    wq_new.middleRows(Eigen::Index(h) * qk, d) = wq_h;
    wq_new.middleRows(Eigen::Index(h) * qk + d, dr).noalias() = r_j.transpose() * wq_h;
    if (src.bq.size() != 0) {
      const dvector bq_h = src.bq.segment(Eigen::Index(h) * d, d).template cast<double>();
      bq_new.segment(Eigen::Index(h) * qk, d) = bq_h;
      bq_new.segment(Eigen::Index(h) * qk + d, dr).noalias() = r_j.transpose() * bq_h;
    }
    if (n_k > 0)
      w_uk.middleRows(Eigen::Index(h) * d, d).noalias() = (af * af) * b_n.middleRows(j * d, d) * f.up.topRows(n_k);
    else
      w_uk.middleRows(Eigen::Index(h) * d, d).setZero();
    w_uv.middleRows(Eigen::Index(h) * d, d) = f.up.middleRows(n_k + j * d, d);
  }
  m.wq = wq_new.cast<T>();
  if (src.bq.size() != 0) m.bq = bq_new.cast<T>();
  m.w_dkv = f.down.leftCols(hidden).cast<T>();
  if (src.bk.size() != 0 || src.bv.size() != 0) m.b_dkv = f.down.col(hidden).cast<T>();
  m.w_kr = (b_r.transpose() * wk).template cast<T>();
  if (src.bk.size() != 0) {
    const dvector bk = src.bk.template cast<double>();
    m.b_kr = (b_r.transpose() * bk).template cast<T>();
  }
  m.w_uk = w_uk.cast<T>();
  m.w_uv = w_uv.cast<T>();
  m.wo = src.wo;
  m.bo = src.bo;
  if (f.value_offset.size() != 0) {  // centred factors: the value mean comes out of attention as is, through W_o
    check(f.value_offset.size() == Eigen::Index(g) * d, who, ": value offset has ", f.value_offset.size(),
          " entries, expected g*d = ", g * d);
    check(src.sinks.size() == 0, who, ": a value offset folds into bo only without sinks");
    dvector bo = src.bo.size() != 0 ? dvector(src.bo.template cast<double>()) : dvector::Zero(hidden);
    const dmatrix wo = src.wo.template cast<double>();  // [hidden, n_h*d]
    for (int h = 0; h < src.n_heads; ++h)
      bo.noalias() +=
          wo.middleCols(Eigen::Index(h) * d, d) * f.value_offset.segment(Eigen::Index(src.kv_head_of(h)) * d, d);
    m.bo = bo.cast<T>();
  }
  m.sinks = src.sinks;
  m.rope = target_rope_config(src.rope, plan);
  m.attention = src.attention;
  m.latent_rope_offsets.clear();
  m.validate();
  return m;
}

// A converted layer with what produced it (for reports and later stages).
template <class T>
struct converted_layer {
  ref::mla_layer<T> layer;
  rope_plan plan;
  factor_problem problem;
};

// Converts one layer: rope plan, factor problem, rank-r solution, assembly.
template <class T>
converted_layer<T> convert_layer(const ref::gqa_layer<T>& src, const layer_moments& stats, const convert_options& opt) {
  converted_layer<T> out;
  out.plan = make_rope_plan(src, stats, opt.rope);
  out.problem = make_factor_problem(src, out.plan, stats, opt.factor);
  const int rank = opt.rank > 0 ? opt.rank : out.problem.rows();
  out.layer = assemble_mla_layer(src, out.plan, solve_factor_problem(out.problem, rank));
  return out;
}

// Norm-wise relative error of the MLA layer's attention outputs against the GQA layer's over windows of
// inputs (each [tokens, hidden], positions from 0): sqrt(sum ||a - b||^2 / sum ||b||^2), in double.
template <class T>
double attention_output_error(const ref::gqa_layer<T>& src, const ref::mla_layer<T>& dst,
                              const std::vector<ref::matrix<T>>& windows,
                              ref::mla_form form = ref::mla_form::absorbed) {
  double num = 0, den = 0;
  for (const ref::matrix<T>& x : windows) {
    const ref::matrix<T> want = ref::gqa_prefill(src, x);
    const ref::matrix<T> got = ref::mla_prefill(dst, x, form);
    num += (got.template cast<double>() - want.template cast<double>()).squaredNorm();
    den += want.template cast<double>().squaredNorm();
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace mla::convert
