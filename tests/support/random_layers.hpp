// Random GQA attention layers with weights like a trained model's, for the reference, conversion and model
// tests: N(0, 1/sqrt(fan_in)) projections (logits O(1), so that the softmax is neither flat nor one-hot),
// N(0, bias_stddev) biases, N(0, 1) sinks.
#pragma once

#include <cmath>
#include <random>

#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/rope.hpp"
#include "random.hpp"

namespace mla::test {

struct gqa_spec {
  int hidden, n_heads, n_kv_heads, head_dim;
  bool bq, bk, bv, bo, sinks;  // which biases, and per-head sinks
  int window;                  // sliding window, 0 = full causal
  ref::rope_config rope;
  double scale;  // softmax scale
  double bias_stddev = 0.5;
};

// The RoPE of one of the families the project targets (gpt-oss YaRN, SmolLM2, Llama 3.1 scaling), chosen at
// random, over the whole head, in a random channel layout (NeoX or interleaved).
inline ref::rope_config random_rope(std::mt19937_64& gen, int head_dim) {
  const int kind = pick(gen, 0, 2);
  ref::rope_config r = kind == 0   ? ref::rope_config::gpt_oss()
                       : kind == 1 ? ref::rope_config::smollm2()
                                   : ref::rope_config::llama3_1();
  r.dim = head_dim;
  r.layout = pick(gen, 0, 1) == 0 ? ref::rope_layout::neox : ref::rope_layout::interleaved;
  return r;
}

// Draws wq, wk, wv, wo, then the biases asked for (q, k, v, o) and the sinks, in that order.
template <class T>
ref::gqa_layer<T> random_gqa(std::mt19937_64& gen, const gqa_spec& s) {
  ref::gqa_layer<T> l;
  l.hidden = s.hidden;
  l.n_heads = s.n_heads;
  l.n_kv_heads = s.n_kv_heads;
  l.head_dim = s.head_dim;
  const int q_dim = s.n_heads * s.head_dim, kv_dim = s.n_kv_heads * s.head_dim;
  const double in_h = 1.0 / std::sqrt(double(s.hidden));
  l.wq = randn<T>(gen, q_dim, s.hidden, in_h);
  l.wk = randn<T>(gen, kv_dim, s.hidden, in_h);
  l.wv = randn<T>(gen, kv_dim, s.hidden, in_h);
  l.wo = randn<T>(gen, s.hidden, q_dim, 1.0 / std::sqrt(double(q_dim)));
  if (s.bq) l.bq = randn_vec<T>(gen, q_dim, s.bias_stddev);
  if (s.bk) l.bk = randn_vec<T>(gen, kv_dim, s.bias_stddev);
  if (s.bv) l.bv = randn_vec<T>(gen, kv_dim, s.bias_stddev);
  if (s.bo) l.bo = randn_vec<T>(gen, s.hidden, s.bias_stddev);
  if (s.sinks) l.sinks = randn_vec<T>(gen, s.n_heads, 1.0);
  l.rope = s.rope;
  l.attention.softmax_scale = s.scale;
  l.attention.sliding_window = s.window;
  return l;
}

}  // namespace mla::test
