// mla::model::decoder: the decoder forward shared by Llama-family, gpt-oss-shaped and converted MLA
// models (Eigen reference, compute in T), in three pieces that every forward of the library runs:
//   embed(tokens)                 x = embedding rows  [tokens, hidden]
//   layer_forward(l, x, ...)      h = x + attention(rms_norm(x))   (GQA, or MLA in its absorbed or naive form)
//                                 x = h + mlp(rms_norm(h))         (SwiGLU, or gpt-oss MoE when config.mlp == moe)
//   head(x)                       rms_norm(x) with the final norm; logits = head(x) * unembedding^T
// The per-layer step is also a free function on (config, layer weights, attention), so that code holding
// weights without a decoder (the conversion stages, convert/pipeline.hpp; the taped forward of the end-to-end
// distillation, convert/distill_model.hpp) runs this same step with its own attention and records.
// Decode runs each layer's attention on the backend chosen in decode_backends (attention_backend.hpp).
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/model/attention_backend.hpp"
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
  ref::matrix<T> embed;       // [vocab, hidden]
  ref::matrix<T> lm_head;     // [vocab, hidden]; empty when tied to embed
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
  // x: normalised MLP input [tokens, hidden] (the MoE router's input, for routing diagnostics).
  virtual void mlp_input(int /*layer*/, const ref::matrix<T>& /*x*/) {}
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

namespace detail {
// Keeps a parameter out of template argument deduction (std::type_identity in C++20), so nullptr passes.
template <class X>
struct non_deduced {
  using type = X;
};
}  // namespace detail

// What one layer step keeps for a backward pass through it (convert/distill_model.hpp), for a window of n tokens.
template <class T>
struct layer_record {
  ref::matrix<T> x;                  // [n, hidden] the layer's input
  ref::matrix<T> xn;                 // [n, hidden] rms_norm(x): the attention input
  ref::matrix<T> h;                  // [n, hidden] x + attention(xn)
  ref::matrix<T> mn;                 // [n, hidden] rms_norm(h): the MLP input
  ref::swiglu_intermediates<T> mlp;  // the SwiGLU pre-activations (left empty for MoE)
};

// Embedding rows [tokens, hidden] of `tokens` (each checked against the vocabulary; `who` names the caller).
template <class T>
ref::matrix<T> embed(const model_config& cfg, const ref::matrix<T>& embedding, const std::vector<int>& tokens,
                     const char* who) {
  ref::matrix<T> x(static_cast<Eigen::Index>(tokens.size()), cfg.hidden);
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    check(tokens[t] >= 0 && tokens[t] < cfg.vocab_size, who, ": token id ", tokens[t], " at index ", t,
          " is outside the vocabulary [0, ", cfg.vocab_size, ")");
    x.row(static_cast<Eigen::Index>(t)) = embedding.row(tokens[t]);
  }
  return x;
}

// The layer's attention on a chunk xn [n, hidden] (positions from the caches' length on), through the cache of
// its kind: [n, hidden]. Fresh caches give a window at positions 0..n-1.
template <class T>
ref::matrix<T> prefill_attention(attention_kind kind, const layer_weights<T>& lw, const ref::matrix<T>& xn,
                                 ref::gqa_cache<T>& gqa_cache, ref::mla_cache<T>& mla_cache, ref::mla_form form) {
  if (kind == attention_kind::gqa) return ref::gqa_prefill(lw.gqa, xn, gqa_cache);
  return ref::mla_prefill(lw.mla, xn, mla_cache, form);
}

// One decoder layer l on the residual stream x [n, hidden], in place:
//   xn = rms_norm(x);  x += attention(xn);  x += mlp(rms_norm(x))
// attention(xn) -> [n, hidden] is the caller's (prefill through a session's cache, a decode backend, a taped
// forward). obs sees attention_input(l, xn, first_pos), attention_output(l, .), mlp_input(l, mn), layer_output(l, x)
// as the decoder's forward always showed them; record, when given, keeps the step's values for a backward pass.
template <class T, class Attention>
void layer_forward(const model_config& cfg, int l, const layer_weights<T>& lw, ref::matrix<T>& x, Attention&& attention,
                   typename detail::non_deduced<observer<T>>::type* obs = nullptr, long first_pos = 0,
                   typename detail::non_deduced<layer_record<T>>::type* record = nullptr) {
  ref::matrix<T> xn = ref::rms_norm(x, lw.attn_norm, cfg.rms_eps);
  if (obs) obs->attention_input(l, xn, first_pos);
  const ref::matrix<T> a = attention(static_cast<const ref::matrix<T>&>(xn));
  if (obs) obs->attention_output(l, a);
  if (record) record->x = x;
  x += a;
  ref::matrix<T> mn = ref::rms_norm(x, lw.mlp_norm, cfg.rms_eps);
  if (record) record->h = x;
  if (obs) obs->mlp_input(l, mn);
  if (cfg.mlp == mlp_kind::moe)
    x += lw.moe.forward(mn);
  else
    x += lw.mlp.forward(mn, record ? &record->mlp : nullptr);
  if (obs) obs->layer_output(l, x);
  if (record) record->xn = std::move(xn), record->mn = std::move(mn);
}

// Checks weights w against config (shapes, each layer's own validate()); throws mla::error naming the first
// mismatch. What a decoder checks when built, without building one (which would copy the weights).
template <class T>
void validate_model(const model_config& config, const model_weights<T>& w) {
  config.validate();
  const char* o = "mla::model::decoder";
  check(w.embed.rows() == config.vocab_size && w.embed.cols() == config.hidden, o, ": embedding is [", w.embed.rows(),
        ", ", w.embed.cols(), "], expected [vocab_size = ", config.vocab_size, ", hidden = ", config.hidden, "]");
  check(config.tied_embeddings == (w.lm_head.size() == 0), o, ": tied_embeddings = ", config.tied_embeddings,
        " but lm_head has ", w.lm_head.size(), " elements");
  if (w.lm_head.size())
    check(w.lm_head.rows() == config.vocab_size && w.lm_head.cols() == config.hidden, o, ": lm_head is [",
          w.lm_head.rows(), ", ", w.lm_head.cols(), "], expected [", config.vocab_size, ", ", config.hidden, "]");
  check(w.final_norm.size() == config.hidden, o, ": final norm has ", w.final_norm.size(), " entries, expected ",
        config.hidden);
  check(static_cast<int>(w.layers.size()) == config.n_layers, o, ": ", w.layers.size(), " layers of weights, expected ",
        config.n_layers);
  for (int l = 0; l < config.n_layers; ++l) {
    const auto& lw = w.layers[static_cast<std::size_t>(l)];
    check(lw.attn_norm.size() == config.hidden && lw.mlp_norm.size() == config.hidden, o, ": layer ", l, " norms have ",
          lw.attn_norm.size(), "/", lw.mlp_norm.size(), " entries, expected ", config.hidden);
    if (config.layers[static_cast<std::size_t>(l)].attention == attention_kind::gqa)
      lw.gqa.validate();
    else
      lw.mla.validate();
    if (config.mlp == mlp_kind::moe) {
      lw.moe.validate("mla::model::decoder: moe");
      check(lw.moe.hidden == config.hidden && lw.moe.intermediate == config.intermediate &&
                lw.moe.n_experts == config.n_experts && lw.moe.experts_per_token == config.experts_per_token,
            o, ": layer ", l, " MoE is hidden ", lw.moe.hidden, ", intermediate ", lw.moe.intermediate, ", ",
            lw.moe.n_experts, " experts top-", lw.moe.experts_per_token, "; the config says ", config.hidden, ", ",
            config.intermediate, ", ", config.n_experts, " top-", config.experts_per_token);
    } else {
      lw.mlp.validate("mla::model::decoder: mlp");
    }
  }
}

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
  // Which code runs decode attention (default: MLA on the CPU kernel where it applies, GQA on the reference).
  const decode_backends& backends() const { return backends_; }
  void set_backends(decode_backends b) { backends_ = b; }

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

  // Embedding rows [tokens, hidden] of `tokens`.
  ref::matrix<T> embed(const std::vector<int>& tokens) const {
    check(!tokens.empty(), "mla::model::decoder: empty token list");
    return model::embed(config_, w_.embed, tokens, "mla::model::decoder");
  }

  // Layer l on the residual stream x [n, hidden] of tokens appended to the session at s.length (the caller
  // advances s.length once every layer has run), prefilling the layer's cache.
  void layer_forward(int l, ref::matrix<T>& x, session<T>& s, observer<T>* obs = nullptr) const {
    const auto li = static_cast<std::size_t>(l);
    const attention_kind kind = config_.layers[li].attention;
    const layer_weights<T>& lw = w_.layers[li];
    model::layer_forward(
        config_, l, lw, x,
        [&](const ref::matrix<T>& xn) { return prefill_attention(kind, lw, xn, s.gqa[li], s.mla[li], mla_form_); }, obs,
        s.length);
  }

  // Final normalised hidden states [rows, hidden] of the last layer's output x [rows, hidden].
  ref::matrix<T> head(const ref::matrix<T>& x) const { return ref::rms_norm(x, w_.final_norm, config_.rms_eps); }

  // Final normalised hidden states [tokens, hidden] for `tokens` appended to the session.
  ref::matrix<T> hidden_states(session<T>& s, const std::vector<int>& tokens, observer<T>* obs = nullptr) const {
    ref::matrix<T> x = embed(tokens);
    for (int l = 0; l < config_.n_layers; ++l) layer_forward(l, x, s, obs);
    s.length += static_cast<long>(tokens.size());
    return head(x);
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

  // One decode step: appends `token` and returns its logits [vocab]. Runs the layers' decode paths, each
  // attention on the backend decode_backends() picks for its kind.
  ref::row_vector<T> decode(session<T>& s, int token) const {
    check(token >= 0 && token < config_.vocab_size, "mla::model::decoder: token id ", token,
          " is outside the vocabulary [0, ", config_.vocab_size, ")");
    ref::matrix<T> x = w_.embed.row(token);  // [1, hidden]
    for (int l = 0; l < config_.n_layers; ++l) {
      const auto li = static_cast<std::size_t>(l);
      const auto& lw = w_.layers[li];
      const bool gqa = config_.layers[li].attention == attention_kind::gqa;
      model::layer_forward(config_, l, lw, x, [&](const ref::matrix<T>& xn) -> ref::matrix<T> {
        const ref::row_vector<T> xr = xn;
        if (gqa) return model::gqa_decode(backends_.gqa, lw.gqa, xr, s.gqa[li]);
        return model::mla_decode(backends_.mla, lw.mla, xr, s.mla[li], mla_form_);
      });
    }
    s.length += 1;
    return logits(head(x));
  }

  const ref::matrix<T>& unembedding() const { return w_.lm_head.size() ? w_.lm_head : w_.embed; }

 private:
  void validate() const { validate_model(config_, w_); }

  model_config config_;
  model_weights<T> w_;
  ref::mla_form mla_form_;
  decode_backends backends_;
};

}  // namespace mla::model
