// mla::model::save_checkpoint: writes a Llama-family or gpt-oss model (GQA, converted MLA or mixed layers) as a
// checkpoint directory that load_model(dir) reads back to the same logits:
//   config.json        Hugging Face llama or gpt_oss fields + the "mla" object (mla_config.hpp) when a layer is MLA
//   model.safetensors  F32 (exact round trip) or BF16/F16; GQA layers keep HF names (gpt-oss: with biases and
//                      sinks), MLA layers the names in mla_config.hpp
//   extra files        tokenizer.json / tokenizer_config.json (checkpoint_tokenizer_files below)
// gpt-oss MoE experts are not re-quantised: the MXFP4 blocks/scales and the expert biases are copied byte for
// byte from the checkpoint the model was loaded from (mxfp4_experts::raw_tensors, load_safetensors.hpp); the
// router, norms, embeddings and unembedding are written in the requested float dtype like everything else.
// Experts held only as floats (ref::dense_experts) are an error: they would need re-quantising.
// The directory is built as `<dir>.tmp.<pid>` and renamed into place at the end: `dir` either does not exist
// or is complete. An existing `dir` is an error (nothing is overwritten; inputs are never modified).
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/io/atomic_directory.hpp"
#include "mla/io/gguf.hpp"
#include "mla/io/safetensors.hpp"
#include "mla/model/config_json.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/load_safetensors.hpp"
#include "mla/model/mla_config.hpp"
#include "mla/model/model_config.hpp"
#include "mla/model/tensor_names.hpp"
#include "mla/tokenizer/gguf_vocab.hpp"
#include "mla/tokenizer/tokenizer_json.hpp"

namespace mla::model {

// A file written into the checkpoint next to the weights: name (no directories) and contents.
struct checkpoint_file {
  std::string name;
  std::string contents;
};

// Tokenizer files for a checkpoint made from the model at `source` (what load_model accepts):
// a GGUF file gives tokenizer.json (tokenizer_json.hpp) and tokenizer_config.json with its chat template;
// a directory gives copies of its tokenizer.json, tokenizer_config.json, special_tokens_map.json and
// generation_config.json and chat_template.jinja (gpt-oss) where present.
inline std::vector<checkpoint_file> checkpoint_tokenizer_files(const std::string& source) {
  namespace fs = std::filesystem;
  std::vector<checkpoint_file> out;
  if (fs::is_directory(source)) {
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                             "generation_config.json", "chat_template.jinja"}) {
      const fs::path p = fs::path(source) / name;
      if (!fs::exists(p)) continue;
      std::ifstream in(p, std::ios::binary);
      check(static_cast<bool>(in), "cannot open '", p.string(), "'");
      std::ostringstream s;
      s << in.rdbuf();
      out.push_back({name, s.str()});
    }
    return out;
  }
  const io::gguf_file f = io::gguf_file::open(source);
  out.push_back({"tokenizer.json", tok::tokenizer_json(tok::vocabulary_from_gguf(f))});
  nlohmann::ordered_json tc = nlohmann::ordered_json::object();
  if (auto t = tok::chat_template_from_gguf(f)) tc["chat_template"] = *t;
  out.push_back({"tokenizer_config.json", tc.dump(2) + "\n"});
  return out;
}

// config.json of a Llama-family config (plus "mla" when a layer is MLA).
inline nlohmann::ordered_json llama_config_json(const model_config& c, const std::string& torch_dtype = "float32") {
  using json = nlohmann::ordered_json;
  const char* who = "mla::model::llama_config_json";
  check(c.architecture == "llama", who, ": architecture '", c.architecture, "' is not written (only llama)");
  json rope_scaling = nullptr;
  if (c.rope.scaling == ref::rope_scaling::llama3) {
    rope_scaling = llama3_rope_scaling_json(c.rope);
  } else {
    check(c.rope.scaling == ref::rope_scaling::none, who, ": RoPE scaling other than llama3 is not written for llama");
  }
  check(c.rope.inv_freq_override.empty() && c.rope.layout == ref::rope_layout::neox && c.rope.dim == c.head_dim, who,
        ": the model's RoPE must be the standard NeoX ladder over head_dim");
  for (const layer_config& lc : c.layers)
    check(lc.sliding_window == 0, who, ": sliding-window layers are not written for llama");
  json j = {{"architectures", json::array({"LlamaForCausalLM"})},
            {"model_type", "llama"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden},
            {"intermediate_size", c.intermediate},
            {"num_hidden_layers", c.n_layers},
            {"num_attention_heads", c.n_heads},
            {"num_key_value_heads", c.n_kv_heads},
            {"head_dim", c.head_dim},
            {"hidden_act", "silu"},
            {"max_position_embeddings", c.context_length > 0 ? c.context_length : 2048},
            {"rms_norm_eps", c.rms_eps},
            {"rope_theta", c.rope.theta},
            {"rope_scaling", rope_scaling},
            {"attention_bias", c.attention_bias},
            {"mlp_bias", false},
            {"tie_word_embeddings", c.tied_embeddings},
            {"torch_dtype", torch_dtype}};
  add_token_ids_json(j, c);
  add_mla_json(j, c);
  return j;
}

// config.json of a gpt-oss config in the Hugging Face gpt_oss form (the fields hf_config.hpp reads; the
// rope_scaling form of openai/gpt-oss-20b), plus "mla" when a layer is MLA. Every sliding layer must use the
// same window (HF has one "sliding_window"); the experts are MXFP4 (quantization_config).
inline nlohmann::ordered_json gpt_oss_model_config_json(const model_config& c,
                                                        const std::string& torch_dtype = "float32") {
  using json = nlohmann::ordered_json;
  const char* who = "mla::model::gpt_oss_model_config_json";
  check(c.architecture == "gpt_oss" && c.mlp == mlp_kind::moe, who, ": architecture '", c.architecture, "' with ",
        to_string(c.mlp), " is not gpt_oss with MoE");
  check(c.attention_sinks, who, ": gpt_oss layers always have attention sinks (config.json cannot say otherwise)");
  check(c.rope.inv_freq_override.empty() && c.rope.layout == ref::rope_layout::neox && c.rope.dim == c.head_dim, who,
        ": the model's RoPE must be the standard NeoX ladder over head_dim");
  json rope_scaling = nullptr;
  if (c.rope.scaling == ref::rope_scaling::yarn) {
    rope_scaling = {{"beta_fast", c.rope.beta_fast}, {"beta_slow", c.rope.beta_slow},
                    {"factor", c.rope.factor},       {"original_max_position_embeddings", c.rope.original_max_position},
                    {"rope_type", "yarn"},           {"truncate", c.rope.truncate}};
    if (c.rope.attention_factor != 0) rope_scaling["attention_factor"] = c.rope.attention_factor;
  } else if (c.rope.scaling == ref::rope_scaling::llama3) {
    rope_scaling = llama3_rope_scaling_json(c.rope);
  } else {
    check(c.rope.scaling == ref::rope_scaling::none, who, ": unknown RoPE scaling");
  }
  int window = 0;
  json layer_types = json::array();
  for (int l = 0; l < c.n_layers; ++l) {
    const int w = c.layers[static_cast<std::size_t>(l)].sliding_window;
    check(w == 0 || window == 0 || w == window, who, ": layer ", l, " has sliding window ", w,
          " but an earlier layer has ", window, " (config.json has one \"sliding_window\")");
    if (w > 0) window = w;
    layer_types.push_back(w > 0 ? "sliding_attention" : "full_attention");
  }
  json j = {{"architectures", json::array({"GptOssForCausalLM"})},
            {"model_type", "gpt_oss"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden},
            {"intermediate_size", c.intermediate},
            {"num_hidden_layers", c.n_layers},
            {"num_attention_heads", c.n_heads},
            {"num_key_value_heads", c.n_kv_heads},
            {"head_dim", c.head_dim},
            {"hidden_act", "silu"},
            {"num_local_experts", c.n_experts},
            {"num_experts_per_tok", c.experts_per_token},
            {"experts_per_token", c.experts_per_token},
            {"swiglu_limit", c.swiglu_limit},
            {"rms_norm_eps", c.rms_eps},
            {"rope_theta", c.rope.theta},
            {"rope_scaling", rope_scaling},
            {"sliding_window", window},
            {"layer_types", layer_types},
            {"attention_bias", c.attention_bias},
            {"tie_word_embeddings", c.tied_embeddings},
            {"quantization_config",
             {{"modules_to_not_convert",
               json::array({"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"})},
              {"quant_method", "mxfp4"}}},
            {"torch_dtype", torch_dtype}};
  // Not a Hugging Face field; written only when it is not gpt-oss's 1.702 (hf_config.hpp reads it).
  if (c.swiglu_alpha != 1.702) j["swiglu_alpha"] = c.swiglu_alpha;
  if (c.context_length > 0) j["max_position_embeddings"] = c.context_length;
  if (c.rope.scaling == ref::rope_scaling::yarn) j["initial_context_length"] = c.rope.original_max_position;
  add_token_ids_json(j, c);
  add_mla_json(j, c);
  return j;
}

// config.json for either architecture.
inline nlohmann::ordered_json checkpoint_config_json(const model_config& c,
                                                     const std::string& torch_dtype = "float32") {
  return c.architecture == "gpt_oss" ? gpt_oss_model_config_json(c, torch_dtype) : llama_config_json(c, torch_dtype);
}

namespace detail {

template <class T>
void add_tensor(io::safetensors_writer& w, io::dtype type, const std::string& name, const ref::matrix<T>& m) {
  const ref::matrix<float> f = m.template cast<float>();  // row-major [out, in], as PyTorch
  w.add_float(name, type, {std::int64_t(f.rows()), std::int64_t(f.cols())}, f.data(),
              static_cast<std::size_t>(f.size()));
}
template <class T>
void add_tensor(io::safetensors_writer& w, io::dtype type, const std::string& name, const ref::vector<T>& v) {
  if (v.size() == 0) return;  // optional tensors (biases) are simply absent
  const ref::vector<float> f = v.template cast<float>();
  w.add_float(name, type, {std::int64_t(f.size())}, f.data(), static_cast<std::size_t>(f.size()));
}

// The same for a tensor that outlives the writer's last write (a model's weights): float weights are borrowed
// and converted as the file is written, so that saving a model needs no second copy of it in memory.
template <class Dense>
void add_weight(io::safetensors_writer& w, io::dtype type, const std::string& name, const Dense& m) {
  if constexpr (std::is_same_v<typename Dense::Scalar, float>) {
    if (m.size() == 0 && Dense::ColsAtCompileTime == 1) return;  // an absent optional vector
    std::vector<std::int64_t> shape = {std::int64_t(m.rows())};
    if (Dense::ColsAtCompileTime != 1) shape.push_back(std::int64_t(m.cols()));  // [out, in], as PyTorch
    w.add_float_borrowed(name, type, std::move(shape), m.data(), static_cast<std::size_t>(m.size()));
  } else {
    add_tensor(w, type, name, m);
  }
}

// The weights' MLA layer must be what the config describes (mla_layer_rope etc.), else it would load differently.
template <class T>
void check_mla_layer_savable(const model_config& c, int l, const ref::mla_layer<T>& m) {
  const std::string who = "mla::model::save_checkpoint: layer " + std::to_string(l);
  const layer_config& lc = c.layers[static_cast<std::size_t>(l)];
  check(m.latent_norm.size() == 0 || m.latent_norm_eps == mla_latent_norm_eps, who, ": latent norm epsilon ",
        m.latent_norm_eps, "; the format fixes it at ", mla_latent_norm_eps);
  check(!m.uses_latent_rope(), who, ": the exact latent-RoPE form (stage 0) has no decoupled key and is not saved");
  check(m.nope_dim == c.head_dim && m.v_head_dim == c.head_dim, who, ": nope_dim/v_head_dim = ", m.nope_dim, "/",
        m.v_head_dim, ", the format needs head_dim = ", c.head_dim);
  check(m.latent_rank == lc.latent_rank && m.rope_dim == lc.rope_dim, who, ": weights have rank ", m.latent_rank,
        " and rope_dim ", m.rope_dim, ", the config says ", lc.latent_rank, " and ", lc.rope_dim);
  ref::rope_config want = c.rope;
  want.dim = m.rope_dim;
  const ref::rope_config& r = m.rope;
  check(r.dim == want.dim && r.theta == want.theta && r.layout == ref::rope_layout::neox && r.scaling == want.scaling &&
            r.factor == want.factor && r.original_max_position == want.original_max_position &&
            r.low_freq_factor == want.low_freq_factor && r.high_freq_factor == want.high_freq_factor &&
            r.beta_fast == want.beta_fast && r.beta_slow == want.beta_slow && r.truncate == want.truncate &&
            r.attention_factor == want.attention_factor,
        who, ": the layer's RoPE differs from the model's (beyond width and explicit frequencies)");
  check(std::abs(m.attention.softmax_scale - c.effective_softmax_scale()) <= 1e-12 * c.effective_softmax_scale(), who,
        ": softmax scale ", m.attention.softmax_scale, " differs from the model's ", c.effective_softmax_scale());
  check(m.attention.sliding_window == lc.sliding_window, who, ": sliding window differs from the config");
}

// The MXFP4 expert tensors of MoE layer l, borrowed from the checkpoint the experts were loaded from, under
// layer l's Hugging Face names. The experts must be mxfp4_experts of the config's shape.
template <class T>
void add_raw_experts(io::safetensors_writer& w, const model_config& c, int l, const ref::moe_block<T>& moe) {
  const std::string who = "mla::model::save_checkpoint: layer " + std::to_string(l);
  const std::string prefix = hf_tensor_name(tensor_role::experts, l);
  const mxfp4_experts* q = nullptr;
  if constexpr (std::is_same_v<T, float>) q = dynamic_cast<const mxfp4_experts*>(moe.experts.get());
  check(q != nullptr, who, ": the experts ('", prefix,
        "*') are not MXFP4 tensors of a loaded checkpoint (mla::model::mxfp4_experts); float experts would have "
        "to be re-quantised, which is not supported");
  check(q->count() == c.n_experts && q->hidden() == c.hidden && q->intermediate() == c.intermediate, who,
        ": the experts ('", prefix, "*') are ", q->count(), " x hidden ", q->hidden(), " x intermediate ",
        q->intermediate(), "; the config says ", c.n_experts, " x ", c.hidden, " x ", c.intermediate);
  for (const mxfp4_experts::raw_tensor& t : q->raw_tensors()) {
    check(t.view != nullptr && t.view->bytes.data != nullptr, who, ": tensor '", prefix, t.suffix,
          "' has no data in the source checkpoint");
    // The mapped pages go back once copied (else saving leaves all the experts resident).
    w.add_borrowed(prefix + t.suffix, t.view->type, t.view->shape, t.view->bytes,
                   [ck = q->checkpoint(), bytes = t.view->bytes] { ck->release(bytes); });
  }
}

// Writes a checkpoint directory atomically (io::atomic_directory: `<dir>.tmp.<pid>`, renamed at the end, removed
// on failure): model.safetensors, config.json and the extra files (plain names other than those two).
inline void write_checkpoint_directory(const std::string& dir, const std::string& who, const io::safetensors_writer& w,
                                       const nlohmann::ordered_json& config,
                                       const std::vector<checkpoint_file>& extra) {
  io::atomic_directory out(dir, who);
  w.write(out.file("model.safetensors"));
  write_config_json(out, config);
  for (const checkpoint_file& f : extra) {
    check(!f.name.empty() && f.name.find('/') == std::string::npos && f.name != "config.json" &&
              f.name != "model.safetensors",
          who, ": extra file name '", f.name, "' is not allowed");
    out.write_file(f.name, f.contents);
  }
  out.commit();
}

}  // namespace detail

// Writes the checkpoint (see the header comment). `type` is F32, BF16 or F16 (the MXFP4 experts of gpt-oss are
// copied as they are whatever `type` is).
template <class T>
void save_checkpoint(const std::string& dir, const model_config& config, const model_weights<T>& weights,
                     const std::vector<checkpoint_file>& extra_files = {}, io::dtype type = io::dtype::F32) {
  namespace fs = std::filesystem;
  const char* who = "mla::model::save_checkpoint";
  check(type == io::dtype::F32 || type == io::dtype::BF16 || type == io::dtype::F16, who,
        ": dtype must be F32, BF16 or F16, found ", io::dtype_name(type));
  const bool gpt_oss = config.architecture == "gpt_oss";
  check((config.architecture == "llama" && config.mlp == mlp_kind::swiglu) || (gpt_oss && config.mlp == mlp_kind::moe),
        who, ": architecture '", config.architecture, "' with ", to_string(config.mlp),
        " is not written (llama with SwiGLU, or gpt_oss with MoE)");
  check(!dir.empty(), who, ": empty output path");
  const fs::path out = fs::path(dir).lexically_normal();
  io::check_new_output_path(out.string(), who);
  // Copy the per-layer RoPE frequencies from the weights into the config, then check the layers against it.
  model_config c = config;
  for (int l = 0; l < c.n_layers; ++l)
    if (c.layers[static_cast<std::size_t>(l)].attention == attention_kind::mla)
      c.layers[static_cast<std::size_t>(l)].rope_inv_freq =
          weights.layers.at(static_cast<std::size_t>(l)).mla.rope.inv_freq_override;
  validate_model(c, weights);  // shapes against the config (a decoder would copy the weights)
  for (int l = 0; l < c.n_layers; ++l)
    if (c.layers[static_cast<std::size_t>(l)].attention == attention_kind::mla)
      detail::check_mla_layer_savable(c, l, weights.layers[static_cast<std::size_t>(l)].mla);
  // Sinks: config.json has no field for them; gpt_oss layers always have them, llama layers never.
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& lw = weights.layers[static_cast<std::size_t>(l)];
    const bool mla = c.layers[static_cast<std::size_t>(l)].attention == attention_kind::mla;
    const long n_sinks = mla ? long(lw.mla.sinks.size()) : long(lw.gqa.sinks.size());
    check(c.attention_sinks ? n_sinks == c.n_heads : n_sinks == 0, who, ": layer ", l, " tensor 'model.layers.", l,
          ".self_attn.sinks' has ", n_sinks, " entries, but the ", c.architecture, " config says ",
          c.attention_sinks ? std::to_string(c.n_heads) + " (one per head)" : std::string("none"));
  }

  io::safetensors_writer w;
  w.set_metadata("format", "pt");
  using R = tensor_role;
  detail::add_weight(w, type, hf_tensor_name(R::embed), weights.embed);
  if (!c.tied_embeddings) detail::add_weight(w, type, hf_tensor_name(R::lm_head), weights.lm_head);
  detail::add_weight(w, type, hf_tensor_name(R::final_norm), weights.final_norm);
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& lw = weights.layers[static_cast<std::size_t>(l)];
    auto name = [l](R role) { return hf_tensor_name(role, l); };
    const std::string a = "model.layers." + std::to_string(l) + ".self_attn.";
    detail::add_weight(w, type, name(R::attn_norm), lw.attn_norm);
    detail::add_weight(w, type, name(R::mlp_norm), lw.mlp_norm);
    if (c.layers[static_cast<std::size_t>(l)].attention == attention_kind::gqa) {
      const auto& g = lw.gqa;
      check(c.attention_bias || (g.bq.size() == 0 && g.bk.size() == 0 && g.bv.size() == 0 && g.bo.size() == 0), who,
            ": layer ", l, " has attention biases but the config says attention_bias = false");
      check(!c.attention_bias || (g.bq.size() > 0 && g.bk.size() > 0 && g.bv.size() > 0), who, ": layer ", l,
            " tensor '", a, "q_proj.bias', 'k_proj.bias' or 'v_proj.bias' is missing but the config says ",
            "attention_bias = true");
      detail::add_weight(w, type, name(R::q_proj), g.wq);
      detail::add_weight(w, type, name(R::k_proj), g.wk);
      detail::add_weight(w, type, name(R::v_proj), g.wv);
      detail::add_weight(w, type, name(R::o_proj), g.wo);
      detail::add_weight(w, type, name(R::q_bias), g.bq);
      detail::add_weight(w, type, name(R::k_bias), g.bk);
      detail::add_weight(w, type, name(R::v_bias), g.bv);
      detail::add_weight(w, type, name(R::o_bias), g.bo);
      detail::add_weight(w, type, name(R::sinks), g.sinks);
    } else {
      const auto& m = lw.mla;
      auto nm = [&](const char* stem, const char* kind) { return a + stem + "." + kind; };
      detail::add_weight(w, type, nm(mla_tensor::q_proj, "weight"), m.wq);
      detail::add_weight(w, type, nm(mla_tensor::q_proj, "bias"), m.bq);
      detail::add_weight(w, type, nm(mla_tensor::kv_a_proj, "weight"), m.w_dkv);
      detail::add_weight(w, type, nm(mla_tensor::kv_a_proj, "bias"), m.b_dkv);
      detail::add_weight(w, type, nm(mla_tensor::kv_a_norm, "weight"), m.latent_norm);  // absent when empty
      detail::add_weight(w, type, nm(mla_tensor::k_rope_proj, "weight"), m.w_kr);
      detail::add_weight(w, type, nm(mla_tensor::k_rope_proj, "bias"), m.b_kr);
      detail::add_weight(w, type, nm(mla_tensor::k_b_proj, "weight"), m.w_uk);
      detail::add_weight(w, type, nm(mla_tensor::v_b_proj, "weight"), m.w_uv);
      detail::add_weight(w, type, nm(mla_tensor::o_proj, "weight"), m.wo);
      detail::add_weight(w, type, nm(mla_tensor::o_proj, "bias"), m.bo);
      detail::add_weight(w, type, a + mla_tensor::sinks, m.sinks);
    }
    if (c.mlp == mlp_kind::moe) {
      const auto& moe = lw.moe;
      check(moe.swiglu_limit == c.swiglu_limit && moe.swiglu_alpha == c.swiglu_alpha, who, ": layer ", l,
            " MoE has swiglu_limit ", moe.swiglu_limit, " and alpha ", moe.swiglu_alpha, "; the config says ",
            c.swiglu_limit, " and ", c.swiglu_alpha);
      detail::add_weight(w, type, name(R::router), moe.w_router);
      detail::add_weight(w, type, name(R::router_bias), moe.b_router);
      detail::add_raw_experts(w, c, l, moe);
    } else {
      detail::add_weight(w, type, name(R::gate_proj), lw.mlp.w_gate);
      detail::add_weight(w, type, name(R::up_proj), lw.mlp.w_up);
      detail::add_weight(w, type, name(R::down_proj), lw.mlp.w_down);
    }
  }
  const std::string dtype_text = type == io::dtype::F32 ? "float32" : type == io::dtype::BF16 ? "bfloat16" : "float16";
  detail::write_checkpoint_directory(out.string(), who, w, checkpoint_config_json(c, dtype_text), extra_files);
}

}  // namespace mla::model
