// DeepSeek-V3 layout for converted Llama-family models: export (save_deepseek_v3) and the project's reader of
// that layout (load_deepseek_v3), so that an export can be run through the project's own forward.
//
// Per layer, prefix "model.layers.N.self_attn." (PyTorch [out, in]; q_lora_rank null, so no q_a/q_b):
//   q_proj              [H*(d_n+d_R), hidden]   per head d_n content rows, then d_R RoPE rows INTERLEAVED
//   kv_a_proj_with_mqa  [r + d_R, hidden]       rows [0, r): latent; rows [r, r+d_R): shared key, interleaved
//   kv_a_layernorm      [r]                     RMSNorm of the latent before kv_b (DeepSeek code always applies it)
//   kv_b_proj           [H*(d_n+d_v), r]        per head d_n key rows, then d_v value rows
//   o_proj              [hidden, H*d_v]
// config.json: model_type "deepseek_v3", kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim,
// q_lora_rank null, first_k_dense_replace = num_hidden_layers (every MLP dense), rope_interleave true.
//
// RoPE rows: DeepSeek stores the rotated pairs adjacent (2i, 2i+1) and de-interleaves before a half-split
// rotation; the project's layers are NeoX (i, i + d_R/2). Export row 2i = NeoX row i, row 2i+1 = row i + d_R/2.
// Softmax scale: DeepSeek uses 1/sqrt(d_n + d_R); the converted layers use the source's s_src = 1/sqrt(d), so every
// q row is multiplied by s_src * sqrt(d_n + d_R) (= sqrt((d + d_R)/d) for Llama). Exact.
// Latent norm: NOT exact. DeepSeek normalises every token's latent to RMS 1 (times the weight); the converted
// latent was never normalised. The export sets kv_a_layernorm to the constant sqrt(E||c||^2 / r) measured on
// calibration inputs, so a token whose latent has the typical RMS is unchanged and others are rescaled by
// typical/own RMS (keys' content part and values alike). What that costs is measured, not assumed. A layer
// that already carries a latent norm (mla-convert --latent-norm, trained through it by the distillation) is
// exported with its own weight instead, rescaled by sqrt(r / r_max) for the padding.
// Ranks differing across layers are padded with zero latent channels to the largest (exact without the norm;
// with it the padding is part of the RMS and the weight accounts for it). Not exportable (errors): biases,
// sinks, sliding windows, GQA layers left unconverted, per-layer RoPE frequencies (RoRoPE with FreqFold on a
// non-standard ladder), RoPE scaling.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/io/safetensors.hpp"
#include "mla/model/config_json.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/hf_config.hpp"
#include "mla/model/load_safetensors.hpp"
#include "mla/model/model_config.hpp"
#include "mla/model/save_checkpoint.hpp"
#include "mla/model/tensor_names.hpp"

namespace mla::model {

namespace detail {
// Row permutation of a RoPE block of width dr: interleaved row 2i <- NeoX row i, 2i+1 <- i + dr/2.
inline int neox_row_of_interleaved(int j, int dr) { return j % 2 == 0 ? j / 2 : j / 2 + dr / 2; }
}  // namespace detail

// DeepSeek's kv_a_layernorm epsilon (DeepseekV3RMSNorm's default; the config has no field for it).
inline constexpr double deepseek_latent_norm_eps = mla_latent_norm_eps;

struct deepseek_export_options {
  bool latent_norm = true;         // false: omit kv_a_layernorm (exact, but stock DeepSeek code expects it)
  std::vector<double> latent_rms;  // [n_layers] sqrt(E||c||^2 / r_max) per layer (convert::latent_mean_square);
                                   // unused for layers that carry their own latent norm
  io::dtype type = io::dtype::F32;
  // Stock vLLM's MLA backends cache 512 + 64 (or 256 + 64) values per token and refuse other widths: the latent
  // zero-padded to 256 or 512 and the RoPE key to 64 (export_widths). An exact rewrite; the cache grows to it.
  bool vllm_widths = false;
};

// The exported widths: kv_lora_rank (>= r_max, the largest latent rank; the extra latent channels are zero) and
// qk_rope_head_dim (a multiple of d_R: pair p of the d_R ladder, frequency theta^(-2p/d_R), becomes pair
// p * rope / d_R of the wider ladder, which has the same frequency; the pairs between are zero rows).
// With a latent norm, widening the latent beyond the model's r_max also scales its rows by
// latent_scale = sqrt(latent / r_max): the mean square over the wider latent then equals the unwidened one, so
// DeepSeek's fixed eps (1e-6) acts as before and the normed latent is the unwidened export's exactly.
struct deepseek_widths {
  int latent = 0;
  int rope = 0;
  double latent_scale = 1.0;
};

// As converted ({r_max, d_R}), or with opt.vllm_widths vLLM's: latent 256 if r_max <= 256 else 512, RoPE 64.
inline deepseek_widths export_widths(int r_max, int dr, const deepseek_export_options& opt, const char* who) {
  if (!opt.vllm_widths) return {r_max, dr};
  check(r_max <= 512, who, ": vLLM widths: the largest latent rank is ", r_max,
        ", above 512, the widest latent vLLM's MLA backends cache (512 + 64 per token)");
  check(dr <= 64 && 64 % dr == 0, who, ": vLLM widths: d_R = ", dr,
        " does not divide 64, so its RoPE frequencies are not on vLLM's 64-wide ladder");
  const int latent = r_max <= 256 ? 256 : 512;
  return {latent, 64, std::sqrt(double(latent) / double(r_max))};
}

namespace detail {

// The attention tensors of one exported layer, in DeepSeek's layout (PyTorch [out, in]); the DeepSeek-V3 and the
// GGUF deepseek2 exports write these same numbers (deepseek2_gguf.hpp splits kv_b per head).
struct deepseek_layer_tensors {
  ref::matrix<float> q;          // [H*(d+d_R), hidden]: content rows, then interleaved RoPE rows; times q_fix
  ref::matrix<float> kv_a;       // [r_max + d_R, hidden]: latent rows (zero padded), then the interleaved k_pe rows
  ref::vector<float> kv_norm;    // [r_max] kv_a_layernorm weight; empty when opt.latent_norm is false
  ref::matrix<float> kv_b;       // [H*2d, r_max]: per head d key rows, then d value rows (zero padded columns)
  bool own_norm = false;         // kv_norm is the layer's own latent norm (else the constant sqrt(E||c||^2/r_max))
};

// Checks that every layer can be exported (throws naming the layer and what is wrong); returns r_max, the
// largest latent rank, to which every layer is padded.
template <class T>
int check_deepseek_export(const model_config& c, const model_weights<T>& w, const deepseek_export_options& opt,
                          const char* who, const char* format = "DeepSeek-V3") {
  c.validate();
  check(c.architecture == "llama" && c.mlp == mlp_kind::swiglu, who,
        ": only Llama-family (SwiGLU) models are exported");
  check(c.rope.scaling == ref::rope_scaling::none, who,
        ": RoPE scaling is not exported (DeepSeek maps it to its YaRN)");
  int r_max = 0;
  const int dr = c.layers.at(0).rope_dim, d = c.head_dim;
  for (int l = 0; l < c.n_layers; ++l) {
    const layer_config& lc = c.layers[static_cast<std::size_t>(l)];
    const ref::mla_layer<T>& m = w.layers[static_cast<std::size_t>(l)].mla;
    const std::string lw = std::string(who) + ": layer " + std::to_string(l);
    check(lc.attention == attention_kind::mla, lw, " is GQA; ", format, " has MLA in every layer");
    check(lc.rope_dim == dr, lw, ": rope_dim ", lc.rope_dim, " differs from layer 0's ", dr);
    check(m.rope.inv_freq_override.empty(), lw, ": its RoPE key keeps non-standard frequencies (RoRoPE with a ",
          "FreqFold that is not every c-th frequency, or the attention strategy), which ", format,
          " cannot express");
    check(m.bq.size() == 0 && m.b_dkv.size() == 0 && m.b_kr.size() == 0 && m.bo.size() == 0, lw,
          ": attention biases are not part of ", format);
    check(m.sinks.size() == 0 && m.attention.sliding_window == 0, lw, ": sinks / sliding windows are not exported");
    check(m.nope_dim == d && m.v_head_dim == d && !m.uses_latent_rope(), lw, ": unexpected layer shape");
    check(!opt.latent_norm || m.latent_norm.size() != 0 || static_cast<int>(opt.latent_rms.size()) == c.n_layers, lw,
          ": needs a latent_rms entry for every layer (its own norm is absent); latent_rms has ", opt.latent_rms.size(),
          " entries, expected n_layers = ", c.n_layers);
    r_max = std::max(r_max, m.latent_rank);
  }
  return r_max;
}

// Layer l's tensors (check_deepseek_export first). RoPE rows interleaved (and placed on the wider ladder when
// wd.rope > d_R), q scaled by s_src * sqrt(d + wd.rope), ranks padded to wd.latent (the header comment).
template <class T>
deepseek_layer_tensors deepseek_layer(const model_config& c, const model_weights<T>& w, int l,
                                      const deepseek_widths& wd, const deepseek_export_options& opt, const char* who) {
  using dmat = ref::matrix<double>;
  const int dr = c.layers.at(0).rope_dim, d = c.head_dim, H = c.n_heads, hidden = c.hidden;
  const int r_max = wd.latent, dr_out = wd.rope, stride = dr_out / dr;
  const double q_fix = c.effective_softmax_scale() * std::sqrt(double(d + dr_out));  // s_src / s_deepseek
  const ref::mla_layer<T>& m = w.layers[static_cast<std::size_t>(l)].mla;
  const int r = m.latent_rank;
  deepseek_layer_tensors out;
  const int qk = d + dr_out;
  // Exported interleaved RoPE row j (pair j / 2 of the exported ladder) <- the source's NeoX row of pair
  // (j / 2) / stride, or none (a zero row) between the source's pairs.
  const auto source_rope_row = [&](int j) {
    const int pair = j / 2;
    return pair % stride != 0 ? -1 : detail::neox_row_of_interleaved(2 * (pair / stride) + j % 2, dr);
  };
  dmat q = dmat::Zero(Eigen::Index(H) * qk, hidden);
  for (int h = 0; h < H; ++h) {
    const Eigen::Index base = Eigen::Index(h) * qk, src = Eigen::Index(h) * (d + dr);
    q.middleRows(base, d) = m.wq.middleRows(src, d).template cast<double>();
    for (int j = 0; j < dr_out; ++j)
      if (const int k = source_rope_row(j); k >= 0) q.row(base + d + j) = m.wq.row(src + d + k).template cast<double>();
  }
  q *= q_fix;
  out.q = q.cast<float>();
  dmat kv_a = dmat::Zero(r_max + dr_out, hidden);
  kv_a.topRows(r) = m.w_dkv.template cast<double>() * (opt.latent_norm ? wd.latent_scale : 1.0);
  for (int j = 0; j < dr_out; ++j)
    if (const int k = source_rope_row(j); k >= 0) kv_a.row(r_max + j) = m.w_kr.row(k).template cast<double>();
  out.kv_a = kv_a.cast<float>();
  dmat kv_b = dmat::Zero(Eigen::Index(H) * (d + d), r_max);
  for (int h = 0; h < H; ++h) {
    kv_b.block(Eigen::Index(h) * 2 * d, 0, d, r) = m.w_uk.middleRows(Eigen::Index(h) * d, d).template cast<double>();
    kv_b.block(Eigen::Index(h) * 2 * d + d, 0, d, r) =
        m.w_uv.middleRows(Eigen::Index(h) * d, d).template cast<double>();
  }
  out.kv_b = kv_b.cast<float>();
  if (opt.latent_norm && m.latent_norm.size() != 0) {
    // Own weight; the zero-padded channels make the RMS over r_max smaller by sqrt(r / r_max).
    out.kv_norm = ref::vector<float>::Zero(r_max);
    out.kv_norm.head(r) =
        (m.latent_norm.template cast<double>() * std::sqrt(double(r) / double(r_max))).template cast<float>();
    out.own_norm = true;
  } else if (opt.latent_norm) {
    const double s = opt.latent_rms[static_cast<std::size_t>(l)];
    check(std::isfinite(s) && s > 0, who, ": layer ", l, " latent_rms must be finite and > 0, found ", s);
    out.kv_norm = ref::vector<float>::Constant(r_max, float(s));
  }
  return out;
}

// The loaders' inverse of deepseek_layer's q and kv_a (without q_fix): m's shape fields set, q [H*(d_n+d_R), hidden]
// and kv_a [r+d_R, hidden] with interleaved RoPE rows -> wq, w_dkv, w_kr with the project's NeoX half-split rows.
inline void set_deepseek_q_kv_a(ref::mla_layer<float>& m, const ref::matrix<float>& q, const ref::matrix<float>& kv_a) {
  const int H = m.n_heads, dn = m.nope_dim, dr = m.rope_dim, r = m.latent_rank, qk = dn + dr;
  m.wq = q;
  for (int h = 0; h < H; ++h)
    for (int j = 0; j < dr; ++j)
      m.wq.row(Eigen::Index(h) * qk + dn + neox_row_of_interleaved(j, dr)) = q.row(Eigen::Index(h) * qk + dn + j);
  m.w_dkv = kv_a.topRows(r);
  m.w_kr.resize(dr, m.hidden);
  for (int j = 0; j < dr; ++j) m.w_kr.row(neox_row_of_interleaved(j, dr)) = kv_a.row(r + j);
}

}  // namespace detail

// Writes the DeepSeek-V3 layout of a fully converted Llama-family model into `dir` (atomic, like save_checkpoint).
template <class T>
void save_deepseek_v3(const std::string& dir, const model_config& c, const model_weights<T>& w,
                      const deepseek_export_options& opt, const std::vector<checkpoint_file>& extra_files = {}) {
  const char* who = "mla::model::save_deepseek_v3";
  const int r_model = detail::check_deepseek_export(c, w, opt, who);
  const deepseek_widths wd = export_widths(r_model, c.layers.at(0).rope_dim, opt, who);
  const int r_max = wd.latent, dr_out = wd.rope;
  for (int l = 0; l < c.n_layers; ++l) {
    const ref::mla_layer<T>& m = w.layers[static_cast<std::size_t>(l)].mla;
    check(m.latent_norm.size() == 0 || (opt.latent_norm && m.latent_norm_eps == deepseek_latent_norm_eps), who,
          ": layer ", l, ": it carries a latent norm (eps ", m.latent_norm_eps, "), which an export without ",
          "kv_a_layernorm would drop; export with the norm (eps ", deepseek_latent_norm_eps, ")");
  }
  const int dr = c.layers.at(0).rope_dim, d = c.head_dim, H = c.n_heads, hidden = c.hidden;
  io::check_new_output_path(dir, who);

  io::safetensors_writer st;
  st.set_metadata("format", "pt");
  detail::add_tensor(st, opt.type, hf_tensor_name(tensor_role::embed), w.embed);
  detail::add_tensor(st, opt.type, hf_tensor_name(tensor_role::lm_head), c.tied_embeddings ? w.embed : w.lm_head);
  detail::add_tensor(st, opt.type, hf_tensor_name(tensor_role::final_norm), w.final_norm);
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& lw = w.layers[static_cast<std::size_t>(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    detail::add_tensor(st, opt.type, hf_tensor_name(tensor_role::attn_norm, l), lw.attn_norm);
    detail::add_tensor(st, opt.type, hf_tensor_name(tensor_role::mlp_norm, l), lw.mlp_norm);
    const detail::deepseek_layer_tensors t = detail::deepseek_layer(c, w, l, wd, opt, who);
    const std::string a = p + "self_attn.";
    detail::add_tensor(st, opt.type, hf_tensor_name(tensor_role::q_proj, l), t.q);
    detail::add_tensor(st, opt.type, a + "kv_a_proj_with_mqa.weight", t.kv_a);
    if (t.kv_norm.size() != 0) detail::add_tensor(st, opt.type, a + "kv_a_layernorm.weight", t.kv_norm);
    detail::add_tensor(st, opt.type, a + "kv_b_proj.weight", t.kv_b);
    detail::add_tensor(st, opt.type, hf_tensor_name(tensor_role::o_proj, l), lw.mla.wo);
    detail::add_tensor(st, opt.type, hf_tensor_name(tensor_role::gate_proj, l), lw.mlp.w_gate);
    detail::add_tensor(st, opt.type, hf_tensor_name(tensor_role::up_proj, l), lw.mlp.w_up);
    detail::add_tensor(st, opt.type, hf_tensor_name(tensor_role::down_proj, l), lw.mlp.w_down);
  }
  nlohmann::ordered_json j = {{"architectures", nlohmann::ordered_json::array({"DeepseekV3ForCausalLM"})},
                              {"model_type", "deepseek_v3"},
                              {"vocab_size", c.vocab_size},
                              {"hidden_size", hidden},
                              {"intermediate_size", c.intermediate},
                              {"moe_intermediate_size", c.intermediate},
                              {"num_hidden_layers", c.n_layers},
                              {"num_attention_heads", H},
                              {"num_key_value_heads", H},
                              {"n_shared_experts", 1},
                              {"n_routed_experts", 1},
                              {"num_experts_per_tok", 1},
                              {"n_group", 1},
                              {"topk_group", 1},
                              {"moe_layer_freq", 1},
                              {"first_k_dense_replace", c.n_layers},
                              {"q_lora_rank", nullptr},
                              {"kv_lora_rank", r_max},
                              {"qk_nope_head_dim", d},
                              {"qk_rope_head_dim", dr_out},
                              {"qk_head_dim", d + dr_out},
                              {"v_head_dim", d},
                              {"hidden_act", "silu"},
                              {"max_position_embeddings", c.context_length > 0 ? c.context_length : 2048},
                              {"rms_norm_eps", c.rms_eps},
                              {"rope_theta", c.rope.theta},
                              {"rope_scaling", nullptr},
                              {"rope_interleave", true},
                              {"attention_bias", false},
                              {"tie_word_embeddings", false},
                              {"torch_dtype", opt.type == io::dtype::F32 ? "float32" : "bfloat16"}};
  add_token_ids_json(j, c);
  // Not a DeepSeek field: records that the latent norm is an approximation (or absent) for readers of this export.
  bool own_norm = false;
  for (const auto& lw : w.layers) own_norm = own_norm || lw.mla.latent_norm.size() != 0;
  j["mla_export"] = {{"source", "mla-convert"},
                     {"latent_norm", !opt.latent_norm ? "absent: exact"
                                     : own_norm ? "the converted layers' own norm (trained through): exact for them"
                                                : "constant weight sqrt(E||c||^2/r): not exact"}};
  if (opt.vllm_widths)
    j["mla_export"]["vllm_widths"] = {{"cached_per_token", r_max + dr_out},
                                      {"converted_per_token", r_model + dr},
                                      {"note", "latent and RoPE key zero-padded for vLLM's MLA backends (exact)"}};
  detail::write_checkpoint_directory(dir, who, st, j, extra_files);
}

// Reads a DeepSeek-V3-layout checkpoint with dense MLPs and q_lora_rank null (what save_deepseek_v3 writes) into
// the project's decoder: RoPE rows de-interleaved to NeoX, kv_a/kv_b split per head, kv_a_layernorm applied as
// the layer's latent norm (when present), softmax scale 1/sqrt(qk_nope + qk_rope).
inline decoder<float> load_deepseek_v3(const std::string& dir) {
  namespace fs = std::filesystem;
  using detail::st_matrix;
  using detail::st_vector;
  const std::string path = (fs::path(dir) / "config.json").string();
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "cannot open '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
  check(!j.is_discarded(), path, ": not valid JSON");
  const detail::json_fields f(j, path);
  check(f.string("model_type") == "deepseek_v3", path, ": field \"model_type\" must be \"deepseek_v3\"");
  check(!f.has("q_lora_rank"), path, ": field \"q_lora_rank\" must be null (q_a/q_b projections are not read)");
  model_config c;
  c.architecture = "llama";  // the project's forward: dense SwiGLU blocks
  detail::common_from_hf(f, c);
  check(f.integer_or("first_k_dense_replace", 0) >= c.n_layers, path,
        ": field \"first_k_dense_replace\" must be >= num_hidden_layers (MoE layers are not read)");
  const int r = f.positive("kv_lora_rank"), dn = f.positive("qk_nope_head_dim"), dr = f.positive("qk_rope_head_dim");
  const int dv = f.positive("v_head_dim");
  check(dv == dn, path, ": v_head_dim (", dv, ") must equal qk_nope_head_dim (", dn, ")");
  check(dr % 2 == 0, path, ": field \"qk_rope_head_dim\" must be even, found ", dr);
  check(f.boolean_or("rope_interleave", true), path, ": field \"rope_interleave\" = false is not read");
  check(!f.has("rope_scaling"), path, ": field \"rope_scaling\" must be null");
  c.head_dim = dn;
  c.softmax_scale = 1.0 / std::sqrt(double(dn + dr));
  c.rope = ref::rope_config{};
  c.rope.dim = dr;
  c.rope.theta = f.number("rope_theta");
  c.tied_embeddings = f.boolean_or("tie_word_embeddings", false);
  for (layer_config& lc : c.layers) {
    lc.attention = attention_kind::mla;
    lc.latent_rank = r;
    lc.rope_dim = dr;
  }
  c.validate();
  const auto ck = io::safetensors_checkpoint::open(dir);
  model_weights<float> w;
  w.embed = st_matrix(ck, hf_tensor_name(tensor_role::embed), c.vocab_size, c.hidden);
  if (!c.tied_embeddings) w.lm_head = st_matrix(ck, hf_tensor_name(tensor_role::lm_head), c.vocab_size, c.hidden);
  w.final_norm = st_vector(ck, hf_tensor_name(tensor_role::final_norm), c.hidden);
  const int H = c.n_heads, qk = dn + dr;
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", a = p + "self_attn.";
    layer_weights<float> lw;
    lw.attn_norm = st_vector(ck, hf_tensor_name(tensor_role::attn_norm, l), c.hidden);
    lw.mlp_norm = st_vector(ck, hf_tensor_name(tensor_role::mlp_norm, l), c.hidden);
    ref::mla_layer<float>& m = lw.mla;
    m.hidden = c.hidden, m.n_heads = H, m.nope_dim = dn, m.rope_dim = dr, m.latent_rank = r, m.v_head_dim = dv;
    detail::set_deepseek_q_kv_a(m, st_matrix(ck, hf_tensor_name(tensor_role::q_proj, l), long(H) * qk, c.hidden),
                                st_matrix(ck, a + "kv_a_proj_with_mqa.weight", r + dr, c.hidden));
    if (ck.contains(a + "kv_a_layernorm.weight")) {
      m.latent_norm = st_vector(ck, a + "kv_a_layernorm.weight", r);
      m.latent_norm_eps = deepseek_latent_norm_eps;
    }
    const ref::matrix<float> kv_b = st_matrix(ck, a + "kv_b_proj.weight", long(H) * (dn + dv), r);
    m.w_uk.resize(long(H) * dn, r);
    m.w_uv.resize(long(H) * dv, r);
    for (int h = 0; h < H; ++h) {
      m.w_uk.middleRows(Eigen::Index(h) * dn, dn) = kv_b.middleRows(Eigen::Index(h) * (dn + dv), dn);
      m.w_uv.middleRows(Eigen::Index(h) * dv, dv) = kv_b.middleRows(Eigen::Index(h) * (dn + dv) + dn, dv);
    }
    m.wo = st_matrix(ck, hf_tensor_name(tensor_role::o_proj, l), c.hidden, long(H) * dv);
    m.rope = c.rope;
    m.attention.softmax_scale = c.softmax_scale;
    lw.mlp.w_gate = st_matrix(ck, hf_tensor_name(tensor_role::gate_proj, l), c.intermediate, c.hidden);
    lw.mlp.w_up = st_matrix(ck, hf_tensor_name(tensor_role::up_proj, l), c.intermediate, c.hidden);
    lw.mlp.w_down = st_matrix(ck, hf_tensor_name(tensor_role::down_proj, l), c.hidden, c.intermediate);
    w.layers.push_back(std::move(lw));
  }
  return decoder<float>(c, std::move(w));
}

}  // namespace mla::model
