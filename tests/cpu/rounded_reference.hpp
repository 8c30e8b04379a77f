// A float64 reference of the CUDA decode kernels that rounds the softmax weights where they do, and the bound
// on what it leaves. Host code (no CUDA): the CUDA tests compare the kernels with it, and the CPU tests check
// the bound's negative control (a kernel that drops one key must be rejected).
//
// The kernels (mla/cuda/decode_kernel.cuh) walk each KV split's keys (mla::split_range of the visible range, in
// tiles of `tile` keys from the split's start), and per tile take the running maximum m of the scores
// v_t = scale log2(e) (q . k_t), round the weights p_t = exp2(v_t - m) to the cache element type, add the rounded
// weights to the row sum, and accumulate o = alpha o + sum_t p_t value_t (alpha = exp2(m_old - m_new)); each split
// ends as (o / l, lse) and the splits merge by their lse with the sink (mla/core/softmax_merge.hpp). This
// reference does the same in float64, so the rounding of P is the kernels' own, not a noise the bound must
// cover. What is left is fp32 arithmetic:
//   - scores and exp2 in fp32 move a weight by a relative `weight_rel_error` (1e-5: scores of width <= 768 of
//     bf16/fp16 values accumulate ~4e-6 in v) before it is rounded, which can round it to the other
//     neighbour when it lies that close to a rounding midpoint: such a key's final weight may differ by the
//     gap between its two candidate roundings, and the output by that gap times |value_t - out|;
//   - accumulations in fp32: `accumulation_rel_error` (1e-5) of sum_t W_t |value_t| (W_t the final weights).
// The bound of a row is their sum. A kernel that drops a key of final weight W moves the output by
// W |value - out| / (1 - W), orders of magnitude above it for any key that matters (W > ~1e-5).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "mla/core/paged_cache.hpp"

namespace mla_cpu_test {

template <class Real>
struct rounded_reference_row {
  std::vector<Real> out;  // [value_width]
  double lse = 0;
  double out_bound = 0;  // bound on |kernel out - out| (L2 norm of the row)
  double lse_bound = 0;  // bound on |kernel lse - lse|
};

// One query row over one sequence of `len` keys (window 0: all), rows `keys` / `values` as in
// reference_attention (test_support.hpp). `round_weight(float) -> float` is the cache element's rounding
// (bf16 or fp16, round to nearest even). `drop_key` >= 0 leaves that key out (the negative control). Real is
// double for the reference; float computes what a kernel in fp32 would (the bound's positive control).
template <class Real, class RoundWeight>
rounded_reference_row<Real> rounded_reference_attention(const double* q, int kw, const std::vector<float>& keys,
                                                        int key_stride, int key_offset,
                                                        const std::vector<float>& values, int value_stride,
                                                        int value_offset, int vw, int len, int window, double scale,
                                                        const float* sink, int splits, int tile,
                                                        RoundWeight round_weight, int drop_key = -1) {
  constexpr Real neg_inf = -std::numeric_limits<Real>::infinity();
  const double weight_rel_error = 1e-5, accumulation_rel_error = 1e-5;
  const Real log2e = static_cast<Real>(1.4426950408889634);
  const mla::token_range vis = mla::decode_visible_range(len, window);
  const Real sink_log2 = sink != nullptr && std::isfinite(*sink) ? static_cast<Real>(*sink) * log2e : neg_inf;

  // Per key: its rounded weight p relative to its tile's running max m_t (log2 units), the gap between its
  // two candidate roundings, and the split it belongs to; per split: o, l, m (log2).
  struct key_state {
    int t, split;
    Real p, gap;
  };
  std::vector<key_state> ks;
  std::vector<std::vector<Real>> o(static_cast<std::size_t>(splits), std::vector<Real>(vw, Real(0)));
  std::vector<Real> l(static_cast<std::size_t>(splits), Real(0)), m(static_cast<std::size_t>(splits), neg_inf);
  auto score = [&](int t) {
    Real dot = 0;
    const float* key = keys.data() + static_cast<std::size_t>(t) * key_stride + key_offset;
    for (int i = 0; i < kw; ++i) dot += static_cast<Real>(q[i]) * static_cast<Real>(key[i]);
    return dot * static_cast<Real>(scale) * log2e;
  };
  for (int s = 0; s < splits; ++s) {
    const mla::token_range r = mla::split_range(vis, splits, s, tile);
    std::vector<Real>& os = o[static_cast<std::size_t>(s)];
    Real& ls = l[static_cast<std::size_t>(s)];
    Real& ms = m[static_cast<std::size_t>(s)];
    for (int t0 = r.begin; t0 < r.end; t0 += tile) {
      const int t1 = std::min(t0 + tile, r.end);
      Real mx = neg_inf;
      for (int t = t0; t < t1; ++t)
        if (t != drop_key) mx = std::max(mx, score(t));
      const Real m_new = std::max(ms, mx);
      if (m_new == neg_inf) continue;  // a tile of the dropped key alone
      const Real alpha = ms == neg_inf ? Real(0) : std::exp2(ms - m_new);
      for (Real& x : os) x *= alpha;
      ls *= alpha;
      for (key_state& k : ks)  // earlier keys of this split: their weights rescale with the accumulators
        if (k.split == s) k.p *= alpha, k.gap *= alpha;
      for (int t = t0; t < t1; ++t) {
        if (t == drop_key) continue;
        const double x = static_cast<double>(std::exp2(score(t) - m_new));
        const Real p = static_cast<Real>(round_weight(static_cast<float>(x)));
        const double lo = round_weight(static_cast<float>(x * (1 - weight_rel_error)));
        const double hi = round_weight(static_cast<float>(x * (1 + weight_rel_error)));
        ks.push_back({t, s, p, static_cast<Real>(hi - lo)});
        ls += p;
        for (int j = 0; j < vw; ++j)
          os[static_cast<std::size_t>(j)] +=
              p * static_cast<Real>(values[static_cast<std::size_t>(t) * value_stride + value_offset + j]);
      }
      ms = m_new;
    }
  }
  // Merge: split s weighs exp2(m_s) l_s against the sink's exp2(sink); every key's final weight follows.
  Real top = sink_log2;
  for (int s = 0; s < splits; ++s)
    if (l[static_cast<std::size_t>(s)] > 0) top = std::max(top, m[static_cast<std::size_t>(s)]);
  rounded_reference_row<Real> r;
  r.out.assign(static_cast<std::size_t>(vw), Real(0));
  if (top == neg_inf) return r;
  Real total = sink_log2 == neg_inf ? Real(0) : std::exp2(sink_log2 - top);
  std::vector<Real> c(static_cast<std::size_t>(splits), Real(0));  // split s's factor from its p to final units
  for (int s = 0; s < splits; ++s)
    if (l[static_cast<std::size_t>(s)] > 0) {
      c[static_cast<std::size_t>(s)] = std::exp2(m[static_cast<std::size_t>(s)] - top);
      total += c[static_cast<std::size_t>(s)] * l[static_cast<std::size_t>(s)];
    }
  for (int s = 0; s < splits; ++s)
    for (int j = 0; j < vw; ++j)
      r.out[static_cast<std::size_t>(j)] +=
          c[static_cast<std::size_t>(s)] * o[static_cast<std::size_t>(s)][static_cast<std::size_t>(j)] / total;
  r.lse = static_cast<double>((top + std::log2(total)) / log2e);
  // The bound: flips of keys near a rounding midpoint, and fp32 accumulation.
  double flips = 0, flips_weight = 0, spread = 0;
  for (const key_state& k : ks) {
    const double w = static_cast<double>(c[static_cast<std::size_t>(k.split)] / total);  // final weight per unit of p
    double dist = 0, norm = 0;
    for (int j = 0; j < vw; ++j) {
      const double v = values[static_cast<std::size_t>(k.t) * value_stride + value_offset + j];
      const double d = v - static_cast<double>(r.out[static_cast<std::size_t>(j)]);
      dist += d * d;
      norm += v * v;
    }
    flips += w * static_cast<double>(k.gap) * std::sqrt(dist);
    flips_weight += w * static_cast<double>(k.gap);
    spread += w * static_cast<double>(k.p) * std::sqrt(norm);
  }
  r.out_bound = flips + accumulation_rel_error * spread;
  r.lse_bound = flips_weight + accumulation_rel_error * std::max(1.0, std::abs(r.lse));
  return r;
}

// The L2 distance of an output row (`want.size()` values from `got`) from the reference's.
template <class Got>
double row_distance(const Got* got, const std::vector<double>& want) {
  double d = 0;
  for (std::size_t j = 0; j < want.size(); ++j) {
    const double e = static_cast<double>(got[j]) - want[j];
    d += e * e;
  }
  return std::sqrt(d);
}

}  // namespace mla_cpu_test
