// The tiny deepseek2 GGUF of the llama.cpp golden (deepseek2_golden_test.cpp, tools/deepseek2_golden.py), written
// by write_deepseek2_tiny for a seed: the same bytes on every CPU (a 64-bit LCG and uniform values, no
// std::*_distribution or libm in the weights; the export's own arithmetic is IEEE double/float casts and sqrt).
//
// The model is a converted one in every respect the export reads: 2 layers, hidden 64, 4 heads of d_n = 16 with a
// decoupled RoPE of d_R = 8 (theta 10000), latent ranks 24 and 16 (layer 1 zero-padded to 24 in the file), each with
// its own latent norm of eps 1e-6 (the model's RMS eps is 1e-5, so the export rescales the latent rows), source
// softmax scale 1/sqrt(d_n) (the export's q fix to 1/sqrt(d_n + d_R)), SwiGLU of 128, untied head, and a minimal
// byte-level BPE vocabulary (the 256 GPT-2 byte tokens and 4 merges: llama.cpp and the project's tokenizer both
// need a "gpt2" vocabulary), so vocab = 260.
//   mla-make-deepseek2-tiny <out.gguf> [seed]   (tests/model/deepseek2_tiny_main.cpp)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mla/model/deepseek2_gguf.hpp"

namespace mla::test {

struct deepseek2_tiny {
  model::model_config cfg;
  model::model_weights<float> w;
};

namespace detail {

// Knuth's MMIX LCG; the top 53 bits give a uniform double in [0, 1).
struct tiny_rng {
  std::uint64_t s;
  double uniform() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) * 0x1.0p-53;
  }
  // Uniform on [-a, a] with a = sqrt(3) * stddev, so the given spread.
  double centred(double stddev) { return (2 * uniform() - 1) * 1.7320508075688772 * stddev; }
  ref::matrix<float> mat(Eigen::Index rows, Eigen::Index cols, double stddev) {
    ref::matrix<float> m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<float>(centred(stddev));
    return m;
  }
  ref::vector<float> around_one(Eigen::Index n, double spread) {
    ref::vector<float> v(n);
    for (Eigen::Index i = 0; i < n; ++i) v[i] = static_cast<float>(1 + centred(spread));
    return v;
  }
};

// GPT-2's byte-to-unicode map: printable bytes stand for themselves, the others for U+0100 on; UTF-8 encoded.
inline std::string gpt2_byte_token(int b) {
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

}  // namespace detail

constexpr std::uint64_t deepseek2_tiny_seed = 20250214;

inline deepseek2_tiny make_deepseek2_tiny(std::uint64_t seed) {
  constexpr int hidden = 64, heads = 4, d = 16, dr = 8, ff = 128;
  const int ranks[2] = {24, 16};
  detail::tiny_rng g{seed};
  deepseek2_tiny t;
  model::model_config& c = t.cfg;
  c.architecture = "llama";
  c.vocab_size = 260;
  c.hidden = hidden;
  c.n_layers = 2;
  c.n_heads = c.n_kv_heads = heads;
  c.head_dim = d;
  c.intermediate = ff;
  c.context_length = 256;
  c.rms_eps = 1e-5;
  c.rope.dim = dr;
  c.rope.theta = 10000;
  c.tied_embeddings = false;
  const double s_in = 1.0 / std::sqrt(double(hidden));
  t.w.embed = g.mat(c.vocab_size, hidden, 1.0);
  t.w.lm_head = g.mat(c.vocab_size, hidden, 2 * s_in);
  t.w.final_norm = g.around_one(hidden, 0.2);
  for (int l = 0; l < c.n_layers; ++l) {
    const int r = ranks[l];
    model::layer_config lc;
    lc.attention = model::attention_kind::mla;
    lc.latent_rank = r;
    lc.rope_dim = dr;
    c.layers.push_back(lc);
    model::layer_weights<float> lw;
    lw.attn_norm = g.around_one(hidden, 0.2);
    lw.mlp_norm = g.around_one(hidden, 0.2);
    ref::mla_layer<float>& m = lw.mla;
    m.hidden = hidden, m.n_heads = heads, m.nope_dim = d, m.rope_dim = dr, m.latent_rank = r, m.v_head_dim = d;
    // Spreads large enough that attention is not uniform and RoPE / the q scale move the logits.
    m.wq = g.mat(heads * (d + dr), hidden, 3 * s_in);
    m.w_dkv = g.mat(r, hidden, s_in);
    m.w_kr = g.mat(dr, hidden, 3 * s_in);
    m.w_uk = g.mat(heads * d, r, 3 / std::sqrt(double(r)));
    m.w_uv = g.mat(heads * d, r, 1 / std::sqrt(double(r)));
    m.wo = g.mat(hidden, heads * d, 1 / std::sqrt(double(heads * d)));
    m.latent_norm = g.around_one(r, 0.3);
    m.latent_norm_eps = 1e-6;
    m.rope = c.rope;
    m.attention.softmax_scale = c.effective_softmax_scale();  // 1/sqrt(d_n): the source's, not deepseek2's
    lw.mlp.w_gate = g.mat(ff, hidden, s_in);
    lw.mlp.w_up = g.mat(ff, hidden, s_in);
    lw.mlp.w_down = g.mat(hidden, ff, 1 / std::sqrt(double(ff)));
    t.w.layers.push_back(std::move(lw));
  }
  c.validate();
  return t;
}

// The tokenizer.* keys: byte-level BPE ("gpt2", pre "gpt-2"), 256 byte tokens then 4 merged ones.
inline std::vector<std::pair<std::string, io::gguf_value>> deepseek2_tiny_tokenizer() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(detail::gpt2_byte_token(b));
  const std::string sp = detail::gpt2_byte_token(' ');  // "Ġ"
  std::vector<std::string> merges = {sp + " t", "h e", sp + "t he", "i n"};
  for (const std::string& mg : merges) {
    const auto cut = mg.find(' ');
    tokens.push_back(mg.substr(0, cut) + mg.substr(cut + 1));
  }
  return {{"tokenizer.ggml.model", io::gguf_value(std::string("gpt2"))},
          {"tokenizer.ggml.pre", io::gguf_value(std::string("gpt-2"))},
          {"tokenizer.ggml.tokens", io::gguf_value(tokens)},
          {"tokenizer.ggml.token_type", io::gguf_value(std::vector<std::int32_t>(tokens.size(), 1))},
          {"tokenizer.ggml.merges", io::gguf_value(merges)}};
}

// Writes the tiny model to `path` (F32; it must not exist) and returns the in-memory model it was exported from.
inline deepseek2_tiny write_deepseek2_tiny(const std::string& path, std::uint64_t seed = deepseek2_tiny_seed) {
  deepseek2_tiny t = make_deepseek2_tiny(seed);
  model::deepseek2_gguf_options opt;
  opt.type = io::ggml_type::F32;
  opt.name = "mla deepseek2 tiny";
  opt.tokenizer = deepseek2_tiny_tokenizer();
  model::save_deepseek2_gguf(path, t.cfg, t.w, opt);
  return t;
}

}  // namespace mla::test
