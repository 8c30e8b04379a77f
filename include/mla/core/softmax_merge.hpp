// mla split-KV log-sum-exp merge (shared by the CPU and CUDA kernels).
//
// A decode row (one sequence, one head) over keys K with logits s_k and values v_k is
//   out = sum_k exp(s_k - lse) v_k,   lse = ln( sum_k exp(s_k) + exp(sink) )
// where the optional sink is one extra logit with no value (formats.md §1.4; -inf = no sink).
// Split-KV computes it per disjoint key subset ("split") j as a partial (out_j, lse_j) with
//   out_j = sum_{k in j} exp(s_k - lse_j) v_k,   lse_j = ln sum_{k in j} exp(s_k)   (-inf: empty split)
// and combines them exactly:
//   lse = ln( sum_j exp(lse_j) + exp(sink) ),   out = sum_j exp(lse_j - lse) out_j.
// Sinks enter only here, once per row. Logarithms are natural. An empty split's out_j is never read, so it
// may hold anything (NaN included). With no key and no sink the result is out = 0, lse = -inf.
//
// Everything here is MLA_HOST_DEVICE: the CUDA combine kernel uses the same functions.
#pragma once

#include <cmath>
#include <cstddef>

#include "mla/core/host_device.hpp"

namespace mla {

MLA_HOST_DEVICE inline float neg_inf_f() { return -HUGE_VALF; }

// The running state of an online softmax over some keys, without the value accumulator:
// m = the largest logit seen (-inf: none), d = sum_k exp(s_k - m).
struct softmax_stats {
  float m;
  float d;
};

// How to turn an online state (m, d, o = sum_k exp(s_k - m) v_k) into the final row:
// out = o * out_scale, and lse. Adds the sink (pass -inf for none, e.g. for a split's partial).
struct softmax_final {
  float out_scale;
  float lse;
};

MLA_HOST_DEVICE inline softmax_final softmax_finalize(softmax_stats st, float sink) {
  softmax_final f;
  const float m = st.m > sink ? st.m : sink;
  if (m == neg_inf_f()) {  // no key and no sink
    f.out_scale = 0.0f;
    f.lse = neg_inf_f();
    return f;
  }
  const float a = st.m == neg_inf_f() ? 0.0f : std::exp(st.m - m);  // rescales d and o to max m
  const float w = st.d * a + (sink == neg_inf_f() ? 0.0f : std::exp(sink - m));
  f.out_scale = a / w;  // w >= 1: the max term contributes exp(0)
  f.lse = m + std::log(w);
  return f;
}

// The scalar half of the merge: from the partial lse of num_splits splits (lse[j * lse_stride]) and the sink
// (-inf: none), returns the merged lse and writes weights[j] = exp(lse_j - lse), so that
// out = sum_j weights[j] out_j. Empty splits get weight 0. All weights are 0 when the result is -inf.
MLA_HOST_DEVICE inline float softmax_merge_weights(const float* lse, std::ptrdiff_t lse_stride, int num_splits,
                                                   float sink, float* weights) {
  float m = sink;
  for (int j = 0; j < num_splits; ++j) {
    const float l = lse[j * lse_stride];
    m = l > m ? l : m;
  }
  if (m == neg_inf_f()) {
    for (int j = 0; j < num_splits; ++j) weights[j] = 0.0f;
    return m;
  }
  float total = sink == neg_inf_f() ? 0.0f : std::exp(sink - m);
  for (int j = 0; j < num_splits; ++j) {
    const float l = lse[j * lse_stride];
    weights[j] = l == neg_inf_f() ? 0.0f : std::exp(l - m);
    total += weights[j];
  }
  const float inv = 1.0f / total;  // total >= 1
  for (int j = 0; j < num_splits; ++j) weights[j] *= inv;
  return m + std::log(total);
}

// The full merge of one row: partial outputs out_j at partial_out + j * split_stride ([value_dim] each),
// their lse at lse[j * lse_stride], and the sink (-inf: none). Writes out [value_dim]; returns the lse.
// `weights` is scratch for num_splits floats.
MLA_HOST_DEVICE inline float softmax_merge(const float* partial_out, std::ptrdiff_t split_stride, const float* lse,
                                           std::ptrdiff_t lse_stride, int num_splits, int value_dim, float sink,
                                           float* weights, float* out) {
  const float merged = softmax_merge_weights(lse, lse_stride, num_splits, sink, weights);
  for (int i = 0; i < value_dim; ++i) out[i] = 0.0f;
  for (int j = 0; j < num_splits; ++j) {
    const float w = weights[j];
    if (w == 0.0f) continue;  // empty (or negligible) split: its out_j may be garbage
    const float* o = partial_out + j * split_stride;
    for (int i = 0; i < value_dim; ++i) out[i] += w * o[i];
  }
  return merged;
}

}  // namespace mla
