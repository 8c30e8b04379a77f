// mla::convert distill (optional stage): layer-wise distillation of a converted MLA layer towards its source
// GQA layer, by gradient descent through the attention softmax.
//
// The factorisation and the refit fit keys and values in closed form, but they see the softmax only through
// second moments. This stage minimises what the layer outputs, teacher-forced on the source model's attention
// inputs x (calibration windows):
//   L(theta) = sum_w ||MLA_theta(x_w) - GQA(x_w)||^2 / sum_w ||GQA(x_w)||^2
// over theta = {wq, w_dkv, w_kr, w_uk, w_uv, wo} and, when the layer has DeepSeek's latent RMSNorm
// (kv_a_layernorm), its weight gamma (which of them: distill_options). Biases, sinks, RoPE, the
// mask and every shape stay fixed, so the cache is as small as before and the layer stays executable by the
// kernels. Adam with each tensor's step scaled by that tensor's RMS (one learning rate fits every tensor),
// cosine-decayed. A fifth of the windows (at least one) is held out: the layer returned is the one with the
// lowest held-out loss seen, the input layer included, so the stage never makes the held-out loss worse.
//
// The gradient is written out by hand (naive form; shapes per head h, n tokens of one window):
//   S_h = scale (q_nope,h K_h^T + q_rope,h k_pe^T)  [n, n], K_h = c W_uk^h^T, V_h = c W_uv^h^T  [n, d]
//   P_h = masked softmax(S_h) (with the sink column), O_h = P_h V_h, out = [O_h] wo^T + bo
//   dS_h = scale P_h o (dP_h - rowsum(P_h o dP_h)), dP_h = dO_h V_h^T   (the sink has no value: dp_sink = 0)
//   RoPE is R(p) a with R(p)^T = R(-p) (attention factor included), so its backward is RoPE at -p.
//   Latent norm (optional): c = (c_raw / rms_t) * gamma, rms_t = sqrt(||c_raw,t||^2 / r + eps); with
//   chat = c_raw / rms_t and g = dc * gamma: d gamma = sum_t dc_t * chat_t, dc_raw,t = (g_t - chat_t (g_t . chat_t) / r) / rms_t.
//   Training through it lets a conversion heal what the norm costs in a DeepSeek-V3 export (deepseek_v3.hpp).
// distill_loss() exposes loss and gradient for a finite-difference check.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"
#include "mla/reference/rope.hpp"

namespace mla::convert {

struct distill_options {
  int steps = 0;                // Adam steps; 0 turns the stage off
  double learning_rate = 2e-3;  // per step, relative to each tensor's RMS
  int batch_windows = 2;        // windows per step
  int validate_every = 10;      // held-out evaluation period (steps)
  bool train_query = true;      // wq
  bool train_output = true;     // wo
  bool train_latent_norm = true;  // the latent norm's weight gamma, when the layer has one
  std::uint64_t seed = 1;       // window order
};

struct distill_report {
  double heldout_before = 0, heldout_after = 0;  // relative squared error L on the held-out windows
  int best_step = 0;                             // step of the returned layer (0: the input layer)
  int steps_run = 0;
};

// d L / d theta for the trained tensors (same shapes as the layer's).
template <class T>
struct distill_gradient {
  ref::matrix<T> wq, w_dkv, w_kr, w_uk, w_uv, wo;
  ref::vector<T> latent_norm;  // [latent_rank] or empty (layer without the norm)

  explicit distill_gradient(const ref::mla_layer<T>& l)
      : wq(ref::matrix<T>::Zero(l.wq.rows(), l.wq.cols())),
        w_dkv(ref::matrix<T>::Zero(l.w_dkv.rows(), l.w_dkv.cols())),
        w_kr(ref::matrix<T>::Zero(l.w_kr.rows(), l.w_kr.cols())),
        w_uk(ref::matrix<T>::Zero(l.w_uk.rows(), l.w_uk.cols())),
        w_uv(ref::matrix<T>::Zero(l.w_uv.rows(), l.w_uv.cols())),
        wo(ref::matrix<T>::Zero(l.wo.rows(), l.wo.cols())),
        latent_norm(ref::vector<T>::Zero(l.latent_norm.size())) {}
  void set_zero() {
    for (ref::matrix<T>* m : {&wq, &w_dkv, &w_kr, &w_uk, &w_uv, &wo}) m->setZero();
    latent_norm.setZero();
  }
};

namespace detail {

template <class T>
void check_distill_layer(const char* who, const ref::mla_layer<T>& l) {
  l.validate();
  check(!l.uses_latent_rope() && l.rope_dim > 0, who, ": the layer must have a decoupled RoPE key (rope_dim ",
        l.rope_dim, ", ", l.latent_rope_offsets.size(), " latent RoPE blocks)");
}

// Rotates the RoPE block [col, col + rope.dim) of every row t at position sign * t.
template <class T>
void rotate_rows(const ref::rope<T>& rot, ref::matrix<T>& m, Eigen::Index col, long sign) {
  for (Eigen::Index t = 0; t < m.rows(); ++t) rot.apply(m.data() + t * m.cols() + col, sign * long(t));
}

}  // namespace detail

// Loss sum ||out - y||^2 * inv_norm of one window x [n, hidden] (positions 0..n-1) against the target
// y [n, hidden]; when grad is given, adds d(loss)/d(theta) to it.
template <class T>
double distill_loss(const ref::mla_layer<T>& l, const ref::matrix<T>& x, const ref::matrix<T>& y, double inv_norm,
                    distill_gradient<T>* grad = nullptr) {
  using mat = ref::matrix<T>;
  const Eigen::Index n = x.rows();
  const int heads = l.n_heads, nope = l.nope_dim, rd = l.rope_dim, qk = nope + rd, dv = l.v_head_dim;
  const ref::rope<T> rot(l.rope);
  const T scale = static_cast<T>(l.attention.softmax_scale);

  mat q = ref::detail::linear(x, l.wq, l.bq);  // [n, heads*qk], RoPE on each head's last rd channels
  for (int h = 0; h < heads; ++h) detail::rotate_rows(rot, q, Eigen::Index(h) * qk + nope, 1);
  const bool normed = l.latent_norm.size() != 0;
  const mat c_raw = ref::detail::linear(x, l.w_dkv, l.b_dkv);  // [n, rank] before the optional latent norm
  ref::vector<T> inv_rms;                                       // [n] 1 / rms_t of c_raw (latent norm only)
  mat c_hat;                                                    // [n, rank] c_raw / rms_t
  if (normed) {
    inv_rms.resize(n);
    c_hat.resize(n, c_raw.cols());
    for (Eigen::Index t = 0; t < n; ++t) {
      const double ms = c_raw.row(t).template cast<double>().squaredNorm() / double(c_raw.cols());
      inv_rms[t] = static_cast<T>(1.0 / std::sqrt(ms + l.latent_norm_eps));
      c_hat.row(t) = c_raw.row(t) * inv_rms[t];
    }
  }
  const mat c = normed ? mat(c_hat * l.latent_norm.asDiagonal()) : c_raw;  // [n, rank] what is cached
  mat k_pe = ref::detail::linear(x, l.w_kr, l.b_kr);       // [n, rd]
  detail::rotate_rows(rot, k_pe, 0, 1);

  mat attn(n, Eigen::Index(heads) * dv);  // [n, heads*dv]
  std::vector<mat> probs(grad ? std::size_t(heads) : 0);
  mat k_h, v_h, p;
  for (int h = 0; h < heads; ++h) {
    k_h.noalias() = c * l.w_uk.middleRows(Eigen::Index(h) * nope, nope).transpose();  // [n, nope]
    v_h.noalias() = c * l.w_uv.middleRows(Eigen::Index(h) * dv, dv).transpose();      // [n, dv]
    p.noalias() = q.middleCols(Eigen::Index(h) * qk, nope) * k_h.transpose();
    p.noalias() += q.middleCols(Eigen::Index(h) * qk + nope, rd) * k_pe.transpose();
    p *= scale;
    const T* sink = l.sinks.size() != 0 ? &l.sinks[h] : nullptr;
    for (Eigen::Index t = 0; t < n; ++t) ref::detail::masked_softmax_row(p.data() + t * n, 0, n, t, l.attention, sink);
    attn.middleCols(Eigen::Index(h) * dv, dv).noalias() = p * v_h;
    if (grad) probs[std::size_t(h)] = p;
  }
  const mat out = ref::detail::linear(attn, l.wo, l.bo);
  const mat diff = out - y;
  const double loss = diff.template cast<double>().squaredNorm() * inv_norm;
  if (!grad) return loss;

  const mat d_out = diff * static_cast<T>(2 * inv_norm);  // [n, hidden]
  grad->wo.noalias() += d_out.transpose() * attn;
  const mat d_attn = d_out * l.wo;  // [n, heads*dv]
  mat d_q = mat::Zero(n, q.cols()), d_c = mat::Zero(n, c.cols()), d_kpe = mat::Zero(n, rd);
  mat d_p, d_k, d_v;
  for (int h = 0; h < heads; ++h) {
    const auto w_uk_h = l.w_uk.middleRows(Eigen::Index(h) * nope, nope);
    const auto w_uv_h = l.w_uv.middleRows(Eigen::Index(h) * dv, dv);
    k_h.noalias() = c * w_uk_h.transpose();
    v_h.noalias() = c * w_uv_h.transpose();
    const mat& ph = probs[std::size_t(h)];
    const auto d_o = d_attn.middleCols(Eigen::Index(h) * dv, dv);  // [n, dv]
    d_v.noalias() = ph.transpose() * d_o;                           // [n, dv]
    d_p.noalias() = d_o * v_h.transpose();                          // [n, n]
    const ref::vector<T> row_dot = (ph.array() * d_p.array()).rowwise().sum();
    d_p = (ph.array() * (d_p.array().colwise() - row_dot.array())) * scale;  // now dS
    d_q.middleCols(Eigen::Index(h) * qk, nope).noalias() = d_p * k_h;
    d_q.middleCols(Eigen::Index(h) * qk + nope, rd).noalias() = d_p * k_pe;
    d_k.noalias() = d_p.transpose() * q.middleCols(Eigen::Index(h) * qk, nope);  // [n, nope]
    d_kpe.noalias() += d_p.transpose() * q.middleCols(Eigen::Index(h) * qk + nope, rd);
    d_c.noalias() += d_k * w_uk_h;
    d_c.noalias() += d_v * w_uv_h;
    grad->w_uk.middleRows(Eigen::Index(h) * nope, nope).noalias() += d_k.transpose() * c;
    grad->w_uv.middleRows(Eigen::Index(h) * dv, dv).noalias() += d_v.transpose() * c;
  }
  for (int h = 0; h < heads; ++h) detail::rotate_rows(rot, d_q, Eigen::Index(h) * qk + nope, -1);
  detail::rotate_rows(rot, d_kpe, 0, -1);
  grad->wq.noalias() += d_q.transpose() * x;
  grad->w_kr.noalias() += d_kpe.transpose() * x;
  if (normed) {
    grad->latent_norm.noalias() += (d_c.cwiseProduct(c_hat)).colwise().sum().transpose();
    const mat g = d_c * l.latent_norm.asDiagonal();  // d loss / d c_hat
    const ref::vector<T> g_dot = g.cwiseProduct(c_hat).rowwise().sum() / static_cast<T>(c_raw.cols());
    d_c = (g - g_dot.asDiagonal() * c_hat);
    d_c = inv_rms.asDiagonal() * d_c;  // now d loss / d c_raw
  }
  grad->w_dkv.noalias() += d_c.transpose() * x;
  return loss;
}

// Distils `init` towards given targets: window w's input inputs[w] [tokens, hidden] (positions from 0) should
// give targets[w] [tokens, hidden]. The sequential mode feeds the converted model's own inputs here with the
// source model's outputs as targets.
template <class T>
ref::mla_layer<T> distill_layer_to(const ref::mla_layer<T>& init, const std::vector<ref::matrix<T>>& inputs,
                                   const std::vector<ref::matrix<T>>& targets, const distill_options& opt,
                                   distill_report* report = nullptr) {
  const char* who = "mla::convert::distill_layer";
  detail::check_distill_layer(who, init);
  check(opt.steps >= 0 && opt.batch_windows > 0 && opt.validate_every > 0 && opt.learning_rate > 0, who,
        ": options need steps >= 0, batch_windows > 0, validate_every > 0 and learning_rate > 0 (found ", opt.steps,
        ", ", opt.batch_windows, ", ", opt.validate_every, ", ", opt.learning_rate, ")");
  check(inputs.size() >= 2, who, ": needs at least 2 calibration windows (one is held out), found ", inputs.size());
  check(targets.size() == inputs.size(), who, ": ", inputs.size(), " input windows but ", targets.size(), " targets");
  for (std::size_t w = 0; w < inputs.size(); ++w) {
    check(inputs[w].cols() == init.hidden && inputs[w].rows() > 0, who, ": window ", w, " is [", inputs[w].rows(),
          ", ", inputs[w].cols(), "], expected [tokens > 0, hidden = ", init.hidden, "]");
    check(targets[w].rows() == inputs[w].rows() && targets[w].cols() == init.hidden, who, ": target ", w, " is [",
          targets[w].rows(), ", ", targets[w].cols(), "], expected [", inputs[w].rows(), ", ", init.hidden, "]");
  }
  const std::vector<ref::matrix<T>>& windows = inputs;

  // The last fifth of the windows is held out.
  const std::size_t n_val = std::max<std::size_t>(1, windows.size() / 5), n_train = windows.size() - n_val;
  double val_norm = 0;
  for (std::size_t w = n_train; w < windows.size(); ++w) val_norm += targets[w].template cast<double>().squaredNorm();
  const double inv_val = val_norm > 0 ? 1.0 / val_norm : 1.0;
  auto heldout_loss = [&](const ref::mla_layer<T>& l) {
    double s = 0;
    for (std::size_t w = n_train; w < windows.size(); ++w) s += distill_loss(l, windows[w], targets[w], inv_val);
    return s;
  };

  ref::mla_layer<T> cur = init, best = init;
  double best_loss = heldout_loss(init);
  distill_report rep;
  rep.heldout_before = best_loss;

  // Trained tensors (flat views of `cur` and `g`), their Adam moments and step scales (RMS of the initial tensor).
  using flat = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
  distill_gradient<T> g(cur);
  std::vector<flat> params, grads;
  auto train = [&](T* p, T* dp, Eigen::Index size) { params.emplace_back(p, size), grads.emplace_back(dp, size); };
  train(cur.w_dkv.data(), g.w_dkv.data(), cur.w_dkv.size());
  train(cur.w_kr.data(), g.w_kr.data(), cur.w_kr.size());
  train(cur.w_uk.data(), g.w_uk.data(), cur.w_uk.size());
  train(cur.w_uv.data(), g.w_uv.data(), cur.w_uv.size());
  if (opt.train_query) train(cur.wq.data(), g.wq.data(), cur.wq.size());
  if (opt.train_output) train(cur.wo.data(), g.wo.data(), cur.wo.size());
  if (opt.train_latent_norm && cur.latent_norm.size() != 0)
    train(cur.latent_norm.data(), g.latent_norm.data(), cur.latent_norm.size());
  std::vector<Eigen::Array<T, Eigen::Dynamic, 1>> m1, m2;
  std::vector<double> step_scale;
  for (const flat& p : params) {
    m1.push_back(Eigen::Array<T, Eigen::Dynamic, 1>::Zero(p.size()));
    m2.push_back(Eigen::Array<T, Eigen::Dynamic, 1>::Zero(p.size()));
    step_scale.push_back(p.size() ? std::sqrt(p.template cast<double>().square().sum() / double(p.size())) : 0.0);
  }
  const double beta1 = 0.9, beta2 = 0.999, eps = 1e-12;

  std::mt19937_64 gen(opt.seed);
  std::vector<std::size_t> order(n_train);
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::size_t cursor = n_train;  // reshuffle at the first step
  for (int step = 1; step <= opt.steps; ++step) {
    g.set_zero();
    std::vector<std::size_t> batch;
    for (int b = 0; b < opt.batch_windows && b < int(n_train); ++b) {
      if (cursor == n_train) {
        std::shuffle(order.begin(), order.end(), gen);
        cursor = 0;
      }
      batch.push_back(order[cursor++]);
    }
    double norm = 0;
    for (std::size_t w : batch) norm += targets[w].template cast<double>().squaredNorm();
    for (std::size_t w : batch) distill_loss(cur, windows[w], targets[w], norm > 0 ? 1.0 / norm : 1.0, &g);

    const double lr = opt.learning_rate * 0.5 * (1.0 + std::cos(3.14159265358979323846 * (step - 1) / opt.steps));
    const double c1 = 1.0 - std::pow(beta1, step), c2 = 1.0 - std::pow(beta2, step);
    for (std::size_t i = 0; i < params.size(); ++i) {
      m1[i] = T(beta1) * m1[i] + T(1 - beta1) * grads[i];
      m2[i] = T(beta2) * m2[i] + T(1 - beta2) * grads[i].square();
      const T a = static_cast<T>(lr * step_scale[i] * std::sqrt(c2) / c1);
      params[i] -= a * m1[i] / (m2[i].sqrt() + T(eps));
    }
    rep.steps_run = step;
    if (step % opt.validate_every == 0 || step == opt.steps) {
      const double v = heldout_loss(cur);
      if (v < best_loss) {
        best_loss = v;
        best = cur;
        rep.best_step = step;
      }
    }
  }
  rep.heldout_after = best_loss;
  if (report) *report = rep;
  best.validate();
  return best;
}

// Teacher-forced: distils `init` (a conversion of `src`) on the calibration windows (each [tokens, hidden],
// positions from 0) towards the source layer's outputs on the same windows.
template <class T>
ref::mla_layer<T> distill_layer(const ref::gqa_layer<T>& src, const ref::mla_layer<T>& init,
                                const std::vector<ref::matrix<T>>& windows, const distill_options& opt,
                                distill_report* report = nullptr) {
  const char* who = "mla::convert::distill_layer";
  src.validate();
  check(init.hidden == src.hidden && init.n_heads == src.n_heads, who, ": layers do not match (hidden ", src.hidden,
        "/", init.hidden, ", heads ", src.n_heads, "/", init.n_heads, ")");
  std::vector<ref::matrix<T>> targets;
  for (std::size_t w = 0; w < windows.size(); ++w) {
    check(windows[w].cols() == src.hidden && windows[w].rows() > 0, who, ": window ", w, " is [", windows[w].rows(),
          ", ", windows[w].cols(), "], expected [tokens > 0, hidden = ", src.hidden, "]");
    targets.push_back(ref::gqa_prefill(src, windows[w]));
  }
  return distill_layer_to(init, windows, targets, opt, report);
}

}  // namespace mla::convert
