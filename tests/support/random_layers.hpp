// Random GQA attention layers with weights like a trained model's, for the reference, conversion and model
// tests: N(0, 1/sqrt(fan_in)) projections (logits O(1), so that the softmax is neither flat nor one-hot),
// N(0, bias_stddev) biases, N(0, 1) sinks.
#pragma once

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/moe.hpp"
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

// A gpt-oss MoE block with experts in memory, for inputs of unit RMS: router logits of spread about 2 (biased),
// experts whose gate/up pre-activations have a spread of about 1 (a clamp `limit` of 1-2.5 engages on some of
// them), biases everywhere, the gpt-oss alpha 1.702.
template <class T>
ref::moe_block<T> random_moe(std::mt19937_64& gen, int hidden, int intermediate, int n_experts, int k, double limit) {
  ref::moe_block<T> b;
  b.hidden = hidden, b.intermediate = intermediate, b.n_experts = n_experts, b.experts_per_token = k;
  b.swiglu_limit = limit;
  b.w_router = randn<T>(gen, n_experts, hidden, 2.0 / std::sqrt(double(hidden)));
  b.b_router = randn_vec<T>(gen, n_experts, 0.3);
  std::vector<ref::moe_expert<T>> ex;
  for (int e = 0; e < n_experts; ++e)
    ex.push_back({randn<T>(gen, 2 * intermediate, hidden, 1.0 / std::sqrt(double(hidden))),
                  randn_vec<T>(gen, 2 * intermediate, 0.3),
                  randn<T>(gen, hidden, intermediate, 1.0 / std::sqrt(double(intermediate))),
                  randn_vec<T>(gen, hidden, 0.1)});
  b.experts = std::make_shared<ref::dense_experts<T>>(std::move(ex));
  return b;
}

}  // namespace mla::test
