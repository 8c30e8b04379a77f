// Synthetic gpt-oss checkpoints in the exact Hugging Face layout of openai/gpt-oss-20b (formats.md §1.1,
// §1.7): config.json (rope_scaling form, layer_types, quantization_config), shards named
// model-0000i-of-0000n.safetensors with i = 0..n (the converter's off-by-one naming) and
// model.safetensors.index.json; BF16 everywhere except the MXFP4 experts (U8 blocks and scales).
//
// Weights are seeded random with trained-like scales: q/k give attention logits of std ~2, router
// logits of std ~1, gate/up pre-activations of std ~2.5 (so the clamp at 7 engages now and then).
// Every tensor has its own stream seeded by (seed, name), so the content does not depend on sharding,
// and the generator (splitmix64 + Box-Muller) is the same on every platform: a seed fixes the bytes.
// Shards are generated and written one at a time, so a 20b checkpoint needs one shard of memory.
// A vocabulary below o200k's size also gets a synthetic o200k-form tokenizer.json (gpt_oss_tokenizer.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/io/atomic_file.hpp"
#include "mla/io/dtype.hpp"
#include "mla/io/safetensors.hpp"
#include "mla/model/config_json.hpp"
#include "mla/model/gpt_oss_tokenizer.hpp"
#include "mla/model/tensor_names.hpp"

namespace mla::model {

struct gpt_oss_shape {
  int n_layers = 4;
  int hidden = 128;
  int n_heads = 8;
  int n_kv_heads = 2;
  int head_dim = 64;
  int n_experts = 8;
  int experts_per_token = 4;
  int intermediate = 128;
  int vocab_size = 512;
  int sliding_window = 8;

  // 4 layers (2 sliding, 2 full), hidden 128, 8/2 heads of 64, 8 experts top-4, vocab 512, window 8.
  static gpt_oss_shape tiny() { return {}; }
  // Between the two, for end-to-end runs that take minutes on a CPU: 8 layers (4 sliding, 4 full), hidden 768,
  // 16/2 heads of 64 (20b's 8 query heads per KV head), 16 experts top-4, vocab 32768, window 128.
  static gpt_oss_shape mid() { return {8, 768, 16, 2, 64, 16, 4, 768, 32768, 128}; }
  // openai/gpt-oss-20b.
  static gpt_oss_shape gpt_oss_20b() { return {24, 2880, 64, 8, 64, 32, 4, 2880, 201088, 128}; }

  void validate() const {
    const char* o = "gpt_oss_shape";
    check(n_layers > 0 && hidden > 0 && n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, o, ": layers ",
          n_layers, ", hidden ", hidden, ", heads ", n_heads, "/", n_kv_heads, " are inconsistent");
    check(head_dim > 0 && head_dim % 2 == 0, o, ": head_dim must be positive and even, found ", head_dim);
    check(hidden % 32 == 0 && intermediate % 32 == 0 && intermediate > 0, o, ": hidden (", hidden,
          ") and intermediate (", intermediate, ") must be positive multiples of 32 (MXFP4 blocks)");
    check(n_experts > 0 && experts_per_token > 0 && experts_per_token <= n_experts, o, ": experts_per_token ",
          experts_per_token, " must be in [1, n_experts = ", n_experts, "]");
    check(vocab_size > 0 && sliding_window >= 0, o, ": vocab_size ", vocab_size, ", sliding_window ", sliding_window);
  }
};

namespace detail {

// splitmix64: tiny, fast, identical everywhere.
struct splitmix64 {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
  double normal() {  // Box-Muller, one value per call (simple and reproducible)
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

inline std::uint64_t tensor_seed(std::uint64_t seed, const std::string& name) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a of the name, mixed with the seed
  for (const unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h ^ (seed * 0x9E3779B97F4A7C15ull);
}

// One tensor to generate: BF16 normal(offset, scale), or MXFP4 blocks / scales of a matrix whose
// elements should have std ~`scale`.
struct tensor_spec {
  enum kind_t { normal, mxfp4_blocks, mxfp4_scales } kind = normal;
  std::string name;
  std::vector<std::int64_t> shape;
  double scale = 1, offset = 0;

  std::uint64_t numel() const {
    std::uint64_t n = 1;
    for (const auto d : shape) n *= static_cast<std::uint64_t>(d);
    return n;
  }
  std::uint64_t bytes() const { return kind == normal ? 2 * numel() : numel(); }

  std::vector<std::uint8_t> generate(std::uint64_t seed) const {
    splitmix64 rng{tensor_seed(seed, name)};
    const std::size_t n = static_cast<std::size_t>(numel());
    std::vector<std::uint8_t> out(static_cast<std::size_t>(bytes()));
    if (kind == normal) {
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t b = io::float_to_bf16(static_cast<float>(offset + scale * rng.normal()));
        out[2 * i] = static_cast<std::uint8_t>(b & 0xFF);
        out[2 * i + 1] = static_cast<std::uint8_t>(b >> 8);
      }
    } else if (kind == mxfp4_blocks) {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(rng.next() >> 56);
    } else {
      // A uniformly random E2M1 nibble has RMS ~2.93; the E8M0 exponent centres the block on `scale`,
      // +-1 at random so that blocks differ in range as trained ones do.
      const int e0 = 127 + static_cast<int>(std::lround(std::log2(scale / 2.93)));
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(e0 - 1 + static_cast<int>(rng.next() % 3));
    }
    return out;
  }
};

inline std::vector<tensor_spec> gpt_oss_specs(const gpt_oss_shape& s) {
  using I = std::int64_t;
  const I h = s.hidden, q = I(s.n_heads) * s.head_dim, kv = I(s.n_kv_heads) * s.head_dim, e = s.n_experts;
  const I im = s.intermediate;
  const double in_h = 1.0 / std::sqrt(double(h));
  std::vector<tensor_spec> v;
  auto add = [&](std::string name, std::vector<I> shape, double scale, double offset = 0) {
    v.push_back({tensor_spec::normal, std::move(name), std::move(shape), scale, offset});
  };
  auto add_q = [&](const std::string& name, I rows, I cols, double scale) {
    v.push_back({tensor_spec::mxfp4_blocks, name + "_blocks", {e, rows, cols / 32, 16}, scale, 0});
    v.push_back({tensor_spec::mxfp4_scales, name + "_scales", {e, rows, cols / 32}, scale, 0});
  };
  using R = tensor_role;
  add(hf_tensor_name(R::embed), {s.vocab_size, h}, 1.0);
  for (int l = 0; l < s.n_layers; ++l) {
    auto name = [l](R role) { return hf_tensor_name(role, l); };
    const std::string experts = name(R::experts);
    add(name(R::attn_norm), {h}, 0.1, 1.0);
    add(name(R::q_proj), {q, h}, in_h);
    add(name(R::q_bias), {q}, 0.1);
    add(name(R::k_proj), {kv, h}, in_h);
    add(name(R::k_bias), {kv}, 0.1);
    add(name(R::v_proj), {kv, h}, in_h);
    add(name(R::v_bias), {kv}, 0.1);
    add(name(R::o_proj), {h, q}, 1.0 / std::sqrt(double(q)));
    add(name(R::o_bias), {h}, 0.05);
    add(name(R::sinks), {s.n_heads}, 1.0, 0.5);
    add(name(R::mlp_norm), {h}, 0.1, 1.0);
    add(name(R::router), {e, h}, in_h);
    add(name(R::router_bias), {e}, 0.3);
    add_q(experts + "gate_up_proj", 2 * im, h, 2.5 * in_h);
    add(experts + "gate_up_proj_bias", {e, 2 * im}, 0.1);
    add_q(experts + "down_proj", h, im, 1.0 / (3.0 * std::sqrt(double(im))));
    add(experts + "down_proj_bias", {e, h}, 0.05);
  }
  add(hf_tensor_name(R::final_norm), {h}, 0.1, 1.0);
  add(hf_tensor_name(R::lm_head), {s.vocab_size, h}, 2.0 * in_h);
  return v;
}

}  // namespace detail

// config.json of openai/gpt-oss-20b with the dimensions of `s` (the rope_scaling form, as on the hub).
inline nlohmann::ordered_json gpt_oss_config_json(const gpt_oss_shape& s) {
  nlohmann::ordered_json layer_types = nlohmann::ordered_json::array();
  for (int l = 0; l < s.n_layers; ++l) layer_types.push_back(l % 2 == 0 ? "sliding_attention" : "full_attention");
  const int eos = s.vocab_size > 200002 ? 200002 : s.vocab_size - 1;
  const int pad = s.vocab_size > 199999 ? 199999 : s.vocab_size - 2;
  return {{"architectures", nlohmann::ordered_json::array({"GptOssForCausalLM"})},
          {"attention_bias", true},
          {"attention_dropout", 0.0},
          {"eos_token_id", eos},
          {"experts_per_token", s.experts_per_token},
          {"head_dim", s.head_dim},
          {"hidden_act", "silu"},
          {"hidden_size", s.hidden},
          {"initial_context_length", 4096},
          {"initializer_range", 0.02},
          {"intermediate_size", s.intermediate},
          {"layer_types", layer_types},
          {"max_position_embeddings", 131072},
          {"model_type", "gpt_oss"},
          {"num_attention_heads", s.n_heads},
          {"num_experts_per_tok", s.experts_per_token},
          {"num_hidden_layers", s.n_layers},
          {"num_key_value_heads", s.n_kv_heads},
          {"num_local_experts", s.n_experts},
          {"output_router_logits", false},
          {"pad_token_id", pad},
          {"quantization_config",
           {{"modules_to_not_convert",
             nlohmann::ordered_json::array(
                 {"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"})},
            {"quant_method", "mxfp4"}}},
          {"rms_norm_eps", 1e-05},
          {"rope_scaling",
           {{"beta_fast", 32.0},
            {"beta_slow", 1.0},
            {"factor", 32.0},
            {"original_max_position_embeddings", 4096},
            {"rope_type", "yarn"},
            {"truncate", false}}},
          {"rope_theta", 150000},
          {"router_aux_loss_coef", 0.9},
          {"sliding_window", s.sliding_window},
          {"swiglu_limit", 7.0},
          {"tie_word_embeddings", false},
          {"transformers_version", "4.55.0.dev0"},
          {"use_cache", true},
          {"vocab_size", s.vocab_size}};
}

// Writes config.json, the shards (at most `max_shard_bytes` of tensor data each, a larger tensor alone)
// and the index into `dir` (created if needed). Returns the shard count. `on_shard(i, n)` reports progress.
template <class Progress>
int write_gpt_oss_checkpoint(const std::string& dir, const gpt_oss_shape& s, std::uint64_t seed,
                             std::uint64_t max_shard_bytes, Progress&& on_shard) {
  namespace fs = std::filesystem;
  s.validate();
  check(max_shard_bytes > 0, "write_gpt_oss_checkpoint: max_shard_bytes must be > 0");
  fs::create_directories(dir);
  const std::vector<detail::tensor_spec> specs = detail::gpt_oss_specs(s);
  // Plan the shards from the sizes alone, so names (which carry the count) are known up front.
  std::vector<std::vector<std::size_t>> shards;
  std::uint64_t current = 0, total = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const std::uint64_t b = specs[i].bytes();
    if (shards.empty() || (current + b > max_shard_bytes && !shards.back().empty())) shards.emplace_back(), current = 0;
    shards.back().push_back(i);
    current += b, total += b;
  }
  auto five = [](std::size_t x) {
    std::string t = std::to_string(x);
    return std::string(t.size() < 5 ? 5 - t.size() : 0, '0') + t;
  };
  const std::size_t last = shards.size() - 1;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < shards.size(); ++i) {
    const std::string file = "model-" + five(i) + "-of-" + five(last) + ".safetensors";
    io::safetensors_writer w;
    w.set_metadata("format", "pt");
    for (const std::size_t k : shards[i]) {
      const detail::tensor_spec& t = specs[k];
      w.add(t.name, t.kind == detail::tensor_spec::normal ? io::dtype::BF16 : io::dtype::U8, t.shape, t.generate(seed));
      weight_map[t.name] = file;
    }
    w.write((fs::path(dir) / file).string());
    on_shard(static_cast<int>(i), static_cast<int>(shards.size()));
  }
  const nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  io::write_file_atomically((fs::path(dir) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
  write_config_json(dir, gpt_oss_config_json(s));
  // A vocabulary smaller than o200k's gets a synthetic o200k-form tokenizer.json (gpt_oss_tokenizer.hpp);
  // the full-size one has none, and load_model() falls back to the real o200k vocabulary when it is at hand.
  if (s.vocab_size >= 266 && s.vocab_size < 201088)
    io::write_file_atomically((fs::path(dir) / "tokenizer.json").string(),
                              synthetic_o200k_tokenizer_json(s.vocab_size));
  return static_cast<int>(shards.size());
}

inline int write_gpt_oss_checkpoint(const std::string& dir, const gpt_oss_shape& s, std::uint64_t seed,
                                    std::uint64_t max_shard_bytes) {
  return write_gpt_oss_checkpoint(dir, s, seed, max_shard_bytes, [](int, int) {});
}

}  // namespace mla::model
