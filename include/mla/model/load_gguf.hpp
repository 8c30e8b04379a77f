// Maps a Llama-family GGUF file (llama.cpp layout) onto the model description and float weights.
// io/ knows the file; this file knows which tensors and keys make a model.
//
// GGUF stores q/k rows permuted for llama.cpp's adjacent-pair RoPE (formats.md §3.4); they are
// un-permuted here so that the weights are in Hugging Face layout and RoPE is the NeoX half-split,
// exactly as a safetensors checkpoint of the same model would load.
#pragma once

#include <string>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/io/gguf.hpp"
#include "mla/io/llama_permute.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/model_config.hpp"
#include "mla/model/tensor_names.hpp"

namespace mla::model {

namespace detail {
inline std::string gguf_key(const std::string& arch, const char* suffix) { return arch + "." + suffix; }

// A 1-D or 2-D GGUF tensor as a row-major float matrix [ne1, ne0] (PyTorch [out, in]).
inline ref::matrix<float> gguf_matrix(const io::gguf_file& f, const std::string& name, long rows, long cols) {
  const io::gguf_tensor_info& t = f.tensor(name);
  check(t.n_dims <= 2 && static_cast<long>(t.ne[0]) == cols && static_cast<long>(t.ne[1]) == rows, f.path(),
        ": tensor '", name, "' has ne = [", t.ne[0], ", ", t.ne[1], "] (", t.n_dims, " dims), expected [", cols, ", ",
        rows, "] ([in, out])");
  const std::vector<float> v = f.dequantize(t);
  return Eigen::Map<const ref::matrix<float>>(v.data(), rows, cols);
}

inline ref::vector<float> gguf_vector(const io::gguf_file& f, const std::string& name, long n) {
  const io::gguf_tensor_info& t = f.tensor(name);
  check(t.n_dims == 1 && static_cast<long>(t.ne[0]) == n, f.path(), ": tensor '", name, "' has ", t.numel,
        " elements in ", t.n_dims, " dims, expected a vector of ", n);
  const std::vector<float> v = f.dequantize(t);
  return Eigen::Map<const ref::vector<float>>(v.data(), n);
}

inline ref::vector<float> gguf_optional_vector(const io::gguf_file& f, const std::string& name, long n) {
  return f.find_tensor(name) ? gguf_vector(f, name, n) : ref::vector<float>();
}

// Undo llama.cpp's q/k permutation (rows grouped per head) on a weight or a bias.
inline void unpermute_rows(ref::matrix<float>& m, int n_head) {
  if (m.size() == 0) return;
  ref::matrix<float> out(m.rows(), m.cols());
  io::llama_unpermute_rows(m.data(), out.data(), static_cast<std::size_t>(m.rows()),
                           static_cast<std::size_t>(m.cols()) * sizeof(float), static_cast<std::size_t>(n_head));
  m.swap(out);
}
inline void unpermute_rows(ref::vector<float>& v, int n_head) {
  if (v.size() == 0) return;
  ref::matrix<float> m = Eigen::Map<ref::matrix<float>>(v.data(), v.size(), 1);
  unpermute_rows(m, n_head);
  v = Eigen::Map<ref::vector<float>>(m.data(), m.rows());
}
}  // namespace detail

// The model description from GGUF metadata (architecture "llama").
inline model_config config_from_gguf(const io::gguf_file& f) {
  const std::string arch = f.get<std::string>("general.architecture");
  check(arch == "llama", f.path(), ": general.architecture is '", arch,
        "'; this loader reads 'llama' (Llama-family, e.g. SmolLM2); mla::model::load_model also reads 'deepseek2' ",
        "(the project's export, deepseek2_gguf.hpp)");
  auto key = [&](const char* s) { return detail::gguf_key(arch, s); };
  model_config c;
  c.architecture = arch;
  c.n_layers = f.get_integer<int>(key("block_count"));
  c.hidden = f.get_integer<int>(key("embedding_length"));
  c.intermediate = f.get_integer<int>(key("feed_forward_length"));
  c.n_heads = f.get_integer<int>(key("attention.head_count"));
  c.n_kv_heads =
      f.contains(key("attention.head_count_kv")) ? f.get_integer<int>(key("attention.head_count_kv")) : c.n_heads;
  c.context_length = f.get_integer<int>(key("context_length"));
  check(c.n_heads > 0 && c.hidden % c.n_heads == 0, f.path(), ": ", key("embedding_length"), " = ", c.hidden,
        " is not a multiple of ", key("attention.head_count"), " = ", c.n_heads);
  c.head_dim =
      f.contains(key("attention.key_length")) ? f.get_integer<int>(key("attention.key_length")) : c.hidden / c.n_heads;
  c.rms_eps = f.get<float>(key("attention.layer_norm_rms_epsilon"));
  c.rope = ref::rope_config{};
  c.rope.dim = f.contains(key("rope.dimension_count")) ? f.get_integer<int>(key("rope.dimension_count")) : c.head_dim;
  check(c.rope.dim == c.head_dim, f.path(), ": ", key("rope.dimension_count"), " = ", c.rope.dim,
        " but head_dim = ", c.head_dim, "; partial-RoPE Llama models are not supported");
  c.rope.theta = f.get_or<float>(key("rope.freq_base"), 10000.0f);
  const std::string scaling = f.get_or<std::string>(key("rope.scaling.type"), "none");
  check(scaling == "none", f.path(), ": ", key("rope.scaling.type"), " = '", scaling, "' is not supported yet");
  check(!f.find_tensor("rope_freqs.weight"), f.path(),
        ": tensor 'rope_freqs.weight' (llama3 frequency factors) is not supported yet");
  const auto& tokens = f.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  c.vocab_size = f.contains(key("vocab_size")) ? f.get_integer<int>(key("vocab_size")) : int(tokens.size());
  c.tied_embeddings = f.find_tensor(gguf_tensor_name(tensor_role::lm_head)) == nullptr;
  c.attention_bias = f.find_tensor(gguf_tensor_name(tensor_role::q_bias, 0)) != nullptr;
  c.bos_id = f.contains("tokenizer.ggml.bos_token_id") ? f.get_integer<int>("tokenizer.ggml.bos_token_id") : -1;
  c.eos_id = f.contains("tokenizer.ggml.eos_token_id") ? f.get_integer<int>("tokenizer.ggml.eos_token_id") : -1;
  c.layers.assign(static_cast<std::size_t>(c.n_layers), layer_config{});
  c.validate();
  return c;
}

// Float weights of every tensor, dequantised once (Q4_1 / Q8_0 / F16 ... -> float).
inline model_weights<float> weights_from_gguf(const io::gguf_file& f, const model_config& c) {
  using detail::gguf_matrix;
  using detail::gguf_optional_vector;
  using detail::gguf_vector;
  model_weights<float> w;
  using R = tensor_role;
  w.embed = gguf_matrix(f, gguf_tensor_name(R::embed), c.vocab_size, c.hidden);
  if (!c.tied_embeddings) w.lm_head = gguf_matrix(f, gguf_tensor_name(R::lm_head), c.vocab_size, c.hidden);
  w.final_norm = gguf_vector(f, gguf_tensor_name(R::final_norm), c.hidden);
  const long q_dim = long(c.n_heads) * c.head_dim, kv_dim = long(c.n_kv_heads) * c.head_dim;
  for (int l = 0; l < c.n_layers; ++l) {
    auto name = [l](R role) { return gguf_tensor_name(role, l); };
    layer_weights<float> lw;
    lw.attn_norm = gguf_vector(f, name(R::attn_norm), c.hidden);
    lw.mlp_norm = gguf_vector(f, name(R::mlp_norm), c.hidden);
    auto& g = lw.gqa;
    g.hidden = c.hidden, g.n_heads = c.n_heads, g.n_kv_heads = c.n_kv_heads, g.head_dim = c.head_dim;
    g.wq = gguf_matrix(f, name(R::q_proj), q_dim, c.hidden);
    g.wk = gguf_matrix(f, name(R::k_proj), kv_dim, c.hidden);
    g.wv = gguf_matrix(f, name(R::v_proj), kv_dim, c.hidden);
    g.wo = gguf_matrix(f, name(R::o_proj), c.hidden, q_dim);
    g.bq = gguf_optional_vector(f, name(R::q_bias), q_dim);
    g.bk = gguf_optional_vector(f, name(R::k_bias), kv_dim);
    g.bv = gguf_optional_vector(f, name(R::v_bias), kv_dim);
    g.bo = gguf_optional_vector(f, name(R::o_bias), c.hidden);
    detail::unpermute_rows(g.wq, c.n_heads);
    detail::unpermute_rows(g.bq, c.n_heads);
    detail::unpermute_rows(g.wk, c.n_kv_heads);
    detail::unpermute_rows(g.bk, c.n_kv_heads);
    g.rope = c.rope;
    g.attention.softmax_scale = c.effective_softmax_scale();
    lw.mlp.w_gate = gguf_matrix(f, name(R::gate_proj), c.intermediate, c.hidden);
    lw.mlp.w_up = gguf_matrix(f, name(R::up_proj), c.intermediate, c.hidden);
    lw.mlp.w_down = gguf_matrix(f, name(R::down_proj), c.hidden, c.intermediate);
    w.layers.push_back(std::move(lw));
  }
  return w;
}

inline decoder<float> load_gguf(const std::string& path) {
  const io::gguf_file f = io::gguf_file::open(path);
  model_config c = config_from_gguf(f);
  return decoder<float>(c, weights_from_gguf(f, c));
}

}  // namespace mla::model
