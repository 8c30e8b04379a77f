// Test helpers for paged caches (mla/core/paged_cache.hpp), shared by the core, CPU and CUDA tests: a
// replayable seed, NaN fill values and layouts whose pages land in shuffled physical order.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "mla/core/paged_cache.hpp"
#include "seed.hpp"

namespace mla_cpu_test {

// The seed of a std::mt19937 (mla::test::test_seed, truncated to its 32 bits: printed and replayed as is).
inline std::uint32_t fresh_seed() { return static_cast<std::uint32_t>(mla::test::test_seed()); }

inline float nan_f() { return std::numeric_limits<float>::quiet_NaN(); }

inline bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// A random permutation of [0, n) (physical page order).
inline std::vector<mla::page_index> shuffled_pages(int n, std::mt19937& rng) {
  std::vector<mla::page_index> p(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  std::shuffle(p.begin(), p.end(), rng);
  return p;
}

// A layout for `lens` whose logical pages land on shuffled physical pages, with `spare` unused physical
// pages mixed in.
inline mla::paged_layout shuffled_layout(const std::vector<int>& lens, int page_size, int spare, std::mt19937& rng) {
  int total = 0;
  for (int l : lens) total += mla::pages_needed(l, page_size);
  return mla::make_paged_layout(lens, page_size, shuffled_pages(total + spare, rng));
}

// Norm-wise relative error ||got - want|| / ||want|| of one output row (absolute when want is 0).
inline double row_error(const float* got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t j = 0; j < want.size(); ++j) {
    const double e = static_cast<double>(got[j]) - want[j];
    num += e * e;
    den += want[j] * want[j];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// |got - want| / max(1, |want|) for an lse.
inline double lse_error(float got, double want) {
  return std::abs(static_cast<double>(got) - want) / std::max(1.0, std::abs(want));
}

}  // namespace mla_cpu_test
