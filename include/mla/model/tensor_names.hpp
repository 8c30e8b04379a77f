// The tensor names of a Llama-family or gpt-oss model in its two file formats, from one table: each role (a
// weight of the model description, model/decoder.hpp) has its GGUF name (llama.cpp) and its Hugging Face
// safetensors name. Per-layer names get the layer prefix ("blk.N." in GGUF, "model.layers.N." in safetensors).
// The readers (load_gguf.hpp, load_safetensors.hpp) and the writers (save_checkpoint.hpp, deepseek_v3.hpp,
// gpt_oss_checkpoint.hpp) spell names through here. Roles a format does not hold (gpt-oss's sinks and router
// in the GGUF reader, which reads llama only) have an empty name there. The converted MLA attention's names
// are the project format's own (mla_config.hpp, mla_tensor), and DeepSeek-V3's MLA names are deepseek_v3.hpp's.
#pragma once

#include <string>

#include "mla/core/error.hpp"

namespace mla::model {

enum class tensor_role {
  // whole model
  embed,       // [vocab, hidden]
  lm_head,     // [vocab, hidden]; absent when tied to embed
  final_norm,  // [hidden]
  // per layer
  attn_norm,    // [hidden]
  mlp_norm,     // [hidden]
  q_proj,       // [n_heads * head_dim, hidden]
  k_proj,       // [n_kv_heads * head_dim, hidden]
  v_proj,       // [n_kv_heads * head_dim, hidden]
  o_proj,       // [hidden, n_heads * head_dim]
  q_bias,       // [n_heads * head_dim]
  k_bias,       // [n_kv_heads * head_dim]
  v_bias,       // [n_kv_heads * head_dim]
  o_bias,       // [hidden]
  sinks,        // [n_heads] (gpt-oss)
  gate_proj,    // [intermediate, hidden] (SwiGLU MLP)
  up_proj,      // [intermediate, hidden]
  down_proj,    // [hidden, intermediate]
  router,       // [n_experts, hidden] (gpt-oss MoE)
  router_bias,  // [n_experts]
  experts,      // the prefix of the MoE experts' tensors (gpt-oss: "mlp.experts." + gate_up_proj_blocks, ...)
};

struct tensor_name_entry {
  tensor_role role;
  bool per_layer;
  const char* gguf;  // after "blk.N." when per layer; "" when GGUF has no such tensor here
  const char* hf;    // after "model.layers.N." when per layer
};

// role -> GGUF name, Hugging Face name.
inline constexpr tensor_name_entry tensor_names[] = {
    {tensor_role::embed, false, "token_embd.weight", "model.embed_tokens.weight"},
    {tensor_role::lm_head, false, "output.weight", "lm_head.weight"},
    {tensor_role::final_norm, false, "output_norm.weight", "model.norm.weight"},
    {tensor_role::attn_norm, true, "attn_norm.weight", "input_layernorm.weight"},
    {tensor_role::mlp_norm, true, "ffn_norm.weight", "post_attention_layernorm.weight"},
    {tensor_role::q_proj, true, "attn_q.weight", "self_attn.q_proj.weight"},
    {tensor_role::k_proj, true, "attn_k.weight", "self_attn.k_proj.weight"},
    {tensor_role::v_proj, true, "attn_v.weight", "self_attn.v_proj.weight"},
    {tensor_role::o_proj, true, "attn_output.weight", "self_attn.o_proj.weight"},
    {tensor_role::q_bias, true, "attn_q.bias", "self_attn.q_proj.bias"},
    {tensor_role::k_bias, true, "attn_k.bias", "self_attn.k_proj.bias"},
    {tensor_role::v_bias, true, "attn_v.bias", "self_attn.v_proj.bias"},
    {tensor_role::o_bias, true, "attn_output.bias", "self_attn.o_proj.bias"},
    {tensor_role::sinks, true, "", "self_attn.sinks"},
    {tensor_role::gate_proj, true, "ffn_gate.weight", "mlp.gate_proj.weight"},
    {tensor_role::up_proj, true, "ffn_up.weight", "mlp.up_proj.weight"},
    {tensor_role::down_proj, true, "ffn_down.weight", "mlp.down_proj.weight"},
    {tensor_role::router, true, "", "mlp.router.weight"},
    {tensor_role::router_bias, true, "", "mlp.router.bias"},
    {tensor_role::experts, true, "", "mlp.experts."},
};

namespace detail {
inline const tensor_name_entry& tensor_name_of(tensor_role role) {
  for (const tensor_name_entry& e : tensor_names)
    if (e.role == role) return e;
  mla::detail::throw_error("mla::model: tensor role ", static_cast<int>(role), " has no entry in tensor_names");
}
inline std::string layer_tensor_name(const tensor_name_entry& e, const char* prefix, const char* name, int layer,
                                     const char* format) {
  check(name[0] != '\0', "mla::model: the ", format, " format has no name for this tensor role (", e.hf, ")");
  check(e.per_layer == (layer >= 0), "mla::model: tensor '", name, "' ",
        e.per_layer ? "is per layer and needs a layer index" : "is not per layer; pass no layer index");
  return e.per_layer ? prefix + std::to_string(layer) + "." + name : std::string(name);
}
}  // namespace detail

// "blk.N." + the GGUF name of `role` for layer N (layer -1: a whole-model tensor).
inline std::string gguf_tensor_name(tensor_role role, int layer = -1) {
  const tensor_name_entry& e = detail::tensor_name_of(role);
  return detail::layer_tensor_name(e, "blk.", e.gguf, layer, "GGUF");
}
// "model.layers.N." + the Hugging Face name of `role` for layer N (layer -1: a whole-model tensor).
inline std::string hf_tensor_name(tensor_role role, int layer = -1) {
  const tensor_name_entry& e = detail::tensor_name_of(role);
  return detail::layer_tensor_name(e, "model.layers.", e.hf, layer, "Hugging Face");
}

}  // namespace mla::model
