// Hugging Face config.json -> mla::model::model_config, for `model_type` "gpt_oss" and "llama".
//
// gpt_oss (formats.md §1.1): RoPE from `rope_scaling` + top-level `rope_theta` (transformers 4.55) or
// from `rope_parameters` with `rope_theta` inside (newer transformers); sliding layers from `layer_types`,
// else the default rule (even layer indices slide); every layer has sinks; the MLP is MoE.
// llama: SwiGLU, optional `head_dim`, `rope_scaling` null or llama3 (either form as above).
// Either: an optional "mla" object marks converted MLA layers (mla_config.hpp).
// Errors name the file and the field, with what was expected and what was found.
#pragma once

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/model/mla_config.hpp"
#include "mla/model/model_config.hpp"
#include "mla/reference/rope.hpp"

namespace mla::model {

namespace detail {

// Reads fields of one JSON object; `where` is "<file>" or "<file>: rope_scaling" for messages.
class json_fields {
 public:
  json_fields(const nlohmann::json& j, std::string where) : j_(j), where_(std::move(where)) {
    check(j_.is_object(), where_, ": expected a JSON object, found ", j_.type_name());
  }

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  const nlohmann::json& at(const char* key) const {
    check(has(key), where_, ": required field \"", key, "\" is missing");
    return j_.at(key);
  }
  const std::string& where() const { return where_; }

  int integer(const char* key) const {
    const nlohmann::json& v = at(key);
    check(v.is_number_integer(), where_, ": field \"", key, "\" must be an integer, found ", v.dump());
    const auto x = v.get<long long>();
    check(x >= -2147483647LL && x <= 2147483647LL, where_, ": field \"", key, "\" = ", x, " is out of range");
    return static_cast<int>(x);
  }
  int integer_or(const char* key, int fallback) const { return has(key) ? integer(key) : fallback; }
  int positive(const char* key) const {
    const int x = integer(key);
    check(x > 0, where_, ": field \"", key, "\" must be > 0, found ", x);
    return x;
  }

  double number(const char* key) const {
    const nlohmann::json& v = at(key);
    check(v.is_number(), where_, ": field \"", key, "\" must be a number, found ", v.dump());
    const double x = v.get<double>();
    check(std::isfinite(x), where_, ": field \"", key, "\" must be finite, found ", x);
    return x;
  }
  double number_or(const char* key, double fallback) const { return has(key) ? number(key) : fallback; }

  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const nlohmann::json& v = j_.at(key);
    check(v.is_boolean(), where_, ": field \"", key, "\" must be true or false, found ", v.dump());
    return v.get<bool>();
  }

  std::string string(const char* key) const {
    const nlohmann::json& v = at(key);
    check(v.is_string(), where_, ": field \"", key, "\" must be a string, found ", v.dump());
    return v.get<std::string>();
  }

  // A token id that may be an integer or a list of integers (the first is taken); -1 when absent.
  int token_id(const char* key) const {
    if (!has(key)) return -1;
    const nlohmann::json& v = j_.at(key);
    if (v.is_array()) {
      check(!v.empty() && v[0].is_number_integer(), where_, ": field \"", key,
            "\" must be an integer or a non-empty list of integers, found ", v.dump());
      return v[0].get<int>();
    }
    return integer(key);
  }

 private:
  const nlohmann::json& j_;
  std::string where_;
};

// RoPE from either `rope_parameters` (theta inside) or `rope_scaling` (+ top-level `rope_theta`).
// `default_theta` is used when neither place has a theta (< 0: the field is required).
inline ref::rope_config rope_from_hf(const json_fields& top, int head_dim, double default_theta) {
  ref::rope_config r;
  r.dim = head_dim;
  r.layout = ref::rope_layout::neox;
  const bool has_parameters = top.has("rope_parameters");
  const char* block_name = has_parameters ? "rope_parameters" : "rope_scaling";
  if (has_parameters)
    check(top.at("rope_parameters").is_object(), top.where(), ": field \"rope_parameters\" must be an object");
  const bool has_block = top.has(block_name);
  const nlohmann::json empty = nlohmann::json::object();
  const json_fields p(has_block ? top.at(block_name) : empty, top.where() + ": " + block_name);

  if (has_parameters && p.has("rope_theta"))
    r.theta = p.number("rope_theta");
  else if (top.has("rope_theta"))
    r.theta = top.number("rope_theta");
  else {
    check(default_theta > 0, top.where(),
          ": required field \"rope_theta\" is missing (top level or in rope_parameters)");
    r.theta = default_theta;
  }
  check(r.theta > 1, top.where(), ": field \"rope_theta\" must be > 1, found ", r.theta);

  // transformers accepts both "rope_type" and the older "type".
  std::string type = "default";
  if (p.has("rope_type"))
    type = p.string("rope_type");
  else if (p.has("type"))
    type = p.string("type");

  if (type == "default") {
    r.scaling = ref::rope_scaling::none;
  } else if (type == "yarn") {
    r.scaling = ref::rope_scaling::yarn;
    r.factor = p.number("factor");
    r.original_max_position = p.positive("original_max_position_embeddings");
    r.beta_fast = p.number_or("beta_fast", 32.0);
    r.beta_slow = p.number_or("beta_slow", 1.0);
    r.truncate = p.boolean_or("truncate", true);
    r.attention_factor = p.number_or("attention_factor", 0.0);
    check(!p.has("mscale") && !p.has("mscale_all_dim"), p.where(),
          ": fields \"mscale\"/\"mscale_all_dim\" (DeepSeek YaRN) are not supported");
  } else if (type == "llama3") {
    r.scaling = ref::rope_scaling::llama3;
    r.factor = p.number("factor");
    r.original_max_position = p.positive("original_max_position_embeddings");
    r.low_freq_factor = p.number("low_freq_factor");
    r.high_freq_factor = p.number("high_freq_factor");
  } else {
    mla::detail::throw_error(p.where(), ": field \"rope_type\" = \"", type,
                             "\" is not supported (expected \"default\", \"yarn\" or \"llama3\")");
  }
  return r;
}

inline void common_from_hf(const json_fields& f, model_config& c) {
  c.vocab_size = f.positive("vocab_size");
  c.hidden = f.positive("hidden_size");
  c.n_layers = f.positive("num_hidden_layers");
  c.n_heads = f.positive("num_attention_heads");
  c.n_kv_heads = f.has("num_key_value_heads") ? f.positive("num_key_value_heads") : c.n_heads;
  c.intermediate = f.positive("intermediate_size");
  c.rms_eps = f.number("rms_norm_eps");
  c.context_length = f.integer_or("max_position_embeddings", 0);
  c.bos_id = f.token_id("bos_token_id");
  c.eos_id = f.token_id("eos_token_id");
  c.layers.assign(static_cast<std::size_t>(c.n_layers), layer_config{});
}

inline model_config gpt_oss_from_hf(const json_fields& f) {
  model_config c;
  c.architecture = "gpt_oss";
  common_from_hf(f, c);
  c.head_dim = f.has("head_dim") ? f.positive("head_dim") : c.hidden / c.n_heads;
  c.rope = rope_from_hf(f, c.head_dim, 150000.0);
  c.tied_embeddings = f.boolean_or("tie_word_embeddings", false);
  c.attention_bias = f.boolean_or("attention_bias", true);
  c.attention_sinks = true;
  c.mlp = mlp_kind::moe;
  c.n_experts = f.positive("num_local_experts");
  c.experts_per_token =
      f.has("num_experts_per_tok") ? f.positive("num_experts_per_tok") : f.positive("experts_per_token");
  c.swiglu_limit = f.number_or("swiglu_limit", 7.0);
  c.swiglu_alpha = f.number_or("swiglu_alpha", 1.702);
  const int window = f.integer_or("sliding_window", 0);
  check(window >= 0, f.where(), ": field \"sliding_window\" must be >= 0, found ", window);

  if (f.has("layer_types")) {
    const nlohmann::json& types = f.at("layer_types");
    check(types.is_array() && static_cast<int>(types.size()) == c.n_layers, f.where(),
          ": field \"layer_types\" must be a list of num_hidden_layers = ", c.n_layers, " entries, found ",
          types.is_array() ? std::to_string(types.size()) + " entries" : types.dump());
    for (int l = 0; l < c.n_layers; ++l) {
      const nlohmann::json& t = types[static_cast<std::size_t>(l)];
      const std::string s = t.is_string() ? t.get<std::string>() : t.dump();
      check(s == "sliding_attention" || s == "full_attention", f.where(), ": field \"layer_types\"[", l, "] = ", s,
            ", expected \"sliding_attention\" or \"full_attention\"");
      c.layers[static_cast<std::size_t>(l)].sliding_window = s == "sliding_attention" ? window : 0;
    }
  } else {
    // transformers' default: layer i slides when (i + 1) % 2 != 0, i.e. even indices.
    for (int l = 0; l < c.n_layers; ++l) c.layers[static_cast<std::size_t>(l)].sliding_window = l % 2 == 0 ? window : 0;
  }
  bool any_sliding = false;
  for (const auto& lc : c.layers) any_sliding |= lc.sliding_window > 0;
  check(!any_sliding || window > 0, f.where(), ": sliding layers need field \"sliding_window\" > 0");
  return c;
}

inline model_config llama_from_hf(const json_fields& f) {
  model_config c;
  c.architecture = "llama";
  common_from_hf(f, c);
  check(c.hidden % c.n_heads == 0 || f.has("head_dim"), f.where(), ": hidden_size = ", c.hidden,
        " is not a multiple of num_attention_heads = ", c.n_heads, " and there is no \"head_dim\"");
  c.head_dim = f.has("head_dim") ? f.positive("head_dim") : c.hidden / c.n_heads;
  c.rope = rope_from_hf(f, c.head_dim, 10000.0);
  check(c.rope.scaling != ref::rope_scaling::yarn, f.where(), ": YaRN RoPE scaling is not supported for llama");
  check(!f.has("partial_rotary_factor") || f.number("partial_rotary_factor") == 1.0, f.where(),
        ": field \"partial_rotary_factor\" must be 1 (partial RoPE is not supported)");
  c.tied_embeddings = f.boolean_or("tie_word_embeddings", false);
  c.attention_bias = f.boolean_or("attention_bias", false);
  check(!f.boolean_or("mlp_bias", false), f.where(), ": field \"mlp_bias\" = true is not supported");
  const std::string act = f.has("hidden_act") ? f.string("hidden_act") : "silu";
  check(act == "silu", f.where(), ": field \"hidden_act\" = \"", act, "\", expected \"silu\"");
  return c;
}

}  // namespace detail

// `where` names the source in errors (usually the file path).
inline model_config config_from_hf_json(const nlohmann::json& j, const std::string& where = "config.json") {
  const detail::json_fields f(j, where);
  const std::string type = f.string("model_type");
  model_config c;
  if (type == "gpt_oss")
    c = detail::gpt_oss_from_hf(f);
  else if (type == "llama")
    c = detail::llama_from_hf(f);
  else
    mla::detail::throw_error(where, ": field \"model_type\" = \"", type,
                             "\" is not supported (expected \"gpt_oss\" or \"llama\")");
  // A converted checkpoint (mla_config.hpp): which layers are MLA and their shapes.
  if (j.contains("mla") && !j.at("mla").is_null()) apply_mla_fields(j.at("mla"), c, where);
  c.validate();
  return c;
}

inline model_config config_from_hf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "cannot open '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    mla::detail::throw_error(path, ": not valid JSON: ", e.what());
  }
  return config_from_hf_json(j, path);
}

}  // namespace mla::model
