// mla::model::model_config: one description for Llama-family, gpt-oss and converted MLA models.
// Models differ in data (per-layer attention kind, window, sinks, biases), not in copies of the forward.
#pragma once

#include <algorithm>

#include <cmath>
#include <string>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/rope.hpp"

namespace mla::model {

enum class attention_kind { gqa, mla };

inline const char* to_string(attention_kind k) { return k == attention_kind::gqa ? "gqa" : "mla"; }

// The feed-forward: Llama's SwiGLU, or gpt-oss's routed experts with the clamped SwiGLU.
enum class mlp_kind { swiglu, moe };

inline const char* to_string(mlp_kind k) { return k == mlp_kind::swiglu ? "swiglu" : "moe"; }

struct layer_config {
  attention_kind attention = attention_kind::gqa;
  int sliding_window = 0;  // 0: full causal attention
  // MLA layers only (after conversion): latent rank and the decoupled RoPE width.
  int latent_rank = 0;
  int rope_dim = 0;
  // MLA layers: explicit inverse frequencies [rope_dim/2] of the decoupled RoPE key when they are not the
  // standard ladder of a rope_dim-wide RoPE (RoRoPE keeps source frequencies); empty: the standard ladder.
  std::vector<double> rope_inv_freq;
};

struct model_config {
  std::string architecture;  // "llama", "gpt_oss", ...
  int vocab_size = 0;
  int hidden = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int intermediate = 0;    // SwiGLU width, or per expert for MoE
  int context_length = 0;  // the model's trained context (metadata); evaluation may use less
  double rms_eps = 1e-5;
  double softmax_scale = 0;  // 0: 1/sqrt(head_dim)
  ref::rope_config rope;
  bool tied_embeddings = false;
  bool attention_bias = false;
  bool attention_sinks = false;
  mlp_kind mlp = mlp_kind::swiglu;
  // MoE only (formats.md §1.6): experts, top-k, and the clamped SwiGLU's limit (0: no clamp) and alpha.
  int n_experts = 0;
  int experts_per_token = 0;
  double swiglu_limit = 0;
  double swiglu_alpha = 1.702;
  int bos_id = -1;
  int eos_id = -1;
  std::vector<layer_config> layers;

  double effective_softmax_scale() const {
    return softmax_scale > 0 ? softmax_scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
  }

  // Elements of the KV cache per token for layer l: 2 * n_kv * head_dim for GQA, latent + RoPE for MLA.
  long kv_elements_per_token(int l) const {
    const layer_config& lc = layers.at(static_cast<std::size_t>(l));
    return lc.attention == attention_kind::gqa ? 2L * n_kv_heads * head_dim : long(lc.latent_rank) + lc.rope_dim;
  }

  // Cached elements of all layers for one sequence of `context` tokens, as the decoder holds them: a GQA
  // sliding-window layer keeps at most its window (a ring cache); every other layer, MLA included, all tokens.
  long kv_elements_at_context(long context) const {
    long total = 0;
    for (int l = 0; l < n_layers; ++l) {
      const layer_config& lc = layers.at(static_cast<std::size_t>(l));
      const bool ring = lc.attention == attention_kind::gqa && lc.sliding_window > 0;
      total += kv_elements_per_token(l) * (ring ? std::min(context, long(lc.sliding_window)) : context);
    }
    return total;
  }

  void validate() const {
    const char* o = "mla::model::model_config";
    check(vocab_size > 0, o, ": vocab_size must be > 0, found ", vocab_size);
    check(hidden > 0, o, ": hidden must be > 0, found ", hidden);
    check(n_layers > 0, o, ": n_layers must be > 0, found ", n_layers);
    check(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, o, ": n_heads (", n_heads,
          ") must be a positive multiple of n_kv_heads (", n_kv_heads, ")");
    check(head_dim > 0 && head_dim % 2 == 0, o, ": head_dim must be positive and even, found ", head_dim);
    check(intermediate > 0, o, ": intermediate must be > 0, found ", intermediate);
    check(static_cast<int>(layers.size()) == n_layers, o, ": ", layers.size(),
          " layer entries, expected n_layers = ", n_layers);
    check(rms_eps > 0, o, ": rms_eps must be > 0, found ", rms_eps);
    if (mlp == mlp_kind::moe) {
      check(n_experts > 0 && experts_per_token > 0 && experts_per_token <= n_experts, o,
            ": MoE needs 1 <= experts_per_token (", experts_per_token, ") <= n_experts (", n_experts, ")");
      check(swiglu_limit >= 0 && swiglu_alpha > 0, o, ": swiglu_limit must be >= 0 and swiglu_alpha > 0, found ",
            swiglu_limit, " and ", swiglu_alpha);
    }
    for (int l = 0; l < n_layers; ++l) {
      const layer_config& lc = layers[static_cast<std::size_t>(l)];
      check(lc.sliding_window >= 0, o, ": layer ", l, " sliding_window must be >= 0, found ", lc.sliding_window);
      if (lc.attention == attention_kind::mla)
        check(lc.latent_rank > 0 && lc.rope_dim >= 0, o, ": layer ", l, " is MLA but latent_rank = ", lc.latent_rank,
              ", rope_dim = ", lc.rope_dim);
    }
  }
};

}  // namespace mla::model
