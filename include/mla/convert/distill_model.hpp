// mla::convert distill_model (optional stage): end-to-end distillation of a converted model towards the
// next-token distributions of its source model.
//
// The layer-wise stages (refit.hpp, distill.hpp) match each attention layer's output. What the converted model
// finally gets wrong is the distribution it predicts, after every layer's small error has gone through the MLPs,
// the norms and the later layers. This stage minimises, over calibration windows (positions from 0),
//   L(theta) = (1/N) sum_t KL(p_t || q_t),  p_t = softmax(source logits_t), q_t = softmax(converted logits_t)
// over the attention tensors of every converted (MLA) layer (those distill.hpp trains: w_dkv, w_kr, w_uk, w_uv and
// the latent norm's weight always, wq and wo unless distill_options says otherwise: the trainable sets `latent` and
// `attention`; the sinks with distill_options::train_sinks). At temperature T (distill_options::temperature) the
// training loss is
//   L_T(theta) = (T^2 / N) sum_t KL(p_t^T || q_t^T),  p_t^T = softmax(source logits_t / T), likewise q_t^T,
// whose gradient in the converted logits is (T / N) (q_t^T - p_t^T); the held-out loss stays L at T = 1. Embeddings,
// norms, MLPs (SwiGLU or gpt-oss's MoE), the layers left GQA (gpt-oss's sliding windows), biases and RoPE stay
// frozen, so the cache and every shape are unchanged. Adam as in
// distill.hpp (per-tensor RMS steps, cosine decay); the last fifth of the windows is held out and the model with the
// lowest held-out KL seen is kept, the input model included, so the stage never makes its held-out KL worse.
//
// The forward is the decoder's own layer step (model::layer_forward) with the attention run by
// detail::mla_forward_taped (distill.hpp) and a model::layer_record of what the backward needs. The backward
// pass through the model is written out by hand (shapes [n, .] per window of n tokens):
//   z = rms(x_L) U^T [n, vocab]:   dz_t = T (q_t^T - p_t^T) / N,  d(rms(x_L)) = dz U
//   layer: h = x + attn(rms(x)), out = h + mlp(rms(h)):   dh = dout + rms'(mlp'(dout)),  dx = dh + rms'(attn'(dh))
//   norms, SwiGLU, MoE (recomputed from its input, experts loaded one at a time) and frozen GQA layers (recomputed):
//   block_backward.hpp; MLA attention: detail::mla_backward (distill.hpp), which also returns d(input).
// model_distill_loss() exposes the loss and gradient for a finite-difference check.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "mla/convert/block_backward.hpp"
#include "mla/convert/distill.hpp"
#include "mla/convert/distill_state.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/core/error.hpp"
#include "mla/model/decoder.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/util/for_each_index.hpp"

namespace mla::convert {

namespace detail {

// Row-wise softmax of logits [n, vocab] / temperature, accumulated in double.
template <class T>
ref::matrix<T> softmax_rows(const ref::matrix<T>& z, double temperature = 1.0) {
  ref::matrix<T> p(z.rows(), z.cols());
  for (Eigen::Index t = 0; t < z.rows(); ++t) {
    const Eigen::RowVectorXd zt = z.row(t).template cast<double>() / temperature;
    const Eigen::RowVectorXd e = (zt.array() - zt.maxCoeff()).exp().matrix();
    p.row(t) = (e / e.sum()).template cast<T>();
  }
  return p;
}

// One decoder layer's forward values the backward pass needs: the step's (x, xn, h, mn, the SwiGLU gate and up
// pre-activations) and the attention's.
template <class T>
struct layer_tape {
  model::layer_record<T> step;
  mla_tape<T> attn;
};

inline bool is_mla_layer(const model::model_config& cfg, std::size_t l) {
  return cfg.layers[l].attention == model::attention_kind::mla;
}

template <class T>
void check_model_distill(const char* who, const model::model_config& cfg, const model::model_weights<T>& w) {
  check(static_cast<int>(w.layers.size()) == cfg.n_layers, who, ": weights for ", w.layers.size(),
        " layers, model has ", cfg.n_layers);
  int converted = 0;
  for (std::size_t l = 0; l < w.layers.size(); ++l)
    if (is_mla_layer(cfg, l)) {
      check_distill_layer(who, w.layers[l].mla);
      ++converted;
    }
  check(converted > 0, who, ": the model has no MLA layer to train (every layer is GQA)");
}

}  // namespace detail

// Next-token probabilities [tokens, vocab] of `model` on a fresh sequence, softmax(logits / temperature).
template <class T>
ref::matrix<T> next_token_probabilities(const model::decoder<T>& model, const std::vector<int>& tokens,
                                        double temperature = 1.0) {
  return detail::softmax_rows(model.forward(tokens), temperature);
}

// The teacher's next-token distributions p_t^T on one window of n tokens, as the end-to-end loss reads them: the
// whole [n, vocab] matrix, or (top-k) per position the k most probable tokens, their probabilities and the total
// of the rest. The top-k loss is the KL between the (k + 1)-bucket distributions (the k tokens and "the rest") of
// teacher and student, which is at most the whole KL and equal to it when the teacher's rest is 0; its gradient in
// the logits is T (q_v - p_v) on the k tokens and T q_v (1 - p_rest / q_rest) on the others.
template <class T>
struct teacher_targets {
  using index_matrix = Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  ref::matrix<T> dense;  // [n, vocab], or empty (top-k)
  index_matrix ids;      // [n, k] the k most probable tokens (top-k)
  ref::matrix<T> probs;  // [n, k] their probabilities (top-k)
  ref::vector<T> rest;   // [n] the other tokens' total probability (top-k)

  bool top_k() const { return dense.size() == 0; }
  Eigen::Index rows() const { return top_k() ? ids.rows() : dense.rows(); }
  // Bytes held: vocab x sizeof(T) per token whole, k (4 + sizeof(T)) + sizeof(T) top-k.
  std::size_t bytes() const {
    return std::size_t(dense.size() + probs.size() + rest.size()) * sizeof(T) +
           std::size_t(ids.size()) * sizeof(std::int32_t);
  }
};

// The targets of `model` on a fresh window of tokens at `temperature`: whole when top_k is 0, else the top_k
// most probable tokens per position (ties to the lower id).
template <class T>
teacher_targets<T> teacher_targets_of(const model::decoder<T>& model, const std::vector<int>& tokens,
                                      double temperature, int top_k) {
  teacher_targets<T> out;
  if (top_k <= 0) {
    out.dense = next_token_probabilities(model, tokens, temperature);
    return out;
  }
  const ref::matrix<T> z = model.forward(tokens);
  const Eigen::Index n = z.rows(), vocab = z.cols(), k = std::min<Eigen::Index>(top_k, vocab);
  out.ids.resize(n, k);
  out.probs.resize(n, k);
  out.rest.resize(n);
  std::vector<std::int32_t> order(static_cast<std::size_t>(vocab));
  for (Eigen::Index t = 0; t < n; ++t) {
    const Eigen::ArrayXd zt = z.row(t).transpose().template cast<double>().array() / temperature;
    const Eigen::ArrayXd e = (zt - zt.maxCoeff()).exp();
    const double sum = e.sum();
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](std::int32_t a, std::int32_t b) { return e[a] != e[b] ? e[a] > e[b] : a < b; });
    double kept = 0;
    for (Eigen::Index j = 0; j < k; ++j) {
      out.ids(t, j) = order[static_cast<std::size_t>(j)];
      out.probs(t, j) = static_cast<T>(e[order[static_cast<std::size_t>(j)]] / sum);
    }
    for (Eigen::Index j = k; j < vocab; ++j) kept += e[order[static_cast<std::size_t>(j)]];
    out.rest[t] = static_cast<T>(kept / sum);  // summed from the rest itself, not 1 - the k's total
  }
  return out;
}

namespace detail {

// weight * T^2 * KL of one position's targets against the model's logits z (double, already / T), and the
// gradient weight * T * d KL / d z into dz (a row of [vocab]).
template <class T, class Row>
double kl_and_gradient(const teacher_targets<T>& p, Eigen::Index t, const Eigen::RowVectorXd& zt, double weight,
                       double temperature, Row&& dz, std::vector<char>& in_k) {
  const double m = zt.maxCoeff();
  const double lse = m + std::log((zt.array() - m).exp().sum());
  const double scale = weight * temperature;
  double kl = 0;
  if (!p.top_k()) {
    for (Eigen::Index v = 0; v < zt.size(); ++v) {
      const double pv = double(p.dense(t, v)), log_q = zt[v] - lse;
      if (pv > 0) kl += pv * (std::log(pv) - log_q);
      dz(v) = static_cast<T>(scale * (std::exp(log_q) - pv));
    }
    return kl;
  }
  in_k.assign(static_cast<std::size_t>(zt.size()), 0);
  for (Eigen::Index j = 0; j < p.ids.cols(); ++j) in_k[static_cast<std::size_t>(p.ids(t, j))] = 1;
  double q_rest = 0;
  for (Eigen::Index v = 0; v < zt.size(); ++v)
    if (!in_k[static_cast<std::size_t>(v)]) q_rest += std::exp(zt[v] - lse);
  const double p_rest = double(p.rest[t]);
  q_rest = std::max(q_rest, 1e-300);
  if (p_rest > 0) kl += p_rest * (std::log(p_rest) - std::log(q_rest));
  const double rest_factor = 1.0 - p_rest / q_rest;
  for (Eigen::Index v = 0; v < zt.size(); ++v)
    if (!in_k[static_cast<std::size_t>(v)]) dz(v) = static_cast<T>(scale * std::exp(zt[v] - lse) * rest_factor);
  for (Eigen::Index j = 0; j < p.ids.cols(); ++j) {
    const Eigen::Index v = p.ids(t, j);
    const double pv = double(p.probs(t, j)), log_q = zt[v] - lse;
    if (pv > 0) kl += pv * (std::log(pv) - log_q);
    dz(v) = static_cast<T>(scale * (std::exp(log_q) - pv));
  }
  return kl;
}

}  // namespace detail

// weight * T^2 * sum_t KL(p_t || q_t) of the model (cfg, w) on one window of tokens (positions from 0), where
// teacher_p [tokens, vocab] holds the p_t (the teacher's distributions at the same temperature T) and q_t are the
// model's own next-token distributions at temperature T, softmax(logits / T). When grad is given ([n_layers],
// shaped like each layer's MLA weights), adds d(loss)/d(theta) to it.
template <class T>
double model_distill_loss(const model::model_config& cfg, const model::model_weights<T>& w,
                          const std::vector<int>& tokens, const teacher_targets<T>& teacher_p, double weight,
                          std::vector<distill_gradient<T>>* grad = nullptr, double temperature = 1.0) {
  using mat = ref::matrix<T>;
  const char* who = "mla::convert::model_distill_loss";
  detail::check_model_distill(who, cfg, w);
  const auto n = static_cast<Eigen::Index>(tokens.size());
  if (teacher_p.top_k())
    check(n > 0 && teacher_p.ids.rows() == n && teacher_p.probs.rows() == n && teacher_p.rest.size() == n &&
              teacher_p.probs.cols() == teacher_p.ids.cols() && teacher_p.ids.cols() > 0 &&
              teacher_p.ids.cols() <= cfg.vocab_size &&
              (teacher_p.ids.array() >= 0 && teacher_p.ids.array() < cfg.vocab_size).all(),
          who, ": top-k teacher targets are [", teacher_p.ids.rows(), ", ", teacher_p.ids.cols(), "] ids, [",
          teacher_p.probs.rows(), ", ", teacher_p.probs.cols(), "] probabilities and ", teacher_p.rest.size(),
          " rests, expected [tokens = ", n, ", k <= vocab = ", cfg.vocab_size, "] with ids in the vocabulary");
  else
    check(n > 0 && teacher_p.dense.rows() == n && teacher_p.dense.cols() == cfg.vocab_size, who,
          ": teacher probabilities are [", teacher_p.dense.rows(), ", ", teacher_p.dense.cols(),
          "], expected [tokens = ", n, ", vocab = ", cfg.vocab_size, "]");
  check(!grad || static_cast<int>(grad->size()) == cfg.n_layers, who, ": ", grad ? grad->size() : 0,
        " layer gradients, model has ", cfg.n_layers, " layers");
  check(temperature > 0 && std::isfinite(temperature), who, ": temperature must be a finite number > 0, found ",
        temperature);
  std::vector<detail::layer_tape<T>> tape(grad ? static_cast<std::size_t>(cfg.n_layers) : 0);
  mat x = model::embed(cfg, w.embed, tokens, who);
  for (int l = 0; l < cfg.n_layers; ++l) {
    const auto& lw = w.layers[static_cast<std::size_t>(l)];
    detail::layer_tape<T>* tp = grad ? &tape[static_cast<std::size_t>(l)] : nullptr;
    const bool mla = detail::is_mla_layer(cfg, static_cast<std::size_t>(l));
    model::layer_forward(
        cfg, l, lw, x,
        [&](const mat& xn) {
          return mla ? detail::mla_forward_taped(lw.mla, xn, tp ? &tp->attn : nullptr) : ref::gqa_prefill(lw.gqa, xn);
        },
        nullptr, 0, tp ? &tp->step : nullptr);
  }
  const mat hn = ref::rms_norm(x, w.final_norm, cfg.rms_eps);
  const ref::matrix<T>& unembed = w.lm_head.size() ? w.lm_head : w.embed;
  mat dz(n, cfg.vocab_size);  // logits first, then d loss / d logits
  dz.noalias() = hn * unembed.transpose();
  double loss = 0;
  const double tt = temperature * temperature;
  std::vector<char> in_k;
  for (Eigen::Index t = 0; t < n; ++t) {
    const Eigen::RowVectorXd zt = dz.row(t).template cast<double>() / temperature;
    loss += weight * tt * detail::kl_and_gradient(teacher_p, t, zt, weight, temperature, dz.row(t), in_k);
  }
  if (!grad) return loss;

  mat d_hn;
  d_hn.noalias() = dz * unembed;                                   // [n, hidden]
  mat dx = rms_norm_backward(x, w.final_norm, cfg.rms_eps, d_hn);  // d loss / d (last layer's output)
  mat d_xn;
  for (int l = cfg.n_layers - 1; l >= 0; --l) {
    const auto& lw = w.layers[static_cast<std::size_t>(l)];
    const model::layer_record<T>& tp = tape[static_cast<std::size_t>(l)].step;
    // MLP: dx is d loss / d out, out = h + mlp(rms(h)).
    const mat d_mn =
        cfg.mlp == model::mlp_kind::moe ? moe_backward(lw.moe, tp.mn, dx) : swiglu_backward(lw.mlp, tp.mlp, dx);
    dx += rms_norm_backward(tp.h, lw.mlp_norm, cfg.rms_eps, d_mn);  // now d loss / d h
    // Attention: h = x + attn(rms(x)); a GQA layer is frozen, only its input gradient is needed.
    const auto li = static_cast<std::size_t>(l);
    if (detail::is_mla_layer(cfg, li)) {
      d_xn.resize(n, cfg.hidden);
      detail::mla_backward(lw.mla, tp.xn, tape[li].attn, dx, (*grad)[li], &d_xn);
    } else {
      d_xn = gqa_backward(lw.gqa, tp.xn, dx);
    }
    dx += rms_norm_backward(tp.x, lw.attn_norm, cfg.rms_eps, d_xn);  // now d loss / d x
  }
  return loss;
}

// The same with the teacher's whole distributions teacher_p [tokens, vocab].
template <class T>
double model_distill_loss(const model::model_config& cfg, const model::model_weights<T>& w,
                          const std::vector<int>& tokens, const ref::matrix<T>& teacher_p, double weight,
                          std::vector<distill_gradient<T>>* grad = nullptr, double temperature = 1.0) {
  teacher_targets<T> p;
  p.dense = teacher_p;
  return model_distill_loss(cfg, w, tokens, p, weight, grad, temperature);
}

// Saving and resuming the stage (distill_state.hpp). Every `every` steps (0: never) the state after that step is
// handed to `save` (which writes it, e.g. save_distill_state); with `resume` the stage continues from that state
// (its fingerprint must be this run's) instead of from step 0.
template <class T>
struct distill_checkpointing {
  int every = 0;
  std::function<void(const distill_model_state<T>&)> save;
  const distill_model_state<T>* resume = nullptr;
};

// The fingerprint of an end-to-end run (distill_state.hpp): the options that shape its trajectory, its token
// windows and the trained tensors of the model it starts from.
template <class T>
std::string distill_model_fingerprint(const model::model_weights<T>& w, const std::vector<std::vector<int>>& windows,
                                      const distill_options& opt) {
  detail::fnv1a fp;
  for (const auto v : {opt.steps, opt.batch_windows, opt.validate_every, int(opt.train_query), int(opt.train_output),
                       int(opt.train_latent_norm), int(opt.train_sinks), opt.teacher_top_k, int(sizeof(T))})
    fp.value(v);
  for (const double v : {opt.learning_rate, opt.temperature}) fp.value(v);
  fp.value(opt.seed);
  for (const auto& win : windows) {
    fp.value(win.size());
    fp.bytes(win.data(), win.size() * sizeof(int));
  }
  for (const auto& lw : w.layers)
    if (lw.mla.n_heads > 0)  // the MLA layers (a GQA layer's is empty)
      for (const auto& t : detail::trained_tensors(lw.mla, opt)) fp.bytes(t.first, std::size_t(t.second) * sizeof(T));
  return fp.hex();
}

// Distils the converted model conv (its MLA layers; GQA layers, SwiGLU or MoE MLPs kept) end to end towards
// `teacher` (the source model) on token windows (positions from 0; at least 2, the last fifth held out), with the
// options of distill.hpp (steps, learning rate, windows per step, which tensors train); the report's held-out losses
// are mean KL per token in nats at temperature 1, whatever opt.temperature the training loss uses. on_step(step, steps,
// held-out KL or NaN when not evaluated then) reports progress. With `heldout_inputs` ([n_layers][windows] the source
// model's normalised attention inputs on the stage report's held-out tokens) an "e2e" row is appended to conv.report:
// the teacher-forced attention error of every layer trained afterwards, comparable with the other stages' rows. `ckpt`
// saves the stage's state every few steps and resumes from a saved one. A step whose training loss or gradient, or a
// validation whose held-out loss, is not finite stops the stage with an error naming the step (conv then holds the
// weights before that step).
template <class T>
void distill_model(const model::decoder<T>& teacher, model_conversion<T>& conv,
                   const std::vector<std::vector<int>>& windows, const distill_options& opt,
                   distill_report* report = nullptr,
                   const std::function<void(int step, int steps, double heldout)>& on_step = {},
                   const std::vector<std::vector<ref::matrix<T>>>* heldout_inputs = nullptr,
                   const distill_checkpointing<T>& ckpt = {}) {
  const char* who = "mla::convert::distill_model";
  detail::check_model_distill(who, conv.config, conv.weights);
  detail::check_distill_options(who, opt);
  const auto n_layers = static_cast<std::size_t>(conv.config.n_layers);
  check(!heldout_inputs || heldout_inputs->size() == n_layers, who, ": held-out inputs for ",
        heldout_inputs ? heldout_inputs->size() : 0, " layers, model has ", n_layers);
  check(windows.size() >= 2, who, ": needs at least 2 token windows (one is held out), found ", windows.size());
  check(teacher.config().vocab_size == conv.config.vocab_size && teacher.config().hidden == conv.config.hidden, who,
        ": teacher (vocab ", teacher.config().vocab_size, ", hidden ", teacher.config().hidden,
        ") does not match the converted model (vocab ", conv.config.vocab_size, ", hidden ", conv.config.hidden, ")");
  for (std::size_t i = 0; i < windows.size(); ++i) check(!windows[i].empty(), who, ": token window ", i, " is empty");

  const std::size_t n_val = std::max<std::size_t>(1, windows.size() / 5), n_train = windows.size() - n_val;
  // The teacher's distributions per window (whole or top-k): the held-out ones always, the training ones when
  // they fit in opt.teacher_cache_bytes (else computed again at each step).
  const std::size_t k = opt.teacher_top_k > 0
                            ? std::min<std::size_t>(std::size_t(opt.teacher_top_k), std::size_t(conv.config.vocab_size))
                            : 0;
  const std::size_t per_token = k > 0 ? k * (sizeof(std::int32_t) + sizeof(T)) + sizeof(T)
                                      : static_cast<std::size_t>(conv.config.vocab_size) * sizeof(T);
  std::size_t train_bytes = 0;
  for (std::size_t i = 0; i < n_train; ++i) train_bytes += windows[i].size() * per_token;
  const bool cache_train = train_bytes <= opt.teacher_cache_bytes;
  // Training windows' at opt.temperature, held-out windows' at 1.
  std::vector<teacher_targets<T>> teacher_p(cache_train ? windows.size() : n_val);
  const std::size_t first_cached = cache_train ? 0 : n_train;
  util::for_each_index(teacher_p.size(), [&](std::size_t i) {
    const std::size_t wi = first_cached + i;
    teacher_p[i] = teacher_targets_of(teacher, windows[wi], wi < n_train ? opt.temperature : 1.0, opt.teacher_top_k);
  });
  auto teacher_of = [&](std::size_t i) -> const teacher_targets<T>& { return teacher_p[i - first_cached]; };
  long val_tokens = 0;
  for (std::size_t i = n_train; i < windows.size(); ++i) val_tokens += static_cast<long>(windows[i].size());
  auto heldout = [&](const model::model_weights<T>& w) {
    std::vector<double> part(n_val);
    util::for_each_index(n_val, [&](std::size_t i) {
      part[i] =
          model_distill_loss(conv.config, w, windows[n_train + i], teacher_of(n_train + i), 1.0 / double(val_tokens));
    });
    return std::accumulate(part.begin(), part.end(), 0.0);
  };

  model::model_weights<T>& cur = conv.weights;
  std::vector<std::size_t> trained;  // the MLA layers; GQA layers (gpt-oss's sliding windows) stay as they are
  for (std::size_t l = 0; l < n_layers; ++l)
    if (detail::is_mla_layer(conv.config, l)) trained.push_back(l);
  // Gradients hold only what is trained (no wq / wo for the latent set): at gpt-oss-20b size a whole layer's
  // gradient is ~140 MB, and the model's ~1.7 GB per window of a batch.
  auto new_gradients = [&] {
    std::vector<distill_gradient<T>> out;
    for (const auto& lw : cur.layers) out.emplace_back(lw.mla, opt.train_query, opt.train_output);
    return out;
  };
  std::vector<distill_gradient<T>> g = new_gradients();
  detail::rms_adam<T> adam;
  for (std::size_t l : trained) detail::train_layer(adam, cur.layers[l].mla, g[l], opt);
  // The trained tensors (adam's order): what a saved state holds, and (best) their values in the best model seen.
  std::vector<std::pair<T*, Eigen::Index>> cur_t;
  for (std::size_t l : trained)
    for (const auto& t : detail::trained_tensors(cur.layers[l].mla, opt)) cur_t.push_back(t);
  using array = typename distill_model_state<T>::array;
  auto as_array = [](const std::pair<T*, Eigen::Index>& t) { return Eigen::Map<array>(t.first, t.second); };
  std::vector<array> best;
  for (const auto& t : cur_t) best.push_back(as_array(t));
  auto keep_best = [&] {
    for (std::size_t i = 0; i < cur_t.size(); ++i) best[i] = as_array(cur_t[i]);
  };
  const std::string fingerprint = distill_model_fingerprint(cur, windows, opt);

  distill_report rep;  // held-out losses: mean KL per token (nats)
  std::vector<std::pair<int, double>> curve;
  detail::window_sampler sampler(n_train, opt.seed);
  int first_step = 1;
  double best_loss = 0;
  if (const distill_model_state<T>* st = ckpt.resume) {
    check(st->fingerprint == fingerprint, who, ": the saved state belongs to another run (fingerprint ",
          st->fingerprint, ", this run's ", fingerprint, "): other options, windows or starting weights");
    check(st->param.size() == cur_t.size() && st->step <= opt.steps, who, ": the saved state holds ", st->param.size(),
          " tensors at step ", st->step, ", this run trains ", cur_t.size(), " for ", opt.steps, " steps");
    for (std::size_t i = 0; i < cur_t.size(); ++i) {
      check(st->param[i].size() == cur_t[i].second && st->best[i].size() == cur_t[i].second, who, ": saved tensor ", i,
            " has ", st->param[i].size(), " elements, expected ", cur_t[i].second);
      as_array(cur_t[i]) = st->param[i];
      best[i] = st->best[i];
      adam.restore(i, st->m1[i], st->m2[i], st->scale[i]);
    }
    best_loss = st->best_loss;
    rep.heldout_before = st->heldout_before;
    rep.best_step = st->best_step;
    rep.steps_run = st->step;
    curve = st->curve;
    for (int s = 1; s <= st->step; ++s) sampler.next(opt.batch_windows);  // the same window order from here on
    first_step = st->step + 1;
  } else {
    best_loss = heldout(cur);
    check(std::isfinite(best_loss), who, ": the held-out KL of the input model is ", best_loss);
    rep.heldout_before = best_loss;
  }
  auto save_state = [&](int step) {
    distill_model_state<T> st;
    st.fingerprint = fingerprint;
    st.step = step;
    st.best_step = rep.best_step;
    st.heldout_before = rep.heldout_before;
    st.best_loss = best_loss;
    st.curve = curve;
    for (std::size_t i = 0; i < cur_t.size(); ++i) {
      st.param.push_back(as_array(cur_t[i]));
      st.best.push_back(best[i]);
      st.m1.push_back(adam.first_moment(i));
      st.m2.push_back(adam.second_moment(i));
      st.scale.push_back(adam.scale(i));
    }
    ckpt.save(st);
  };

  for (int step = first_step; step <= opt.steps; ++step) {
    const std::vector<std::size_t> batch = sampler.next(opt.batch_windows);
    long batch_tokens = 0;
    for (std::size_t i : batch) batch_tokens += static_cast<long>(windows[i].size());
    // A window per thread, each into its own gradients, summed into g; a batch of one straight into g (the same
    // sum: 0 + x), which at full size saves a whole set of gradients.
    const bool one = batch.size() == 1;
    std::vector<std::vector<distill_gradient<T>>> part(one ? 0 : batch.size());  // [batch][n_layers]
    std::vector<double> part_loss(batch.size());
    if (one)
      for (auto& gl : g) gl.set_zero();
    util::for_each_index(batch.size(), [&](std::size_t b) {
      if (!one) part[b] = new_gradients();
      std::vector<distill_gradient<T>>& into = one ? g : part[b];
      const std::vector<int>& toks = windows[batch[b]];
      const double w = 1.0 / double(batch_tokens);
      if (cache_train)
        part_loss[b] = model_distill_loss(conv.config, cur, toks, teacher_of(batch[b]), w, &into, opt.temperature);
      else
        part_loss[b] = model_distill_loss(conv.config, cur, toks,
                                          teacher_targets_of(teacher, toks, opt.temperature, opt.teacher_top_k), w,
                                          &into, opt.temperature);
    });
    double grad_sq = 0;
    for (std::size_t l = 0; l < g.size(); ++l) {
      if (!one) {
        g[l].set_zero();
        for (const auto& pb : part) g[l].add(pb[l]);
      }
      for (const auto& t : detail::trained_tensors(g[l], opt))
        grad_sq += Eigen::Map<const array>(t.first, t.second).template cast<double>().square().sum();
    }
    const double train_loss = std::accumulate(part_loss.begin(), part_loss.end(), 0.0);
    check(std::isfinite(train_loss) && std::isfinite(grad_sq), who, ": step ", step, " of ", opt.steps,
          ": the training loss is ", train_loss, " and the gradient's squared norm ", grad_sq,
          ", not finite (too large a learning rate?); stopped before applying it, the best model so far is from step ",
          rep.best_step);
    adam.step(detail::cosine_rate(opt.learning_rate, step, opt.steps), step);
    rep.steps_run = step;
    double v = std::nan("");
    if (step % opt.validate_every == 0 || step == opt.steps) {
      v = heldout(cur);
      check(std::isfinite(v), who, ": step ", step, " of ", opt.steps, ": the held-out KL is ", v,
            ", not finite (too large a learning rate?); the best model so far is from step ", rep.best_step);
      curve.emplace_back(step, v);
      if (v < best_loss) {
        best_loss = v;
        rep.best_step = step;
        keep_best();
      }
    }
    if (on_step) on_step(step, opt.steps, v);
    if (ckpt.every > 0 && ckpt.save && step % ckpt.every == 0 && step < opt.steps) save_state(step);
  }
  for (std::size_t i = 0; i < cur_t.size(); ++i) as_array(cur_t[i]) = best[i];
  for (std::size_t l : trained) cur.layers[l].mla.validate();
  rep.heldout_after = best_loss;
  rep.curve = std::move(curve);
  for (const auto& tp : teacher_p) rep.teacher_bytes += tp.bytes(), rep.teacher_tokens += long(tp.rows());
  if (report) *report = rep;
  if (heldout_inputs) {
    conv.report.push_back({"e2e", std::vector<double>(n_layers, 0.0)});
    for (std::size_t l : trained)
      conv.report.back().per_layer[l] =
          attention_output_error(teacher.weights().layers[l].gqa, cur.layers[l].mla, (*heldout_inputs)[l]);
  }
}

}  // namespace mla::convert
