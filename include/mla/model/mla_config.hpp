// The MLA fields of the project's checkpoint format: a Hugging Face config.json (model_type "llama" or "gpt_oss")
// with one extra object "mla" that says which layers are MLA and how each is shaped, and the tensor names of an
// MLA layer in model.safetensors. The rest of config.json is the architecture's own (gpt_oss: layer_types and
// sliding_window still say which layers slide, MLA ones included; rope_scaling applies to the decoupled key).
//
//   "mla": {
//     "format_version": 1,
//     "rope_layout": "neox",        // layout of the decoupled RoPE key and the q_rope rows (NeoX half-split)
//     "softmax_scale": 0.125,       // optional: the scores' scale (absent: 1/sqrt(head_dim), the source's)
//     "layers": [                   // one entry per layer
//       {"attention": "gqa"},
//       {"attention": "mla", "kv_lora_rank": r, "qk_rope_head_dim": d_R, "qk_nope_head_dim": d, "v_head_dim": d,
//        "rope_inv_freq": [d_R/2 doubles]}   // optional: explicit frequencies of the shared key (RoRoPE)
//     ]
//   }
//
// Tensors of MLA layer N (prefix "model.layers.N.self_attn."; PyTorch [out, in]; biases optional):
//   q_proj      [n_heads*(d+d_R), hidden]  per head d content rows, then d_R RoPE rows (NeoX)
//   kv_a_proj   [r, hidden]                latent down-projection (w_dkv)
//   kv_a_layernorm [r]                     optional: DeepSeek's latent RMSNorm weight (eps 1e-6), applied to the
//                                          latent before it is cached; written by mla-convert --latent-norm
//   k_rope_proj [d_R, hidden]              shared RoPE key (w_kr)
//   k_b_proj    [n_heads*d, r]             key up-projection (w_uk)
//   v_b_proj    [n_heads*d_v, r]           value up-projection (w_uv)
//   o_proj      [hidden, n_heads*d_v]
//   sinks       [n_heads]                  (no ".weight"; present exactly when the architecture has sinks: gpt_oss)
// Biases are "<stem>.bias" for q_proj [n_heads*(d+d_R)], kv_a_proj [r], k_rope_proj [d_R] and o_proj [hidden]
// (a converted gpt-oss layer carries its q/k/v/o biases in these); k_b_proj and v_b_proj have none.
// The other tensors keep their Llama / gpt-oss names (gpt-oss MoE: mlp.router.*, mlp.experts.* in MXFP4).
// This is not the DeepSeek-V3 layout (see the export for that).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/model/model_config.hpp"
#include "mla/reference/rope.hpp"

namespace mla::model {

inline constexpr int mla_format_version = 1;

// Epsilon of the optional latent RMSNorm (DeepseekV3RMSNorm's default; neither config has a field for it).
inline constexpr double mla_latent_norm_eps = 1e-6;

// Tensor name stems of an MLA layer, after "model.layers.N.self_attn.".
namespace mla_tensor {
inline constexpr const char* q_proj = "q_proj";
inline constexpr const char* kv_a_proj = "kv_a_proj";
inline constexpr const char* k_rope_proj = "k_rope_proj";
inline constexpr const char* k_b_proj = "k_b_proj";
inline constexpr const char* v_b_proj = "v_b_proj";
inline constexpr const char* o_proj = "o_proj";
inline constexpr const char* sinks = "sinks";
inline constexpr const char* kv_a_norm = "kv_a_layernorm";
}  // namespace mla_tensor

inline bool has_mla_layers(const model_config& c) {
  for (const layer_config& lc : c.layers)
    if (lc.attention == attention_kind::mla) return true;
  return false;
}

// The RoPE of MLA layer l's decoupled key: the model's RoPE (scaling included) at width rope_dim.
inline ref::rope_config mla_layer_rope(const model_config& c, int l) {
  const layer_config& lc = c.layers.at(static_cast<std::size_t>(l));
  ref::rope_config r = c.rope;
  r.dim = lc.rope_dim;
  r.inv_freq_override = lc.rope_inv_freq;
  return r;
}

// The "mla" object for config c.
inline nlohmann::ordered_json mla_fields_json(const model_config& c) {
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const layer_config& lc : c.layers) {
    if (lc.attention == attention_kind::gqa) {
      layers.push_back({{"attention", "gqa"}});
      continue;
    }
    nlohmann::ordered_json e = {{"attention", "mla"},
                                {"kv_lora_rank", lc.latent_rank},
                                {"qk_rope_head_dim", lc.rope_dim},
                                {"qk_nope_head_dim", c.head_dim},
                                {"v_head_dim", c.head_dim}};
    if (!lc.rope_inv_freq.empty()) e["rope_inv_freq"] = lc.rope_inv_freq;
    layers.push_back(std::move(e));
  }
  nlohmann::ordered_json m = {{"format_version", mla_format_version}, {"rope_layout", "neox"}};
  if (c.softmax_scale > 0) m["softmax_scale"] = c.softmax_scale;
  m["layers"] = std::move(layers);
  return m;
}

namespace detail {
inline int mla_int(const nlohmann::json& o, const char* key, const std::string& where) {
  check(o.contains(key), where, ": required field \"", key, "\" is missing");
  const nlohmann::json& v = o.at(key);
  check(v.is_number_integer() && v.get<long long>() >= 0 && v.get<long long>() <= 1 << 24, where, ": field \"", key,
        "\" must be a non-negative integer, found ", v.dump());
  return v.get<int>();
}
}  // namespace detail

// Applies the "mla" object `m` to a config read from the rest of config.json. `where` names the file.
inline void apply_mla_fields(const nlohmann::json& m, model_config& c, const std::string& where) {
  const std::string w = where + ": mla";
  check(m.is_object(), w, ": expected an object, found ", m.dump());
  const int version = detail::mla_int(m, "format_version", w);
  check(version == mla_format_version, w, ": field \"format_version\" = ", version, " is not supported (expected ",
        mla_format_version, ")");
  if (m.contains("rope_layout")) {
    const nlohmann::json& v = m.at("rope_layout");
    check(v.is_string() && v.get<std::string>() == "neox", w, ": field \"rope_layout\" must be \"neox\", found ",
          v.dump());
  }
  if (m.contains("softmax_scale")) {
    const nlohmann::json& v = m.at("softmax_scale");
    check(v.is_number() && v.get<double>() > 0, w, ": field \"softmax_scale\" must be a number > 0, found ", v.dump());
    c.softmax_scale = v.get<double>();
  }
  check(m.contains("layers"), w, ": required field \"layers\" is missing");
  const nlohmann::json& layers = m.at("layers");
  check(layers.is_array() && static_cast<int>(layers.size()) == c.n_layers, w,
        ": field \"layers\" must be a list of num_hidden_layers = ", c.n_layers, " entries, found ",
        layers.is_array() ? std::to_string(layers.size()) + " entries" : layers.dump());
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string lw = w + ".layers[" + std::to_string(l) + "]";
    const nlohmann::json& e = layers[static_cast<std::size_t>(l)];
    check(e.is_object() && e.contains("attention") && e.at("attention").is_string(), lw,
          ": expected an object with a string field \"attention\", found ", e.dump());
    const std::string kind = e.at("attention").get<std::string>();
    layer_config& lc = c.layers[static_cast<std::size_t>(l)];
    if (kind == "gqa") {
      lc.attention = attention_kind::gqa;
      continue;
    }
    check(kind == "mla", lw, ": field \"attention\" = \"", kind, "\", expected \"gqa\" or \"mla\"");
    lc.attention = attention_kind::mla;
    lc.latent_rank = detail::mla_int(e, "kv_lora_rank", lw);
    lc.rope_dim = detail::mla_int(e, "qk_rope_head_dim", lw);
    check(lc.latent_rank > 0, lw, ": field \"kv_lora_rank\" must be > 0, found ", lc.latent_rank);
    check(lc.rope_dim > 0 && lc.rope_dim % 2 == 0, lw, ": field \"qk_rope_head_dim\" must be even and > 0, found ",
          lc.rope_dim);
    for (const char* key : {"qk_nope_head_dim", "v_head_dim"}) {
      const int v = detail::mla_int(e, key, lw);
      check(v == c.head_dim, lw, ": field \"", key, "\" = ", v, " must equal head_dim = ", c.head_dim,
            " (converted layers keep the source head width)");
    }
    lc.rope_inv_freq.clear();
    if (e.contains("rope_inv_freq")) {
      const nlohmann::json& f = e.at("rope_inv_freq");
      check(f.is_array() && static_cast<int>(f.size()) == lc.rope_dim / 2, lw,
            ": field \"rope_inv_freq\" must be a list of qk_rope_head_dim/2 = ", lc.rope_dim / 2, " numbers");
      for (std::size_t i = 0; i < f.size(); ++i) {
        check(f[i].is_number() && f[i].get<double>() > 0, lw, ": field \"rope_inv_freq\"[", i,
              "] must be a number > 0, found ", f[i].dump());
        lc.rope_inv_freq.push_back(f[i].get<double>());
      }
    }
  }
}

}  // namespace mla::model
