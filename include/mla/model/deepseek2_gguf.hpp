// GGUF `deepseek2` export for llama.cpp (save_deepseek2_gguf) and the project's reader of it
// (deepseek2_from_gguf), so that `mla-eval --model x.gguf` evaluates what llama.cpp runs.
//
// The tensors are the DeepSeek-V3 export's (deepseek_v3.hpp: q with the scale fix and interleaved RoPE rows,
// kv_a_mqa = [latent; k_pe], the latent norm weight, ranks zero-padded to the largest), under llama.cpp's names and
// in ggml order (ne[0] fastest: a PyTorch [out, in] weight has ne = {in, out}):
//   token_embd {hidden, vocab}   output {hidden, vocab} (absent when tied)   output_norm {hidden}
//   blk.N.attn_norm {hidden}     blk.N.attn_q {hidden, H*(d+d_R)}   blk.N.attn_kv_a_mqa {hidden, r + d_R}
//   blk.N.attn_kv_a_norm {r}     blk.N.attn_k_b {d, r, H} (per head W_uk^T)   blk.N.attn_v_b {r, d, H} (per head W_uv)
//   blk.N.attn_output {H*d, hidden}   blk.N.ffn_norm {hidden}   ffn_gate / ffn_up {hidden, ff}   ffn_down {ff, hidden}
// Keys (deepseek2.*, as llama.cpp's loader reads them; integers UINT32, reals FLOAT32): block_count,
// context_length, embedding_length, feed_forward_length, vocab_size, attention.head_count, attention.head_count_kv
// = 1 (MLA is cached as one shared key), attention.key_length = r + d_R and value_length = r (the cached widths),
// attention.key_length_mla = d + d_R, value_length_mla = d (the per-head widths: they select llama.cpp's MLA path,
// which reads the split attn_k_b / attn_v_b), attention.kv_lora_rank = r, attention.q_lora_rank = 0 (required for
// models that are not "lite"; 0 selects the plain attn_q), leading_dense_block_count = block_count (every MLP
// dense), expert_feed_forward_length = ff and expert_shared_count = 0 (required, unused), rope.dimension_count =
// d_R, rope.freq_base, attention.layer_norm_rms_epsilon. llama.cpp rotates deepseek2 with adjacent pairs (ggml's
// NORM rope), the interleaved rows; its softmax scale is 1/sqrt(d + d_R), which the q scale fix accounts for.
// The source's tokenizer.* keys (vocabulary, merges, special ids, chat template) are copied.
//
// The latent norm: llama.cpp always applies attn_kv_a_norm, with the model's single RMS eps e_m. The norm is
// scale-invariant but for its eps, so the latent rows of attn_kv_a_mqa are multiplied by s = sqrt(e_m / e) where
// e is the eps over the padded rank that reproduces the intended norm: for a layer with its own latent norm (eps
// e_l, rank r < r_max) e = e_l r / r_max, which makes the export equal the converted model; for a layer without
// one (the constant weight sqrt(E||c||^2 / r_max)) e is DeepSeek's 1e-6, as in the DeepSeek-V3 export. So the
// read-back equals the DeepSeek-V3 export's in the second case and the converted model in the first; the latent
// rows differ from the DeepSeek-V3 export's by that factor s (and llama.cpp's cache holds s times the latent).
// Tensors: F32, F16 or Q8_0 (deepseek2_gguf_options::type); 1-D norms stay F32 (as llama.cpp's converter keeps
// them), and a Q8_0 tensor whose rows are not a multiple of 32 is written F16 (save_deepseek2_gguf's notes say which).
// Not exportable (errors): what the DeepSeek-V3 export refuses (biases, sinks, sliding windows, GQA layers,
// non-standard RoPE frequencies, RoPE scaling, non-Llama models), and a model without a latent norm weight
// (deepseek_export_options::latent_norm false: deepseek2 has no form without attn_kv_a_norm).
#pragma once

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/io/atomic_directory.hpp"
#include "mla/io/gguf.hpp"
#include "mla/io/gguf_writer.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/deepseek_v3.hpp"
#include "mla/model/load_gguf.hpp"
#include "mla/model/model_config.hpp"

namespace mla::model {

struct deepseek2_gguf_options {
  std::vector<double> latent_rms;           // as deepseek_export_options::latent_rms (layers without their own norm)
  io::ggml_type type = io::ggml_type::F32;  // F32, F16 or Q8_0
  std::string name;                         // general.name (empty: none)
  // Copied as they are (tokenizer_metadata(source) gives the tokenizer.* keys of a GGUF source).
  std::vector<std::pair<std::string, io::gguf_value>> tokenizer;
};

// The tokenizer.* keys of a GGUF file (vocabulary, merges, token types, special ids, pre-tokenizer, chat template).
inline std::vector<std::pair<std::string, io::gguf_value>> tokenizer_metadata(const io::gguf_file& f) {
  std::vector<std::pair<std::string, io::gguf_value>> out;
  for (const auto& kv : f.metadata())
    if (kv.first.rfind("tokenizer.", 0) == 0) out.push_back(kv);
  return out;
}

namespace detail {
inline const char* ggml_file_type_name(io::ggml_type t) {
  return t == io::ggml_type::F32 ? "f32" : t == io::ggml_type::F16 ? "f16" : "q8_0";
}
}  // namespace detail

// Writes `path` (one GGUF file, atomically; it must not exist). Returns notes for the user: the latent norm's eps
// handling and the tensors kept at a higher precision than asked.
template <class T>
std::vector<std::string> save_deepseek2_gguf(const std::string& path, const model_config& c, const model_weights<T>& w,
                                             const deepseek2_gguf_options& opt) {
  const char* who = "mla::model::save_deepseek2_gguf";
  check(opt.type == io::ggml_type::F32 || opt.type == io::ggml_type::F16 || opt.type == io::ggml_type::Q8_0, who,
        ": tensor type ", io::ggml_type_name(opt.type), " is not written (f32, f16 or q8_0)");
  deepseek_export_options base;
  base.latent_norm = true;
  base.latent_rms = opt.latent_rms;
  const int r_max = detail::check_deepseek_export(c, w, base, who, "GGUF deepseek2");
  io::check_new_output_path(path, who);
  const int dr = c.layers.at(0).rope_dim, d = c.head_dim, H = c.n_heads, hidden = c.hidden;
  const auto u32 = [](long v) { return static_cast<std::uint32_t>(v); };
  std::vector<std::string> notes;

  io::gguf_writer g;
  const std::string a = "deepseek2.";
  g.set("general.architecture", "deepseek2");
  if (!opt.name.empty()) g.set("general.name", opt.name);
  // llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7.
  g.set("general.file_type", u32(opt.type == io::ggml_type::F32 ? 0 : opt.type == io::ggml_type::F16 ? 1 : 7));
  if (opt.type == io::ggml_type::Q8_0) g.set("general.quantization_version", u32(2));
  g.set(a + "block_count", u32(c.n_layers));
  g.set(a + "context_length", u32(c.context_length > 0 ? c.context_length : 2048));
  g.set(a + "embedding_length", u32(hidden));
  g.set(a + "feed_forward_length", u32(c.intermediate));
  g.set(a + "vocab_size", u32(c.vocab_size));
  g.set(a + "attention.head_count", u32(H));
  g.set(a + "attention.head_count_kv", u32(1));
  g.set(a + "attention.key_length", u32(r_max + dr));
  g.set(a + "attention.value_length", u32(r_max));
  g.set(a + "attention.key_length_mla", u32(d + dr));
  g.set(a + "attention.value_length_mla", u32(d));
  g.set(a + "attention.q_lora_rank", u32(0));
  g.set(a + "attention.kv_lora_rank", u32(r_max));
  g.set(a + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_eps));
  g.set(a + "leading_dense_block_count", u32(c.n_layers));
  g.set(a + "expert_feed_forward_length", u32(c.intermediate));
  g.set(a + "expert_shared_count", u32(0));
  g.set(a + "rope.dimension_count", u32(dr));
  g.set(a + "rope.freq_base", static_cast<float>(c.rope.theta));
  for (const auto& kv : opt.tokenizer) g.set(kv.first, kv.second);

  std::vector<std::string> fallback;
  // A PyTorch [out, in] (row-major) matrix, or a vector, with ne = its shape reversed (extra: a third axis).
  auto put = [&](const std::string& name, std::vector<std::uint64_t> ne, const float* data) {
    io::ggml_type t = ne.size() == 1 ? io::ggml_type::F32 : opt.type;
    if (t == io::ggml_type::Q8_0 && ne[0] % 32 != 0) {
      t = io::ggml_type::F16;
      fallback.push_back(name);
    }
    g.add_tensor(name, std::move(ne), t, data);
  };
  auto put_matrix = [&](const std::string& name, const ref::matrix<float>& m) {
    put(name, {std::uint64_t(m.cols()), std::uint64_t(m.rows())}, m.data());
  };
  auto put_vector = [&](const std::string& name, const ref::vector<float>& v) {
    put(name, {std::uint64_t(v.size())}, v.data());
  };
  const auto f = [](const auto& x) { return x.template cast<float>().eval(); };
  put_matrix("token_embd.weight", f(w.embed));
  if (!c.tied_embeddings) put_matrix("output.weight", f(w.lm_head));
  put_vector("output_norm.weight", f(w.final_norm));
  const double e_model = static_cast<float>(c.rms_eps);  // what llama.cpp reads
  double s_min = INFINITY, s_max = 0;
  int own = 0;
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& lw = w.layers[static_cast<std::size_t>(l)];
    const ref::mla_layer<T>& m = lw.mla;
    const std::string p = "blk." + std::to_string(l) + ".";
    detail::deepseek_layer_tensors t = detail::deepseek_layer(c, w, l, deepseek_widths{r_max, dr}, base, who);
    // The eps over r_max that gives the intended norm, and the latent scale that turns it into e_model.
    const double e = t.own_norm ? m.latent_norm_eps * m.latent_rank / r_max : deepseek_latent_norm_eps;
    const double s = std::sqrt(e_model / e);
    own += t.own_norm ? 1 : 0;
    s_min = std::min(s_min, s), s_max = std::max(s_max, s);
    t.kv_a.topRows(r_max) = (t.kv_a.topRows(r_max).template cast<double>() * s).template cast<float>();
    put_vector(p + "attn_norm.weight", f(lw.attn_norm));
    put_matrix(p + "attn_q.weight", t.q);
    put_matrix(p + "attn_kv_a_mqa.weight", t.kv_a);
    put_vector(p + "attn_kv_a_norm.weight", t.kv_norm);
    // kv_b [H*2d, r_max] -> k_b [H][r_max][d] (W_uk^T per head) and v_b [H][d][r_max] (W_uv per head).
    std::vector<float> kb(std::size_t(H) * r_max * d), vb(std::size_t(H) * d * r_max);
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < r_max; ++j) {
          kb[(std::size_t(h) * r_max + j) * d + i] = t.kv_b(Eigen::Index(h) * 2 * d + i, j);
          vb[(std::size_t(h) * d + i) * r_max + j] = t.kv_b(Eigen::Index(h) * 2 * d + d + i, j);
        }
    put(p + "attn_k_b.weight", {std::uint64_t(d), std::uint64_t(r_max), std::uint64_t(H)}, kb.data());
    put(p + "attn_v_b.weight", {std::uint64_t(r_max), std::uint64_t(d), std::uint64_t(H)}, vb.data());
    put_matrix(p + "attn_output.weight", f(m.wo));
    put_vector(p + "ffn_norm.weight", f(lw.mlp_norm));
    put_matrix(p + "ffn_gate.weight", f(lw.mlp.w_gate));
    put_matrix(p + "ffn_up.weight", f(lw.mlp.w_up));
    put_matrix(p + "ffn_down.weight", f(lw.mlp.w_down));
  }
  g.write(path);
  std::ostringstream n;
  n << "latent norm: llama.cpp applies attn_kv_a_norm with the model's eps " << e_model << "; the latent rows of "
    << "attn_kv_a_mqa are scaled by " << s_min << (s_max > s_min * (1 + 1e-12) ? " to " + std::to_string(s_max) : "")
    << " so that the norm is the intended one (" << own << " of " << c.n_layers << " layers carry their own norm: exact"
    << (own < c.n_layers ? "; the others the constant weight sqrt(E||c||^2/r), as the DeepSeek-V3 export: not exact"
                         : "")
    << ")";
  notes.push_back(n.str());
  if (!fallback.empty()) {
    std::string names;
    for (std::size_t i = 0; i < fallback.size(); ++i) names += (i ? ", " : "") + fallback[i];
    if (fallback.size() > 4) names = fallback[0] + ", ... (" + std::to_string(fallback.size()) + " tensors)";
    notes.push_back(std::string("written F16 instead of Q8_0 (rows not a multiple of 32): ") + names);
  }
  return notes;
}

// Reads a deepseek2 GGUF with dense MLPs and no q LoRA (what save_deepseek2_gguf writes) into the project's
// decoder: RoPE rows de-interleaved to NeoX, attn_k_b / attn_v_b joined into w_uk / w_uv, attn_kv_a_norm applied
// as the layer's latent norm with the model's RMS eps (as llama.cpp does), softmax scale 1/sqrt(d + d_R).
inline decoder<float> deepseek2_from_gguf(const io::gguf_file& f) {
  using detail::gguf_matrix;
  using detail::gguf_vector;
  const std::string arch = f.get<std::string>("general.architecture");
  check(arch == "deepseek2", f.path(), ": general.architecture is '", arch, "', expected 'deepseek2'");
  auto key = [](const char* s) { return std::string("deepseek2.") + s; };
  auto integer = [&](const char* s) { return f.get_integer<int>(key(s)); };
  model_config c;
  c.architecture = "llama";  // the project's forward: dense SwiGLU blocks
  c.n_layers = integer("block_count");
  c.hidden = integer("embedding_length");
  c.intermediate = integer("feed_forward_length");
  c.n_heads = integer("attention.head_count");
  c.context_length = integer("context_length");
  c.rms_eps = f.get<float>(key("attention.layer_norm_rms_epsilon"));
  const int r = integer("attention.kv_lora_rank"), dr = integer("rope.dimension_count");
  const int dk = integer("attention.key_length_mla"), dv = integer("attention.value_length_mla");
  const int dn = dk - dr;
  check(f.get_integer<int>(key("attention.q_lora_rank")) == 0, f.path(), ": ", key("attention.q_lora_rank"),
        " must be 0 (attn_q_a / attn_q_b are not read)");
  check(integer("leading_dense_block_count") >= c.n_layers, f.path(), ": ", key("leading_dense_block_count"),
        " must be >= block_count (MoE layers are not read)");
  check(integer("attention.head_count_kv") == 1 && integer("attention.key_length") == r + dr &&
            integer("attention.value_length") == r,
        f.path(),
        ": the MLA cache needs head_count_kv = 1, key_length = kv_lora_rank + rope.dimension_count = ", r + dr,
        " and value_length = kv_lora_rank = ", r);
  check(dn > 0 && dv == dn && dr % 2 == 0, f.path(), ": key_length_mla (", dk, ") - rope.dimension_count (", dr,
        ") must equal value_length_mla (", dv, ") and the RoPE width be even");
  const std::string scaling = f.get_or<std::string>(key("rope.scaling.type"), "none");
  check(scaling == "none", f.path(), ": ", key("rope.scaling.type"), " = '", scaling, "' is not read");
  c.head_dim = dn;
  c.n_kv_heads = c.n_heads;
  c.softmax_scale = 1.0 / std::sqrt(double(dn + dr));
  c.rope = ref::rope_config{};
  c.rope.dim = dr;
  c.rope.theta = f.get_or<float>(key("rope.freq_base"), 10000.0f);
  c.vocab_size = f.contains(key("vocab_size")) ? integer("vocab_size")
                                               : int(f.get<std::vector<std::string>>("tokenizer.ggml.tokens").size());
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  c.bos_id = f.contains("tokenizer.ggml.bos_token_id") ? f.get_integer<int>("tokenizer.ggml.bos_token_id") : -1;
  c.eos_id = f.contains("tokenizer.ggml.eos_token_id") ? f.get_integer<int>("tokenizer.ggml.eos_token_id") : -1;
  c.layers.assign(static_cast<std::size_t>(c.n_layers), layer_config{});
  for (layer_config& lc : c.layers) {
    lc.attention = attention_kind::mla;
    lc.latent_rank = r;
    lc.rope_dim = dr;
  }
  c.validate();

  // A 3-D tensor [ne2][ne1][ne0] as floats, its shape checked.
  auto tensor3 = [&](const std::string& name, long ne0, long ne1, long ne2) {
    const io::gguf_tensor_info& t = f.tensor(name);
    check(t.n_dims == 3 && long(t.ne[0]) == ne0 && long(t.ne[1]) == ne1 && long(t.ne[2]) == ne2, f.path(), ": tensor '",
          name, "' has ne = [", t.ne[0], ", ", t.ne[1], ", ", t.ne[2], "] (", t.n_dims, " dims), expected [", ne0, ", ",
          ne1, ", ", ne2, "]");
    return f.dequantize(t);
  };
  model_weights<float> w;
  w.embed = gguf_matrix(f, "token_embd.weight", c.vocab_size, c.hidden);
  if (!c.tied_embeddings) w.lm_head = gguf_matrix(f, "output.weight", c.vocab_size, c.hidden);
  w.final_norm = gguf_vector(f, "output_norm.weight", c.hidden);
  const int H = c.n_heads, qk = dn + dr;
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    layer_weights<float> lw;
    lw.attn_norm = gguf_vector(f, p + "attn_norm.weight", c.hidden);
    lw.mlp_norm = gguf_vector(f, p + "ffn_norm.weight", c.hidden);
    ref::mla_layer<float>& m = lw.mla;
    m.hidden = c.hidden, m.n_heads = H, m.nope_dim = dn, m.rope_dim = dr, m.latent_rank = r, m.v_head_dim = dv;
    detail::set_deepseek_q_kv_a(m, gguf_matrix(f, p + "attn_q.weight", long(H) * qk, c.hidden),
                                gguf_matrix(f, p + "attn_kv_a_mqa.weight", r + dr, c.hidden));
    m.latent_norm = gguf_vector(f, p + "attn_kv_a_norm.weight", r);
    m.latent_norm_eps = c.rms_eps;
    const std::vector<float> kb = tensor3(p + "attn_k_b.weight", dn, r, H);
    const std::vector<float> vb = tensor3(p + "attn_v_b.weight", r, dv, H);
    m.w_uk.resize(long(H) * dn, r);
    m.w_uv.resize(long(H) * dv, r);
    for (int h = 0; h < H; ++h)
      for (int j = 0; j < r; ++j) {
        for (int i = 0; i < dn; ++i) m.w_uk(Eigen::Index(h) * dn + i, j) = kb[(std::size_t(h) * r + j) * dn + i];
        for (int i = 0; i < dv; ++i) m.w_uv(Eigen::Index(h) * dv + i, j) = vb[(std::size_t(h) * dv + i) * r + j];
      }
    m.wo = gguf_matrix(f, p + "attn_output.weight", c.hidden, long(H) * dv);
    m.rope = c.rope;
    m.attention.softmax_scale = c.softmax_scale;
    lw.mlp.w_gate = gguf_matrix(f, p + "ffn_gate.weight", c.intermediate, c.hidden);
    lw.mlp.w_up = gguf_matrix(f, p + "ffn_up.weight", c.intermediate, c.hidden);
    lw.mlp.w_down = gguf_matrix(f, p + "ffn_down.weight", c.hidden, c.intermediate);
    w.layers.push_back(std::move(lw));
  }
  return decoder<float>(c, std::move(w));
}

}  // namespace mla::model
