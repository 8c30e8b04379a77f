// Shared helpers of the mla::cpu tests: seeded randomness, paged storage built from dense per-sequence rows,
// and an independent float64 dense attention (no paging, no splits, no online softmax) to compare against.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "mla/cpu/element.hpp"
#include "mla/core/paged_cache.hpp"
#include "paged_layout_support.hpp"
#include "seed.hpp"

namespace mla_cpu_test {

template <class Elem>
Elem from_float(float x);
template <>
inline float from_float<float>(float x) {
  return x;
}
template <>
inline mla::cpu::bf16 from_float<mla::cpu::bf16>(float x) {
  return mla::cpu::to_bf16(x);
}

// Dense per-sequence rows [len][row_elems] (as float values that Elem stores exactly) scattered into paged
// storage [num_pages, page_size, row_elems]. Every slot no token occupies, and every token before
// poison_before[b] (keys outside the sliding window), is NaN: a kernel that reads them produces NaN.
template <class Elem>
std::vector<Elem> scatter_paged(const mla::paged_layout& layout, const std::vector<std::vector<float>>& dense,
                                int row_elems, const std::vector<int>& poison_before) {
  std::vector<Elem> storage(static_cast<std::size_t>(layout.num_pages) * layout.page_size * row_elems,
                            from_float<Elem>(nan_f()));
  const mla::page_table_view v = layout.view();
  for (int b = 0; b < layout.num_seqs(); ++b)
    for (int t = poison_before[static_cast<std::size_t>(b)]; t < layout.seq_lens[static_cast<std::size_t>(b)]; ++t) {
      const std::ptrdiff_t off = mla::token_row_offset(v, b, t, row_elems);
      for (int i = 0; i < row_elems; ++i)
        storage[static_cast<std::size_t>(off + i)] =
            from_float<Elem>(dense[static_cast<std::size_t>(b)][static_cast<std::size_t>(t) * row_elems + i]);
    }
  return storage;
}

// Random rows [len][width] of N(0, 1) values, rounded to what Elem can store (so the reference sees the
// exact stored values).
template <class Elem>
std::vector<float> random_rows(int len, int width, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> rows(static_cast<std::size_t>(len) * width);
  for (float& x : rows) x = mla::cpu::to_float(from_float<Elem>(nd(rng)));
  return rows;
}

// One reference attention row.
struct reference_row {
  std::vector<double> out;
  double lse = 0;
};

// Float64 dense attention of one query row over one sequence:
//   keys t in the window (len - window < t+1 ... i.e. q - window < t <= q with q = len - 1; all with window 0),
//   logit_t = scale * (q . key_t) with key_t = keys[t * key_stride + key_offset ...][kw],
//   weights = softmax([logits, sink]) (sink optional, unscaled), out = sum_t w_t value_t.
inline reference_row reference_attention(const double* q, int kw, const std::vector<float>& keys, int key_stride,
                                         int key_offset, const std::vector<float>& values, int value_stride,
                                         int value_offset, int vw, int len, int window, double scale,
                                         const float* sink) {
  const int q_pos = len - 1;
  std::vector<double> logit;
  std::vector<int> pos;
  for (int t = 0; t < len; ++t) {
    if (window > 0 && !(q_pos - window < t)) continue;
    double dot = 0;
    for (int i = 0; i < kw; ++i)
      dot += q[i] * static_cast<double>(keys[static_cast<std::size_t>(t) * key_stride + key_offset + i]);
    logit.push_back(scale * dot);
    pos.push_back(t);
  }
  double m = -std::numeric_limits<double>::infinity();
  for (double l : logit) m = std::max(m, l);
  const bool has_sink = sink != nullptr && std::isfinite(*sink);
  if (has_sink) m = std::max(m, static_cast<double>(*sink));
  double z = has_sink ? std::exp(static_cast<double>(*sink) - m) : 0.0;
  for (double l : logit) z += std::exp(l - m);
  reference_row r;
  r.out.assign(static_cast<std::size_t>(vw), 0.0);
  for (std::size_t k = 0; k < logit.size(); ++k) {
    const double w = std::exp(logit[k] - m) / z;
    for (int j = 0; j < vw; ++j)
      r.out[static_cast<std::size_t>(j)] +=
          w * static_cast<double>(values[static_cast<std::size_t>(pos[k]) * value_stride + value_offset + j]);
  }
  r.lse = m + std::log(z);
  return r;
}

}  // namespace mla_cpu_test
