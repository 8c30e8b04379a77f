// Maps a Hugging Face checkpoint directory (config.json + model.safetensors or a sharded index) onto a
// float decoder, for model_type "gpt_oss" (formats.md §1.7) and "llama".
//
// gpt-oss experts stay in the memory-mapped file as MXFP4 (U8 blocks [E, rows, cols/32, 16] and scales
// [E, rows, cols/32]); mxfp4_experts expands one expert at a time when the MoE block asks for it
// (a 20b expert is ~100 MB in float; all 32 x 24 of them would be ~76 GB), over the OpenMP threads by rows.
// Everything else is read once into floats (BF16 in gpt-oss; any float dtype is accepted).
// Mapped pages are handed back once read (safetensors_checkpoint::release): a tensor's after its conversion to
// float, an expert's after its expansion. Pages of a file mapping that were read count in the resident set
// until the kernel reclaims them; without this, loading the 20b peaks with the BF16 pages beside their float
// copies, and a prefill that routes to every expert leaves the ~12 GB of MXFP4 resident.
// HF weights are already in the NeoX half-split RoPE layout, so nothing is permuted (unlike GGUF).
// Layers that config.json's "mla" object marks as MLA read the project's MLA tensors (mla_config.hpp).
#pragma once

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/io/mxfp4.hpp"
#include "mla/io/safetensors.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/hf_config.hpp"
#include "mla/model/mla_config.hpp"
#include "mla/model/model_config.hpp"
#include "mla/model/tensor_names.hpp"
#include "mla/reference/moe.hpp"
#include "mla/util/for_each_index.hpp"

namespace mla::model {

namespace detail {

inline void check_shape(const io::tensor_view& t, const std::vector<std::int64_t>& expected) {
  check(t.shape == expected, "safetensors '", t.file, "': tensor '", t.name, "' has shape ", io::shape_string(t.shape),
        ", expected ", io::shape_string(expected));
}

inline ref::matrix<float> st_matrix(const io::safetensors_checkpoint& ck, const std::string& name, long rows,
                                    long cols) {
  const io::tensor_view& t = ck.tensor(name);
  check_shape(t, {rows, cols});
  ref::matrix<float> m(rows, cols);
  io::to_float(t, m.data(), static_cast<std::size_t>(m.size()));
  ck.release(t.bytes);
  return m;
}

inline ref::vector<float> st_vector(const io::safetensors_checkpoint& ck, const std::string& name, long n) {
  const io::tensor_view& t = ck.tensor(name);
  check_shape(t, {n});
  ref::vector<float> v(n);
  io::to_float(t, v.data(), static_cast<std::size_t>(n));
  ck.release(t.bytes);
  return v;
}

inline ref::vector<float> st_optional_vector(const io::safetensors_checkpoint& ck, const std::string& name, long n) {
  return ck.contains(name) ? st_vector(ck, name, n) : ref::vector<float>();
}

// MLA layer l's attention from the project's checkpoint format (mla_config.hpp); `p` is "model.layers.N.".
inline ref::mla_layer<float> st_mla_layer(const io::safetensors_checkpoint& f, const std::string& p,
                                          const model_config& c, int l) {
  const layer_config& lc = c.layers[static_cast<std::size_t>(l)];
  const std::string a = p + "self_attn.";
  const long d = c.head_dim, dr = lc.rope_dim, r = lc.latent_rank, h = c.n_heads;
  auto name = [&](const char* stem, const char* kind) { return a + stem + "." + kind; };
  ref::mla_layer<float> m;
  m.hidden = c.hidden, m.n_heads = c.n_heads, m.nope_dim = c.head_dim, m.rope_dim = lc.rope_dim;
  m.latent_rank = lc.latent_rank, m.v_head_dim = c.head_dim;
  m.wq = st_matrix(f, name(mla_tensor::q_proj, "weight"), h * (d + dr), c.hidden);
  m.bq = st_optional_vector(f, name(mla_tensor::q_proj, "bias"), h * (d + dr));
  m.w_dkv = st_matrix(f, name(mla_tensor::kv_a_proj, "weight"), r, c.hidden);
  m.b_dkv = st_optional_vector(f, name(mla_tensor::kv_a_proj, "bias"), r);
  m.latent_norm = st_optional_vector(f, name(mla_tensor::kv_a_norm, "weight"), r);
  m.latent_norm_eps = mla_latent_norm_eps;
  m.w_kr = st_matrix(f, name(mla_tensor::k_rope_proj, "weight"), dr, c.hidden);
  m.b_kr = st_optional_vector(f, name(mla_tensor::k_rope_proj, "bias"), dr);
  m.w_uk = st_matrix(f, name(mla_tensor::k_b_proj, "weight"), h * d, r);
  m.w_uv = st_matrix(f, name(mla_tensor::v_b_proj, "weight"), h * d, r);
  m.wo = st_matrix(f, name(mla_tensor::o_proj, "weight"), c.hidden, h * d);
  m.bo = st_optional_vector(f, name(mla_tensor::o_proj, "bias"), c.hidden);
  if (c.attention_sinks) m.sinks = st_vector(f, a + mla_tensor::sinks, c.n_heads);
  m.rope = mla_layer_rope(c, l);
  m.attention.softmax_scale = c.effective_softmax_scale();
  m.attention.sliding_window = lc.sliding_window;
  m.validate();
  return m;
}

}  // namespace detail

// gpt-oss experts of one layer, kept as MXFP4 in the mapped checkpoint; load() dequantises one expert.
// Holds the checkpoint alive through a shared pointer (the views point into its mapping).
// raw_tensors() hands out the checkpoint's own tensors, so a saver copies them byte for byte
// (save_checkpoint.hpp) instead of re-quantising the dequantised floats.
class mxfp4_experts final : public ref::expert_source<float> {
 public:
  // One source tensor: its name after "model.layers.N.mlp.experts." and its view into the mapping (valid while
  // this object, or the checkpoint() it shares, lives).
  struct raw_tensor {
    std::string suffix;
    const io::tensor_view* view = nullptr;
  };

  // `prefix` is "model.layers.N.mlp.experts."; checks every tensor's dtype and shape.
  mxfp4_experts(std::shared_ptr<const io::safetensors_checkpoint> ck, const std::string& prefix, int n_experts,
                int hidden, int intermediate)
      : ck_(std::move(ck)), n_experts_(n_experts), hidden_(hidden), intermediate_(intermediate) {
    check(hidden % 32 == 0 && intermediate % 32 == 0, "mxfp4 experts '", prefix, "': hidden (", hidden,
          ") and intermediate (", intermediate, ") must be multiples of the 32-value block");
    gate_up_ = quantized(prefix + "gate_up_proj", 2L * intermediate, hidden);
    down_ = quantized(prefix + "down_proj", hidden, intermediate);
    gate_up_bias_ = detail::st_matrix(*ck_, prefix + "gate_up_proj_bias", n_experts, 2L * intermediate);
    down_bias_ = detail::st_matrix(*ck_, prefix + "down_proj_bias", n_experts, hidden);
    gate_up_bias_view_ = &ck_->tensor(prefix + "gate_up_proj_bias");
    down_bias_view_ = &ck_->tensor(prefix + "down_proj_bias");
  }

  int count() const override { return n_experts_; }
  int hidden() const { return hidden_; }
  int intermediate() const { return intermediate_; }
  const std::shared_ptr<const io::safetensors_checkpoint>& checkpoint() const { return ck_; }

  // The six source tensors in Hugging Face order: gate_up_proj_blocks, gate_up_proj_scales, gate_up_proj_bias,
  // down_proj_blocks, down_proj_scales, down_proj_bias (dtype, shape and bytes as in the checkpoint).
  std::vector<raw_tensor> raw_tensors() const {
    return {{"gate_up_proj_blocks", gate_up_.blocks},  {"gate_up_proj_scales", gate_up_.scales},
            {"gate_up_proj_bias", gate_up_bias_view_}, {"down_proj_blocks", down_.blocks},
            {"down_proj_scales", down_.scales},        {"down_proj_bias", down_bias_view_}};
  }

  void load(int e, ref::moe_expert<float>& out) const override {
    check(e >= 0 && e < n_experts_, "mxfp4 experts: expert ", e, " is outside [0, ", n_experts_, ")");
    out.w_gate_up.resize(2L * intermediate_, hidden_);
    dequantize(*ck_, gate_up_, e, out.w_gate_up);
    out.w_down.resize(hidden_, intermediate_);
    dequantize(*ck_, down_, e, out.w_down);
    out.b_gate_up = gate_up_bias_.row(e).transpose();
    out.b_down = down_bias_.row(e).transpose();
  }

 private:
  struct packed {
    const io::tensor_view* blocks = nullptr;  // U8 [E, rows, cols/32, 16]
    const io::tensor_view* scales = nullptr;  // U8 [E, rows, cols/32]
    long rows = 0, cols = 0;
  };

  packed quantized(const std::string& name, long rows, long cols) const {
    packed p;
    p.blocks = &ck_->tensor(name + "_blocks");
    p.scales = &ck_->tensor(name + "_scales");
    p.rows = rows, p.cols = cols;
    for (const io::tensor_view* t : {p.blocks, p.scales})
      check(t->type == io::dtype::U8, "safetensors '", t->file, "': tensor '", t->name, "' has dtype ",
            io::dtype_name(t->type), ", expected U8 (MXFP4)");
    detail::check_shape(*p.blocks, {n_experts_, rows, cols / 32, 16});
    detail::check_shape(*p.scales, {n_experts_, rows, cols / 32});
    return p;
  }

  // Row r of expert e: blocks bytes [(e * rows + r) * cols/2, +cols/2), scales [(e * rows + r) * cols/32, +cols/32).
  // Rows in chunks over the OpenMP threads (each row is written by one thread: the result does not depend on
  // the thread count); the expert's mapped bytes are handed back afterwards.
  static void dequantize(const io::safetensors_checkpoint& ck, const packed& p, int e, ref::matrix<float>& out) {
    const std::size_t groups = static_cast<std::size_t>(p.cols / 32);
    const std::size_t first_row = static_cast<std::size_t>(e) * static_cast<std::size_t>(p.rows);
    constexpr long chunk = 64;
    util::for_each_index(static_cast<std::size_t>((p.rows + chunk - 1) / chunk), [&](std::size_t c) {
      const long end = std::min(p.rows, static_cast<long>(c + 1) * chunk);
      for (long r = static_cast<long>(c) * chunk; r < end; ++r) {
        const std::size_t row = first_row + static_cast<std::size_t>(r);
        const io::byte_span blocks{p.blocks->bytes.data + row * groups * 16, groups * 16};
        const io::byte_span scales{p.scales->bytes.data + row * groups, groups};
        io::dequantize_mxfp4_row(blocks, scales, out.data() + r * p.cols, static_cast<std::size_t>(p.cols));
      }
    });
    const std::size_t rows = static_cast<std::size_t>(p.rows);
    ck.release({p.blocks->bytes.data + first_row * groups * 16, rows * groups * 16});
    ck.release({p.scales->bytes.data + first_row * groups, rows * groups});
  }

  std::shared_ptr<const io::safetensors_checkpoint> ck_;
  int n_experts_, hidden_, intermediate_;
  packed gate_up_, down_;
  ref::matrix<float> gate_up_bias_;  // [E, 2 * intermediate]
  ref::matrix<float> down_bias_;     // [E, hidden]
  const io::tensor_view* gate_up_bias_view_ = nullptr;
  const io::tensor_view* down_bias_view_ = nullptr;
};

// Float weights for config `c` from an open checkpoint (HF tensor names).
inline model_weights<float> weights_from_safetensors(std::shared_ptr<const io::safetensors_checkpoint> ck,
                                                     const model_config& c) {
  using detail::st_matrix;
  using detail::st_optional_vector;
  using detail::st_vector;
  const io::safetensors_checkpoint& f = *ck;
  const bool gpt_oss = c.architecture == "gpt_oss";
  check(gpt_oss || c.architecture == "llama", "safetensors '", f.path(), "': architecture '", c.architecture,
        "' is not supported (gpt_oss or llama)");
  model_weights<float> w;
  using R = tensor_role;
  w.embed = st_matrix(f, hf_tensor_name(R::embed), c.vocab_size, c.hidden);
  if (!c.tied_embeddings) w.lm_head = st_matrix(f, hf_tensor_name(R::lm_head), c.vocab_size, c.hidden);
  w.final_norm = st_vector(f, hf_tensor_name(R::final_norm), c.hidden);
  const long q_dim = long(c.n_heads) * c.head_dim, kv_dim = long(c.n_kv_heads) * c.head_dim;
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto name = [l](R role) { return hf_tensor_name(role, l); };
    layer_weights<float> lw;
    lw.attn_norm = st_vector(f, name(R::attn_norm), c.hidden);
    lw.mlp_norm = st_vector(f, name(R::mlp_norm), c.hidden);
    if (c.layers[static_cast<std::size_t>(l)].attention == attention_kind::gqa) {
      auto& g = lw.gqa;
      g.hidden = c.hidden, g.n_heads = c.n_heads, g.n_kv_heads = c.n_kv_heads, g.head_dim = c.head_dim;
      g.wq = st_matrix(f, name(R::q_proj), q_dim, c.hidden);
      g.wk = st_matrix(f, name(R::k_proj), kv_dim, c.hidden);
      g.wv = st_matrix(f, name(R::v_proj), kv_dim, c.hidden);
      g.wo = st_matrix(f, name(R::o_proj), c.hidden, q_dim);
      if (c.attention_bias) {
        g.bq = st_vector(f, name(R::q_bias), q_dim);
        g.bk = st_vector(f, name(R::k_bias), kv_dim);
        g.bv = st_vector(f, name(R::v_bias), kv_dim);
        g.bo = st_optional_vector(f, name(R::o_bias), c.hidden);  // Qwen2-style: no o bias
      }
      if (c.attention_sinks) g.sinks = st_vector(f, name(R::sinks), c.n_heads);
      g.rope = c.rope;
      g.attention.softmax_scale = c.effective_softmax_scale();
      g.attention.sliding_window = c.layers[static_cast<std::size_t>(l)].sliding_window;
    } else {
      lw.mla = detail::st_mla_layer(f, p, c, l);
    }
    if (c.mlp == mlp_kind::moe) {
      auto& m = lw.moe;
      m.hidden = c.hidden, m.intermediate = c.intermediate;
      m.n_experts = c.n_experts, m.experts_per_token = c.experts_per_token;
      m.swiglu_limit = c.swiglu_limit, m.swiglu_alpha = c.swiglu_alpha;
      m.w_router = st_matrix(f, name(R::router), c.n_experts, c.hidden);
      m.b_router = st_optional_vector(f, name(R::router_bias), c.n_experts);
      const std::string experts = name(R::experts);
      check(f.contains(experts + "gate_up_proj_blocks"), "safetensors '", f.path(), "': tensor '", experts,
            "gate_up_proj_blocks' is missing (only MXFP4 experts are supported)");
      m.experts = std::make_shared<mxfp4_experts>(ck, experts, c.n_experts, c.hidden, c.intermediate);
    } else {
      lw.mlp.w_gate = st_matrix(f, name(R::gate_proj), c.intermediate, c.hidden);
      lw.mlp.w_up = st_matrix(f, name(R::up_proj), c.intermediate, c.hidden);
      lw.mlp.w_down = st_matrix(f, name(R::down_proj), c.hidden, c.intermediate);
    }
    w.layers.push_back(std::move(lw));
  }
  return w;
}

// A checkpoint directory -> decoder.
inline decoder<float> load_safetensors(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path config_path = fs::path(dir) / "config.json";
  check(fs::exists(config_path), "mla: checkpoint directory '", dir, "' has no config.json");
  const model_config c = config_from_hf_file(config_path.string());
  auto ck = std::make_shared<const io::safetensors_checkpoint>(io::safetensors_checkpoint::open(dir));
  return decoder<float>(c, weights_from_safetensors(std::move(ck), c));
}

}  // namespace mla::model
