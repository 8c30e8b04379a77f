// A small random model with one layer of each kind the inspection reads: full-causal GQA (with biases and
// sinks), sliding-window GQA, and MLA with a decoupled RoPE key and a latent norm; plain NeoX RoPE (theta 10000)
// so that the tests can rotate by hand.
#pragma once

#include <cmath>
#include <random>
#include <vector>

#include "../convert/convert_test_support.hpp"
#include "mla/model/decoder.hpp"
#include "mla/reference/mla_attention.hpp"
#include "random.hpp"

namespace mla::test {

struct inspect_model {
  model::model_config cfg;
  model::model_weights<float> w;
  int window = 0;  // of layer 1
};

// Layers: 0 GQA (biases, sinks), 1 GQA with a window of `window` tokens, 2 MLA (nope 12 + rope 4, rank 10).
inline inspect_model random_inspect_model(std::mt19937_64& gen) {
  inspect_model m;
  layer_spec s;  // hidden 64, 4 heads / 2 KV heads x 16, plain RoPE
  s.biases = s.sinks = true;
  random_model<float>(gen, 3, s, m.cfg, m.w);
  m.window = pick(gen, 3, 9);
  m.cfg.layers[1].sliding_window = m.window;
  layer_spec sw;
  sw.window = m.window;
  m.w.layers[1].gqa = random_gqa<float>(gen, sw);
  ref::mla_layer<float> a;
  a.hidden = s.hidden, a.n_heads = s.n_heads, a.nope_dim = 12, a.rope_dim = 4, a.latent_rank = 10, a.v_head_dim = 16;
  const double in_h = 1.0 / std::sqrt(double(a.hidden)), in_r = 1.0 / std::sqrt(double(a.latent_rank));
  a.wq = randn<float>(gen, a.n_heads * a.qk_head_dim(), a.hidden, in_h);
  a.bq = randn_vec<float>(gen, a.n_heads * a.qk_head_dim(), 0.3);
  a.w_dkv = randn<float>(gen, a.latent_rank, a.hidden, in_h);
  a.b_dkv = randn_vec<float>(gen, a.latent_rank, 0.3);
  a.w_kr = randn<float>(gen, a.rope_dim, a.hidden, in_h);
  a.b_kr = randn_vec<float>(gen, a.rope_dim, 0.3);
  a.w_uk = randn<float>(gen, a.n_heads * a.nope_dim, a.latent_rank, in_r);
  a.w_uv = randn<float>(gen, a.n_heads * a.v_head_dim, a.latent_rank, in_r);
  a.wo = randn<float>(gen, a.hidden, a.n_heads * a.v_head_dim, 1.0 / std::sqrt(double(a.n_heads * a.v_head_dim)));
  a.latent_norm = (ref::vector<float>::Ones(a.latent_rank) + randn_vec<float>(gen, a.latent_rank, 0.2)).eval();
  a.sinks = randn_vec<float>(gen, a.n_heads, 1.0);
  a.rope.dim = a.rope_dim;
  a.rope.theta = 10000;
  a.attention.softmax_scale = 1.0 / std::sqrt(double(a.qk_head_dim()));
  m.w.layers[2].mla = a;
  m.cfg.layers[2].attention = model::attention_kind::mla;
  m.cfg.layers[2].latent_rank = a.latent_rank;
  m.cfg.layers[2].rope_dim = a.rope_dim;
  return m;
}

inline std::vector<int> random_tokens(std::mt19937_64& gen, int vocab, int n) {
  std::vector<int> t;
  for (int i = 0; i < n; ++i) t.push_back(pick(gen, 0, vocab - 1));
  return t;
}

}  // namespace mla::test
