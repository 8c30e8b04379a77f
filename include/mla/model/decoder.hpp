// mla::model::decoder: the decoder forward shared by Llama-family, gpt-oss-shaped and converted MLA
// models (Eigen reference, compute in T). Per layer:
//   h   = x + attention(rms_norm(x))          (GQA, or MLA in its absorbed or naive form)
//   out = h + mlp(rms_norm(h))                 (SwiGLU, or gpt-oss MoE when config.mlp == moe)
// logits = rms_norm(out) * unembedding^T      (the embedding when tied)
#pragma once

#include <cstddef>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/model/model_config.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"
#include "mla/reference/mlp.hpp"
#include "mla/reference/moe.hpp"
#include "mla/reference/norms.hpp"

namespace mla::model {

template <class T>
struct layer_weights {
  ref::vector<T> attn_norm;  // [hidden]
  ref::vector<T> mlp_norm;   // [hidden]
  ref::gqa_layer<T> gqa;     // used when the layer's attention is GQA
  ref::mla_layer<T> mla;     // used when it is MLA
  ref::swiglu_mlp<T> mlp;    // used when the model's mlp is SwiGLU
  ref::moe_block<T> moe;     // used when it is MoE
};

template <class T>
struct model_weights {
  ref::matrix<T> embed;     // [vocab, hidden]
  ref::matrix<T> lm_head;   // [vocab, hidden]; empty when tied to embed
  ref::vector<T> final_norm;  // [hidden]
  std::vector<layer_weights<T>> layers;
};

// Observers see intermediate values of the forward (calibration, diagnostics, distillation).
// Every hook has an empty default; a null observer costs one branch per layer.
template <class T>
struct observer {
  virtual ~observer() = default;
  // x: normalised attention input [tokens, hidden]; first_pos: position of row 0.
  virtual void attention_input(int /*layer*/, const ref::matrix<T>& /*x*/, long /*first_pos*/) {}
  // out: attention output after o_proj [tokens, hidden].
  virtual void attention_output(int /*layer*/, const ref::matrix<T>& /*out*/) {}
  // h: residual stream after the layer [tokens, hidden].
  virtual void layer_output(int /*layer*/, const ref::matrix<T>& /*h*/) {}
};

// The per-sequence state: one KV cache per layer, of the layer's kind.
template <class T>
struct session {
  std::vector<ref::gqa_cache<T>> gqa;  // [n_layers]; used by GQA layers
  std::vector<ref::mla_cache<T>> mla;  // [n_layers]; used by MLA layers
  long length = 0;                     // tokens consumed

  // Bytes held by the caches as allocated (elements actually stored, times sizeof(T)); a sliding-window
  // layer's ring cache holds at most its window.
  std::size_t kv_bytes() const {
    std::size_t elements = 0;
    for (const auto& c : gqa) elements += static_cast<std::size_t>(c.k.size() + c.v.size());
    for (const auto& c : mla) elements += static_cast<std::size_t>(c.c.size() + c.k_pe.size());
    return elements * sizeof(T);
  }
};

template <class T>
class decoder {
 public:
  decoder(model_config config, model_weights<T> weights, ref::mla_form mla_form = ref::mla_form::absorbed)
      : config_(std::move(config)), w_(std::move(weights)), mla_form_(mla_form) {
    validate();
  }

  const model_config& config() const { return config_; }
  const model_weights<T>& weights() const { return w_; }
  ref::mla_form mla_form() const { return mla_form_; }
  void set_mla_form(ref::mla_form f) { mla_form_ = f; }

  // trim_windows: the GQA caches of sliding-window layers keep only the last `window` tokens (a ring
  // buffer), so their bytes stop growing at the window; false keeps every token (same logits).
  session<T> new_session(bool trim_windows = true) const {
    session<T> s;
    s.gqa.resize(static_cast<std::size_t>(config_.n_layers));
    s.mla.resize(static_cast<std::size_t>(config_.n_layers));
    if (trim_windows)
      for (int l = 0; l < config_.n_layers; ++l) {
        const layer_config& lc = config_.layers[static_cast<std::size_t>(l)];
        if (lc.attention == attention_kind::gqa && lc.sliding_window > 0)
          s.gqa[static_cast<std::size_t>(l)].window = lc.sliding_window;
      }
    return s;
  }

  // Final normalised hidden states [tokens, hidden] for `tokens` appended to the session.
  ref::matrix<T> hidden_states(session<T>& s, const std::vector<int>& tokens, observer<T>* obs = nullptr) const {
    check(!tokens.empty(), "mla::model::decoder: empty token list");
    ref::matrix<T> x(static_cast<Eigen::Index>(tokens.size()), config_.hidden);
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      check(tokens[t] >= 0 && tokens[t] < config_.vocab_size, "mla::model::decoder: token id ", tokens[t],
            " at index ", t, " is outside the vocabulary [0, ", config_.vocab_size, ")");
      x.row(static_cast<Eigen::Index>(t)) = w_.embed.row(tokens[t]);
    }
    const long first_pos = s.length;
    for (int l = 0; l < config_.n_layers; ++l) {
      const auto& lw = w_.layers[static_cast<std::size_t>(l)];
      const ref::matrix<T> xn = ref::rms_norm(x, lw.attn_norm, config_.rms_eps);
      if (obs) obs->attention_input(l, xn, first_pos);
      ref::matrix<T> a;
      if (config_.layers[static_cast<std::size_t>(l)].attention == attention_kind::gqa)
        a = ref::gqa_prefill(lw.gqa, xn, s.gqa[static_cast<std::size_t>(l)]);
      else
        a = ref::mla_prefill(lw.mla, xn, s.mla[static_cast<std::size_t>(l)], mla_form_);
      if (obs) obs->attention_output(l, a);
      x += a;
      x += mlp(lw, ref::rms_norm(x, lw.mlp_norm, config_.rms_eps));
      if (obs) obs->layer_output(l, x);
    }
    s.length += static_cast<long>(tokens.size());
    return ref::rms_norm(x, w_.final_norm, config_.rms_eps);
  }

  // Logits [rows, vocab] for final hidden states [rows, hidden].
  ref::matrix<T> logits(const ref::matrix<T>& hidden) const {
    ref::matrix<T> out;
    out.noalias() = hidden * unembedding().transpose();
    return out;
  }

  // Prefill (or continue) the session with `tokens`; logits [tokens, vocab].
  ref::matrix<T> forward(session<T>& s, const std::vector<int>& tokens, observer<T>* obs = nullptr) const {
    return logits(hidden_states(s, tokens, obs));
  }

  // Logits [tokens, vocab] of a fresh sequence.
  ref::matrix<T> forward(const std::vector<int>& tokens, observer<T>* obs = nullptr) const {
    session<T> s = new_session();
    return forward(s, tokens, obs);
  }

  // One decode step: appends `token` and returns its logits [vocab]. Uses the layers' decode paths.
  ref::row_vector<T> decode(session<T>& s, int token) const {
    check(token >= 0 && token < config_.vocab_size, "mla::model::decoder: token id ", token,
          " is outside the vocabulary [0, ", config_.vocab_size, ")");
    ref::row_vector<T> x = w_.embed.row(token);
    for (int l = 0; l < config_.n_layers; ++l) {
      const auto& lw = w_.layers[static_cast<std::size_t>(l)];
      const ref::row_vector<T> xn = ref::rms_norm(ref::matrix<T>(x), lw.attn_norm, config_.rms_eps);
      if (config_.layers[static_cast<std::size_t>(l)].attention == attention_kind::gqa)
        x += ref::gqa_decode(lw.gqa, xn, s.gqa[static_cast<std::size_t>(l)]);
      else
        x += ref::mla_decode(lw.mla, xn, s.mla[static_cast<std::size_t>(l)], mla_form_);
      const ref::matrix<T> mn = ref::rms_norm(ref::matrix<T>(x), lw.mlp_norm, config_.rms_eps);
      x += mlp(lw, mn);
    }
    s.length += 1;
    const ref::matrix<T> h = ref::rms_norm(ref::matrix<T>(x), w_.final_norm, config_.rms_eps);
    return logits(h);
  }

  const ref::matrix<T>& unembedding() const { return w_.lm_head.size() ? w_.lm_head : w_.embed; }

 private:
  ref::matrix<T> mlp(const layer_weights<T>& lw, const ref::matrix<T>& x) const {
    return config_.mlp == mlp_kind::moe ? lw.moe.forward(x) : lw.mlp.forward(x);
  }

  void validate() const {
    config_.validate();
    const char* o = "mla::model::decoder";
    check(w_.embed.rows() == config_.vocab_size && w_.embed.cols() == config_.hidden, o, ": embedding is [",
          w_.embed.rows(), ", ", w_.embed.cols(), "], expected [vocab_size = ", config_.vocab_size,
          ", hidden = ", config_.hidden, "]");
    check(config_.tied_embeddings == (w_.lm_head.size() == 0), o, ": tied_embeddings = ", config_.tied_embeddings,
          " but lm_head has ", w_.lm_head.size(), " elements");
    if (w_.lm_head.size())
      check(w_.lm_head.rows() == config_.vocab_size && w_.lm_head.cols() == config_.hidden, o, ": lm_head is [",
            w_.lm_head.rows(), ", ", w_.lm_head.cols(), "], expected [", config_.vocab_size, ", ", config_.hidden, "]");
    check(w_.final_norm.size() == config_.hidden, o, ": final norm has ", w_.final_norm.size(), " entries, expected ",
          config_.hidden);
    check(static_cast<int>(w_.layers.size()) == config_.n_layers, o, ": ", w_.layers.size(),
          " layers of weights, expected ", config_.n_layers);
    for (int l = 0; l < config_.n_layers; ++l) {
      const auto& lw = w_.layers[static_cast<std::size_t>(l)];
      check(lw.attn_norm.size() == config_.hidden && lw.mlp_norm.size() == config_.hidden, o, ": layer ", l,
            " norms have ", lw.attn_norm.size(), "/", lw.mlp_norm.size(), " entries, expected ", config_.hidden);
      if (config_.layers[static_cast<std::size_t>(l)].attention == attention_kind::gqa)
        lw.gqa.validate();
      else
        lw.mla.validate();
      if (config_.mlp == mlp_kind::moe) {
        lw.moe.validate("mla::model::decoder: moe");
        check(lw.moe.hidden == config_.hidden && lw.moe.intermediate == config_.intermediate &&
                  lw.moe.n_experts == config_.n_experts && lw.moe.experts_per_token == config_.experts_per_token,
              o, ": layer ", l, " MoE is hidden ", lw.moe.hidden, ", intermediate ", lw.moe.intermediate, ", ",
              lw.moe.n_experts, " experts top-", lw.moe.experts_per_token, "; the config says ", config_.hidden,
              ", ", config_.intermediate, ", ", config_.n_experts, " top-", config_.experts_per_token);
      } else {
        lw.mlp.validate("mla::model::decoder: mlp");
      }
    }
  }

  model_config config_;
  model_weights<T> w_;
  ref::mla_form mla_form_;
};

}  // namespace mla::model
