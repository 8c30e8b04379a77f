// mla::convert distill (optional stage): layer-wise distillation of a converted MLA layer towards its source
// GQA layer, by gradient descent through the attention softmax.
//
// The factorisation and the refit fit keys and values in closed form, but they see the softmax only through
// second moments. This stage minimises what the layer outputs, teacher-forced on the source model's attention
// inputs x (calibration windows):
//   L(theta) = sum_w ||MLA_theta(x_w) - GQA(x_w)||^2 / sum_w ||GQA(x_w)||^2
// over theta = {wq, w_dkv, w_kr, w_uk, w_uv, wo} and, when the layer has DeepSeek's latent RMSNorm
// (kv_a_layernorm), its weight gamma, and, when it has them and distill_options::train_sinks says so, the
// per-head sink logits (which of them: distill_options). Biases, RoPE, the
// mask and every shape stay fixed, so the cache is as small as before and the layer stays executable by the
// kernels. Adam with each tensor's step scaled by that tensor's RMS (one learning rate fits every tensor),
// cosine-decayed. A fifth of the windows (at least one) is held out: the layer returned is the one with the
// lowest held-out loss seen, the input layer included, so the stage never makes the held-out loss worse.
//
// The gradient is written out by hand (naive form; shapes per head h, n tokens of one window):
//   S_h = scale (q_nope,h K_h^T + q_rope,h k_pe^T)  [n, n], K_h = c W_uk^h^T, V_h = c W_uv^h^T  [n, d]
//   P_h = masked softmax(S_h) (with the sink column), O_h = P_h V_h, out = [O_h] wo^T + bo
//   dS_h = scale P_h o (dP_h - rowsum(P_h o dP_h)), dP_h = dO_h V_h^T   (the sink has no value: dp_sink = 0)
//   d sink_h = -sum_t p_sink,t rowsum(P_h o dP_h)_t,  p_sink,t = 1 - rowsum(P_h)_t
//   RoPE is R(p) a with R(p)^T = R(-p) (attention factor included), so its backward is RoPE at -p.
//   Latent norm (optional): c = (c_raw / rms_t) * gamma, rms_t = sqrt(||c_raw,t||^2 / r + eps); with
//   chat = c_raw / rms_t and g = dc * gamma: d gamma = sum_t dc_t * chat_t, dc_raw,t = (g_t - chat_t (g_t . chat_t) /
//   r) / rms_t. Training through it lets a conversion heal what the norm costs in a DeepSeek-V3 export
//   (deepseek_v3.hpp).
// distill_loss() exposes loss and gradient for a finite-difference check.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/attention_probabilities.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"
#include "mla/reference/rope.hpp"

namespace mla::convert {

struct distill_options {
  int steps = 0;                  // Adam steps; 0 turns the stage off
  double learning_rate = 2e-3;    // per step, relative to each tensor's RMS
  int batch_windows = 2;          // windows per step
  int validate_every = 10;        // held-out evaluation period (steps)
  bool train_query = true;        // wq
  bool train_output = true;       // wo
  bool train_latent_norm = true;  // the latent norm's weight gamma, when the layer has one
  bool train_sinks = false;       // the per-head sink logits, when the layer has them (gpt-oss)
  std::uint64_t seed = 1;         // window order
  // distill_model only: the teacher's next-token distributions on the training windows are computed once and
  // kept when they take at most this many bytes (saves one teacher forward pass per window and step), and
  // recomputed at every step otherwise. The held-out windows' are always kept.
  std::size_t teacher_cache_bytes = std::size_t(4) << 30;
  // distill_model only: keep, per position, the teacher's k most probable next tokens and the total of the rest
  // (teacher_targets, distill_model.hpp: k (4 + sizeof(T)) + sizeof(T) bytes per token instead of vocab x
  // sizeof(T)); the loss is then the KL between the two (k + 1)-bucket distributions. 0: the whole distribution.
  int teacher_top_k = 0;
  // distill_model only: the training loss is T^2 KL(softmax(z_p / T) || softmax(z_q / T)) (Hinton et al.'s
  // scaling keeps the gradient's size as T changes; the audited toolkit used T = 2). The held-out loss that picks
  // the returned model is always the KL at T = 1, the distributions the model predicts with.
  double temperature = 1.0;
};

struct distill_report {
  double heldout_before = 0, heldout_after = 0;  // relative squared error L on the held-out windows
  int best_step = 0;                             // step of the returned layer (0: the input layer)
  int steps_run = 0;
  std::vector<std::pair<int, double>> curve;  // distill_model: (step, held-out loss) at each validation, resumed
                                              // runs' earlier ones included
  std::size_t teacher_bytes = 0;              // distill_model: bytes of the teacher's distributions kept
  long teacher_tokens = 0;                    // ... for this many tokens (held-out always, training when cached)
};

// d L / d theta for the trained tensors (same shapes as the layer's).
template <class T>
struct distill_gradient {
  ref::matrix<T> wq, w_dkv, w_kr, w_uk, w_uv, wo;
  ref::vector<T> latent_norm;  // [latent_rank] or empty (layer without the norm)
  ref::vector<T> sinks;        // [n_heads] or empty (layer without sinks)

  explicit distill_gradient(const ref::mla_layer<T>& l) : distill_gradient(l, true, true) {}
  // Shaped like l, without wq and wo (left empty: the backward then skips their two largest products) when
  // `query` / `output` say they are not trained. Every gradient added to this one must be made the same way.
  distill_gradient(const ref::mla_layer<T>& l, bool query, bool output)
      : wq(query ? ref::matrix<T>::Zero(l.wq.rows(), l.wq.cols()) : ref::matrix<T>()),
        w_dkv(ref::matrix<T>::Zero(l.w_dkv.rows(), l.w_dkv.cols())),
        w_kr(ref::matrix<T>::Zero(l.w_kr.rows(), l.w_kr.cols())),
        w_uk(ref::matrix<T>::Zero(l.w_uk.rows(), l.w_uk.cols())),
        w_uv(ref::matrix<T>::Zero(l.w_uv.rows(), l.w_uv.cols())),
        wo(output ? ref::matrix<T>::Zero(l.wo.rows(), l.wo.cols()) : ref::matrix<T>()),
        latent_norm(ref::vector<T>::Zero(l.latent_norm.size())),
        sinks(ref::vector<T>::Zero(l.sinks.size())) {}
  void set_zero() {
    for (ref::matrix<T>* m : {&wq, &w_dkv, &w_kr, &w_uk, &w_uv, &wo}) m->setZero();
    latent_norm.setZero();
    sinks.setZero();
  }
  void add(const distill_gradient& o) {
    wq += o.wq, w_dkv += o.w_dkv, w_kr += o.w_kr, w_uk += o.w_uk, w_uv += o.w_uv, wo += o.wo;
    latent_norm += o.latent_norm;
    sinks += o.sinks;
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

// What the backward pass of one MLA layer needs from its forward pass (one window of n tokens).
template <class T>
struct mla_tape {
  ref::matrix<T> q;                   // [n, heads*qk] queries, RoPE applied
  ref::vector<T> inv_rms;             // [n] 1 / rms_t of the raw latent (latent norm only)
  ref::matrix<T> c_hat;               // [n, rank] raw latent / rms_t (latent norm only)
  ref::matrix<T> c;                   // [n, rank] what is cached
  ref::matrix<T> k_pe;                // [n, rd] shared RoPE key, RoPE applied
  ref::matrix<T> attn;                // [n, heads*dv] per-head attention outputs before o_proj
  std::vector<ref::matrix<T>> probs;  // [heads] of [n, n] softmax probabilities
};

// The layer's naive prefill of x [n, hidden] (positions 0..n-1) -> [n, hidden]; fills `tape` when given.
template <class T>
ref::matrix<T> mla_forward_taped(const ref::mla_layer<T>& l, const ref::matrix<T>& x, mla_tape<T>* tape) {
  using mat = ref::matrix<T>;
  const Eigen::Index n = x.rows();
  const int heads = l.n_heads, nope = l.nope_dim, rd = l.rope_dim, qk = nope + rd, dv = l.v_head_dim;
  const ref::rope<T> rot(l.rope);
  const T scale = static_cast<T>(l.attention.softmax_scale);
  mla_tape<T> local;
  mla_tape<T>& tp = tape ? *tape : local;

  tp.q = ref::linear(x, l.wq, l.bq);  // RoPE on each head's last rd channels
  for (int h = 0; h < heads; ++h) rotate_rows(rot, tp.q, Eigen::Index(h) * qk + nope, 1);
  const bool normed = l.latent_norm.size() != 0;
  tp.c = ref::linear(x, l.w_dkv, l.b_dkv);  // raw latent first
  if (normed) {
    tp.inv_rms.resize(n);
    tp.c_hat.resize(n, tp.c.cols());
    for (Eigen::Index t = 0; t < n; ++t) {
      const double ms = tp.c.row(t).template cast<double>().squaredNorm() / double(tp.c.cols());
      tp.inv_rms[t] = static_cast<T>(1.0 / std::sqrt(ms + l.latent_norm_eps));
      tp.c_hat.row(t) = tp.c.row(t) * tp.inv_rms[t];
    }
    tp.c = tp.c_hat * l.latent_norm.asDiagonal();
  }
  tp.k_pe = ref::linear(x, l.w_kr, l.b_kr);
  rotate_rows(rot, tp.k_pe, 0, 1);

  tp.attn.resize(n, Eigen::Index(heads) * dv);
  tp.probs.assign(tape ? std::size_t(heads) : 0, mat());
  mat k_h, v_h, p;
  for (int h = 0; h < heads; ++h) {
    k_h.noalias() = tp.c * l.w_uk.middleRows(Eigen::Index(h) * nope, nope).transpose();  // [n, nope]
    v_h.noalias() = tp.c * l.w_uv.middleRows(Eigen::Index(h) * dv, dv).transpose();      // [n, dv]
    p.noalias() = tp.q.middleCols(Eigen::Index(h) * qk, nope) * k_h.transpose();
    p.noalias() += tp.q.middleCols(Eigen::Index(h) * qk + nope, rd) * tp.k_pe.transpose();
    p *= scale;
    const T* sink = l.sinks.size() != 0 ? &l.sinks[h] : nullptr;
    ref::masked_softmax(p, l.attention, sink);
    tp.attn.middleCols(Eigen::Index(h) * dv, dv).noalias() = p * v_h;
    if (tape) tp.probs[std::size_t(h)] = p;
  }
  return ref::linear(tp.attn, l.wo, l.bo);
}

// Backward of mla_forward_taped: given d_out = dL/d(out) [n, hidden], adds dL/d(theta) to grad and, when d_x
// is given, writes dL/dx [n, hidden] (for a model-level backward through the residual stream).
template <class T>
void mla_backward(const ref::mla_layer<T>& l, const ref::matrix<T>& x, const mla_tape<T>& tp,
                  const ref::matrix<T>& d_out, distill_gradient<T>& grad, ref::matrix<T>* d_x = nullptr) {
  using mat = ref::matrix<T>;
  const Eigen::Index n = x.rows();
  const int heads = l.n_heads, nope = l.nope_dim, rd = l.rope_dim, qk = nope + rd, dv = l.v_head_dim;
  const ref::rope<T> rot(l.rope);
  const T scale = static_cast<T>(l.attention.softmax_scale);
  const mat& c = tp.c;
  if (grad.wo.size() != 0) grad.wo.noalias() += d_out.transpose() * tp.attn;  // empty: wo not trained
  const mat d_attn = d_out * l.wo;                                            // [n, heads*dv]
  mat d_q = mat::Zero(n, tp.q.cols()), d_c = mat::Zero(n, c.cols()), d_kpe = mat::Zero(n, rd);
  mat k_h, v_h, d_p, d_k, d_v;
  for (int h = 0; h < heads; ++h) {
    const auto w_uk_h = l.w_uk.middleRows(Eigen::Index(h) * nope, nope);
    const auto w_uv_h = l.w_uv.middleRows(Eigen::Index(h) * dv, dv);
    k_h.noalias() = c * w_uk_h.transpose();
    v_h.noalias() = c * w_uv_h.transpose();
    const mat& ph = tp.probs[std::size_t(h)];
    const auto d_o = d_attn.middleCols(Eigen::Index(h) * dv, dv);  // [n, dv]
    d_v.noalias() = ph.transpose() * d_o;                          // [n, dv]
    d_p.noalias() = d_o * v_h.transpose();                         // [n, n]
    const ref::vector<T> row_dot = (ph.array() * d_p.array()).rowwise().sum();
    // The sink is one more (unscaled) logit with no value: d sink_h = -sum_t p_sink,t row_dot_t.
    if (l.sinks.size() != 0) grad.sinks[h] -= ((T(1) - ph.array().rowwise().sum()) * row_dot.array()).sum();
    d_p = (ph.array() * (d_p.array().colwise() - row_dot.array())) * scale;  // now dS
    d_q.middleCols(Eigen::Index(h) * qk, nope).noalias() = d_p * k_h;
    d_q.middleCols(Eigen::Index(h) * qk + nope, rd).noalias() = d_p * tp.k_pe;
    d_k.noalias() = d_p.transpose() * tp.q.middleCols(Eigen::Index(h) * qk, nope);  // [n, nope]
    d_kpe.noalias() += d_p.transpose() * tp.q.middleCols(Eigen::Index(h) * qk + nope, rd);
    d_c.noalias() += d_k * w_uk_h;
    d_c.noalias() += d_v * w_uv_h;
    grad.w_uk.middleRows(Eigen::Index(h) * nope, nope).noalias() += d_k.transpose() * c;
    grad.w_uv.middleRows(Eigen::Index(h) * dv, dv).noalias() += d_v.transpose() * c;
  }
  for (int h = 0; h < heads; ++h) rotate_rows(rot, d_q, Eigen::Index(h) * qk + nope, -1);
  rotate_rows(rot, d_kpe, 0, -1);
  if (grad.wq.size() != 0) grad.wq.noalias() += d_q.transpose() * x;  // empty: wq not trained
  grad.w_kr.noalias() += d_kpe.transpose() * x;
  if (l.latent_norm.size() != 0) {
    grad.latent_norm.noalias() += (d_c.cwiseProduct(tp.c_hat)).colwise().sum().transpose();
    const mat g = d_c * l.latent_norm.asDiagonal();  // d loss / d c_hat
    const ref::vector<T> g_dot = g.cwiseProduct(tp.c_hat).rowwise().sum() / static_cast<T>(c.cols());
    d_c = (g - g_dot.asDiagonal() * tp.c_hat);
    d_c = tp.inv_rms.asDiagonal() * d_c;  // now d loss / d c_raw
  }
  grad.w_dkv.noalias() += d_c.transpose() * x;
  if (d_x) {
    d_x->noalias() = d_q * l.wq;
    d_x->noalias() += d_kpe * l.w_kr;
    d_x->noalias() += d_c * l.w_dkv;
  }
}

// Adam over a set of tensors, each tensor's step scaled by its RMS at registration (so one learning rate fits
// tensors of very different scales); bias-corrected.
template <class T>
class rms_adam {
 public:
  void add(T* param, const T* grad, Eigen::Index size) {
    params_.emplace_back(param, size);
    grads_.emplace_back(grad, size);
    m1_.push_back(Eigen::Array<T, Eigen::Dynamic, 1>::Zero(size));
    m2_.push_back(Eigen::Array<T, Eigen::Dynamic, 1>::Zero(size));
    const auto& p = params_.back();
    scale_.push_back(size ? std::sqrt(p.template cast<double>().square().sum() / double(size)) : 0.0);
  }
  // The optimiser's state per registered tensor, in registration order (distill_state.hpp saves and restores it
  // so that a stopped run continues exactly): the moments and the RMS scale taken when it was registered.
  std::size_t tensors() const noexcept { return params_.size(); }
  const Eigen::Array<T, Eigen::Dynamic, 1>& first_moment(std::size_t i) const { return m1_[i]; }
  const Eigen::Array<T, Eigen::Dynamic, 1>& second_moment(std::size_t i) const { return m2_[i]; }
  double scale(std::size_t i) const { return scale_[i]; }
  void restore(std::size_t i, const Eigen::Array<T, Eigen::Dynamic, 1>& m1,
               const Eigen::Array<T, Eigen::Dynamic, 1>& m2, double scale) {
    check(i < params_.size() && m1.size() == params_[i].size() && m2.size() == params_[i].size(),
          "mla::convert::rms_adam::restore: tensor ", i, " of ", params_.size(), " has ",
          i < params_.size() ? params_[i].size() : 0, " elements, the state ", m1.size(), " and ", m2.size());
    m1_[i] = m1, m2_[i] = m2, scale_[i] = scale;
  }
  // Step number `step` (from 1) with learning rate lr (relative to each tensor's RMS).
  void step(double lr, int step) {
    const double beta1 = 0.9, beta2 = 0.999, eps = 1e-12;
    const double c1 = 1.0 - std::pow(beta1, step), c2 = 1.0 - std::pow(beta2, step);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      m1_[i] = T(beta1) * m1_[i] + T(1 - beta1) * grads_[i];
      m2_[i] = T(beta2) * m2_[i] + T(1 - beta2) * grads_[i].square();
      const T a = static_cast<T>(lr * scale_[i] * std::sqrt(c2) / c1);
      params_[i] -= a * m1_[i] / (m2_[i].sqrt() + T(eps));
    }
  }

 private:
  std::vector<Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>> params_;
  std::vector<Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>> grads_;
  std::vector<Eigen::Array<T, Eigen::Dynamic, 1>> m1_, m2_;
  std::vector<double> scale_;
};

// The layer's trained tensors (of `opt`) as (data, size), in a fixed order; Layer is ref::mla_layer<T> or
// distill_gradient<T> (the same members).
template <class Layer, class Options>
auto trained_tensors(Layer& l, const Options& opt) {
  using P = decltype(l.w_dkv.data());
  std::vector<std::pair<P, Eigen::Index>> out = {{l.w_dkv.data(), l.w_dkv.size()},
                                                 {l.w_kr.data(), l.w_kr.size()},
                                                 {l.w_uk.data(), l.w_uk.size()},
                                                 {l.w_uv.data(), l.w_uv.size()}};
  if (opt.train_query) out.push_back({l.wq.data(), l.wq.size()});
  if (opt.train_output) out.push_back({l.wo.data(), l.wo.size()});
  if (opt.train_latent_norm && l.latent_norm.size() != 0) out.push_back({l.latent_norm.data(), l.latent_norm.size()});
  if (opt.train_sinks && l.sinks.size() != 0) out.push_back({l.sinks.data(), l.sinks.size()});
  return out;
}

// Registers the layer's trained tensors (of `opt`) and their gradients with the optimiser.
template <class T, class Options>
void train_layer(rms_adam<T>& adam, ref::mla_layer<T>& l, distill_gradient<T>& g, const Options& opt) {
  const auto params = trained_tensors(l, opt);
  const auto grads = trained_tensors(g, opt);
  for (std::size_t i = 0; i < params.size(); ++i) adam.add(params[i].first, grads[i].first, params[i].second);
}

// Draws training windows [0, n) in epochs, each a fresh shuffle (seeded), `count` at a time (at most n).
class window_sampler {
 public:
  window_sampler(std::size_t n, std::uint64_t seed) : gen_(seed), order_(n), cursor_(n) {
    std::iota(order_.begin(), order_.end(), std::size_t(0));
  }
  std::vector<std::size_t> next(int count) {
    std::vector<std::size_t> batch;
    for (int b = 0; b < count && b < int(order_.size()); ++b) {
      if (cursor_ == order_.size()) {
        std::shuffle(order_.begin(), order_.end(), gen_);
        cursor_ = 0;
      }
      batch.push_back(order_[cursor_++]);
    }
    return batch;
  }

 private:
  std::mt19937_64 gen_;
  std::vector<std::size_t> order_;
  std::size_t cursor_;  // == order_.size(): reshuffle before the next draw
};

// Options both distillation stages accept.
inline void check_distill_options(const char* who, const distill_options& opt) {
  check(opt.steps >= 0 && opt.batch_windows > 0 && opt.validate_every > 0 && opt.learning_rate > 0, who,
        ": options need steps >= 0, batch_windows > 0, validate_every > 0 and learning_rate > 0 (found ", opt.steps,
        ", ", opt.batch_windows, ", ", opt.validate_every, ", ", opt.learning_rate, ")");
  check(opt.temperature > 0 && std::isfinite(opt.temperature), who, ": temperature must be a finite number > 0, found ",
        opt.temperature);
  check(opt.teacher_top_k >= 0, who, ": teacher_top_k must be >= 0 (0: the whole distribution), found ",
        opt.teacher_top_k);
}

// Cosine-decayed learning rate of step `step` (from 1) of `steps`.
inline double cosine_rate(double lr, int step, int steps) {
  return lr * 0.5 * (1.0 + std::cos(3.14159265358979323846 * (step - 1) / steps));
}

}  // namespace detail

// Loss sum ||out - y||^2 * inv_norm of one window x [n, hidden] (positions 0..n-1) against the target
// y [n, hidden]; when grad is given, adds d(loss)/d(theta) to it.
template <class T>
double distill_loss(const ref::mla_layer<T>& l, const ref::matrix<T>& x, const ref::matrix<T>& y, double inv_norm,
                    distill_gradient<T>* grad = nullptr) {
  detail::mla_tape<T> tape;
  const ref::matrix<T> diff = detail::mla_forward_taped(l, x, grad ? &tape : nullptr) - y;
  const double loss = diff.template cast<double>().squaredNorm() * inv_norm;
  if (grad) detail::mla_backward(l, x, tape, (diff * static_cast<T>(2 * inv_norm)).eval(), *grad);
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
  detail::check_distill_options(who, opt);
  check(inputs.size() >= 2, who, ": needs at least 2 calibration windows (one is held out), found ", inputs.size());
  check(targets.size() == inputs.size(), who, ": ", inputs.size(), " input windows but ", targets.size(), " targets");
  for (std::size_t w = 0; w < inputs.size(); ++w) {
    check(inputs[w].cols() == init.hidden && inputs[w].rows() > 0, who, ": window ", w, " is [", inputs[w].rows(), ", ",
          inputs[w].cols(), "], expected [tokens > 0, hidden = ", init.hidden, "]");
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

  // Trained tensors of `cur`, their gradients in `g`.
  distill_gradient<T> g(cur);
  detail::rms_adam<T> adam;
  detail::train_layer(adam, cur, g, opt);

  detail::window_sampler sampler(n_train, opt.seed);
  for (int step = 1; step <= opt.steps; ++step) {
    g.set_zero();
    const std::vector<std::size_t> batch = sampler.next(opt.batch_windows);
    double norm = 0;
    for (std::size_t w : batch) norm += targets[w].template cast<double>().squaredNorm();
    for (std::size_t w : batch) distill_loss(cur, windows[w], targets[w], norm > 0 ? 1.0 / norm : 1.0, &g);

    adam.step(detail::cosine_rate(opt.learning_rate, step, opt.steps), step);
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
