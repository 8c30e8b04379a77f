// Random decode configurations and the checks that run MLA / GQA decode on them against the float64
// reference of test_support.hpp.
//
// Tolerance: every output row has norm-wise relative error <= decode_tolerance(n) against the float64
// reference, and every lse has |error| <= decode_tolerance(n) * max(1, |lse|), where n is the length of
// the score dot product (head_dim for GQA, latent_rank + rope_dim for MLA). The reference reads the very
// values the cache stores (bf16-rounded for a bf16 cache), so the bound covers only the kernel's float
// arithmetic; it holds for both element types.
//
// Why it grows with n: a float dot product of n terms has rounding error ~ sqrt(n) * 2^-24 * |q| |k|,
// and the softmax passes score errors on to the output. Measured over 38 800 random MLA rows (400 seeds
// of every supported shape, widths 48..832): the worst output error divided by sqrt(n) was 4.2e-7, and
// the worst lse error 5.8e-6 (width 800). A flat 1e-5 was exceeded once in CI-sized sampling (1.21e-5 at
// width 640), so the bound is 1e-5 * sqrt(n / 64): 1e-5 up to n = 64, 3.2e-5 at n = 640, still three
// orders of magnitude below the error of any real defect (a dropped token or a wrong scale gives >1e-2).
#pragma once

#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cmath>
#include <ostream>
#include <random>
#include <vector>

#include "mla/core/shape.hpp"
#include "mla/cpu/gqa_decode.hpp"
#include "mla/cpu/mla_decode.hpp"
#include "rounded_reference.hpp"
#include "test_support.hpp"

namespace mla_cpu_test {

// Relative bound for a decode whose scores are dot products of n elements (see the header comment).
inline double decode_tolerance(int n) { return 1e-5 * std::sqrt(std::max(1.0, static_cast<double>(n) / 64.0)); }

struct decode_case {
  std::vector<int> lens;  // per sequence, >= 1
  int page_size = 16;
  int heads = 4;
  int window = 0;        // 0: full causal
  int splits = 0;        // 0: automatic
  int threads = 0;       // 0: OpenMP default
  bool sinks = false;    // per-head sinks (one of them -inf when heads > 1)
  int spare_pages = 0;   // unused physical pages mixed into the shuffled page order
  bool bf16_dot = true;  // decode_options::bf16_dot (MLA over a bf16 cache)
};

inline std::ostream& operator<<(std::ostream& os, const decode_case& c) {
  os << "{lens {";
  for (std::size_t i = 0; i < c.lens.size(); ++i) os << (i ? ", " : "") << c.lens[i];
  return os << "}, page_size " << c.page_size << ", heads " << c.heads << ", window " << c.window << ", splits "
            << c.splits << ", threads " << c.threads << ", sinks " << c.sinks << ", spare_pages " << c.spare_pages
            << ", bf16_dot " << c.bf16_dot << "}";
}

// A random case with the given page size: ragged lengths that include 1 and lengths on both sides of a
// page boundary, a random head count (exercising every head-block remainder), window, sinks and splits.
inline decode_case random_case(int page_size, std::mt19937& rng, int max_heads = 19) {
  auto pick = [&](std::initializer_list<int> v) {
    return *(v.begin() + std::uniform_int_distribution<int>(0, static_cast<int>(v.size()) - 1)(rng));
  };
  decode_case c;
  c.page_size = page_size;
  const int batch = std::uniform_int_distribution<int>(1, 5)(rng);
  for (int b = 0; b < batch; ++b) {
    switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
      case 0:
        c.lens.push_back(1);
        break;
      case 1:
        c.lens.push_back(std::max(1, page_size * std::uniform_int_distribution<int>(1, 4)(rng) + pick({-1, 0, 1})));
        break;
      default:
        c.lens.push_back(std::uniform_int_distribution<int>(1, 300)(rng));
        break;
    }
  }
  c.heads = std::uniform_int_distribution<int>(1, max_heads)(rng);
  c.window = pick({0, 0, 1, 5, 37, 1000});
  c.splits = pick({0, 1, 2, 3, 8});
  c.threads = pick({0, 1, 2});
  c.sinks = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
  c.spare_pages = std::uniform_int_distribution<int>(0, 3)(rng);
  return c;
}

// Fixed edge cases: single-token sequences, page size 1, lengths on page boundaries, window 1, more splits
// than tiles (empty splits), a long sequence split many ways.
inline std::vector<decode_case> edge_cases() {
  std::vector<decode_case> v;
  v.push_back({{1}, 1, 1, 0, 1, 1, false, 0});
  v.push_back({{1, 1, 1}, 3, 3, 1, 0, 0, true, 2});
  v.push_back({{1, 16, 17, 64, 65}, 16, 8, 16, 5, 2, false, 1});
  v.push_back({{129}, 64, 16, 1, 3, 2, true, 0});
  v.push_back({{200, 3}, 3, 8, 0, 64, 2, true, 3});
  v.push_back({{700, 33}, 16, 5, 300, 0, 2, true, 0});
  return v;
}

inline std::vector<float> random_sinks(int heads, std::mt19937& rng) {
  std::uniform_real_distribution<float> ud(-3.0f, 5.0f);
  std::vector<float> s(static_cast<std::size_t>(heads));
  for (float& x : s) x = ud(rng);
  if (heads > 1) s[1] = -HUGE_VALF;  // -inf: this head has no sink
  return s;
}

inline std::vector<float> random_vector(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

inline std::vector<int> window_starts(const decode_case& c) {
  std::vector<int> v;
  for (int len : c.lens) v.push_back(mla::decode_visible_range(len, c.window).begin);
  return v;
}

// Checks an output row and its lse against the rounded reference's values and bounds (the AVX512-BF16 paths);
// returns the larger of distance / bound and lse error / bound (<= 1 passes).
inline double check_rounded_row(const float* out, float lse, const rounded_reference_row<double>& ref, int b, int h) {
  const double e = row_distance(out, ref.out);
  const double le = std::abs(static_cast<double>(lse) - ref.lse);
  BOOST_TEST(e <= ref.out_bound, "row (" << b << ", " << h << "): distance " << e << ", bound " << ref.out_bound);
  BOOST_TEST(le <= ref.lse_bound, "lse (" << b << ", " << h << "): error " << le << ", bound " << ref.lse_bound);
  return std::max(e / ref.out_bound, le / ref.lse_bound);
}

// Runs MLA decode of `shape` on case c through call(args) and checks it against the reference.
// With split_rope, c and k_pe go to two paged tensors (mla_decode_args::rope_cache).
template <class Elem, class Call>
void check_mla_case(mla::runtime_shape shape, const decode_case& c, std::mt19937& rng, Call&& call,
                    bool split_rope = false) {
  BOOST_TEST_CONTEXT("MLA shape " << shape << ", case " << c) {
    const int rank = shape.latent_rank, rope = shape.rope_dim, width = shape.cached_elements_per_token();
    const int batch = static_cast<int>(c.lens.size()), heads = c.heads;
    std::vector<std::vector<float>> dense;
    for (int len : c.lens) dense.push_back(random_rows<Elem>(len, width, rng));
    const mla::paged_layout layout = shuffled_layout(c.lens, c.page_size, c.spare_pages, rng);
    std::vector<Elem> cache, rope_cache;
    if (!split_rope) {
      cache = scatter_paged<Elem>(layout, dense, width, window_starts(c));
    } else {
      std::vector<std::vector<float>> dense_c, dense_r;
      for (const auto& rows : dense) {
        dense_c.emplace_back(), dense_r.emplace_back();
        for (std::size_t t = 0; t < rows.size() / static_cast<std::size_t>(width); ++t) {
          const auto row = rows.begin() + static_cast<std::ptrdiff_t>(t * static_cast<std::size_t>(width));
          dense_c.back().insert(dense_c.back().end(), row, row + rank);
          dense_r.back().insert(dense_r.back().end(), row + rank, row + width);
        }
      }
      cache = scatter_paged<Elem>(layout, dense_c, rank, window_starts(c));
      rope_cache = scatter_paged<Elem>(layout, dense_r, rope, window_starts(c));
    }
    const std::vector<float> q_latent = random_vector(static_cast<std::size_t>(batch) * heads * rank, rng);
    const std::vector<float> q_pe = random_vector(static_cast<std::size_t>(batch) * heads * rope, rng);
    const std::vector<float> sinks = random_sinks(heads, rng);
    std::vector<float> out(static_cast<std::size_t>(batch) * heads * rank, nan_f());  // poisoned
    std::vector<float> lse(static_cast<std::size_t>(batch) * heads, nan_f());
    const double scale = 1.0 / std::sqrt(static_cast<double>(shape.head_dim));

    mla::cpu::mla_decode_args<Elem> a;
    a.q_latent = q_latent.data();
    a.q_pe = q_pe.data();
    a.cache = cache.data();
    a.rope_cache = split_rope ? rope_cache.data() : nullptr;
    a.pages = layout.view();
    a.num_heads = heads;
    a.options.softmax_scale = static_cast<float>(scale);
    a.options.sliding_window = c.window;
    a.options.sinks = c.sinks ? sinks.data() : nullptr;
    a.options.num_splits = c.splits;
    a.options.num_threads = c.threads;
    a.options.bf16_dot = c.bf16_dot;
    a.out = out.data();
    a.lse = lse.data();
    call(a);

    BOOST_TEST(all_finite(out));
    BOOST_TEST(all_finite(lse));
    double worst = 0, worst_lse = 0, worst_bound = 0;
    std::vector<double> q(static_cast<std::size_t>(width));
    // The AVX512-BF16 path scores with bf16(softmax_scale * q): the reference takes that query, unscaled. It
    // also rounds the softmax weights to bf16 per tile (against the running max of the split, like the CUDA
    // kernels): there the reference is rounded_reference_attention with its bound, which covers only fp32
    // arithmetic and keys whose weight lies within 1e-5 of a rounding midpoint.
    const bool q_bf16 = mla::cpu::mla_decode_uses_bf16_dot<Elem>(a.options, rank, rope);
    const float scale_f = a.options.softmax_scale;
    const auto query = [&](float x) {
      return q_bf16 ? static_cast<double>(mla::cpu::to_float(mla::cpu::to_bf16(scale_f * x))) / scale_f
                    : static_cast<double>(x);
    };
    for (int b = 0; b < batch; ++b)
      for (int h = 0; h < heads; ++h) {
        const std::size_t bh = static_cast<std::size_t>(b) * heads + h;
        for (int i = 0; i < rank; ++i) q[static_cast<std::size_t>(i)] = query(q_latent[bh * rank + i]);
        for (int i = 0; i < rope; ++i) q[static_cast<std::size_t>(rank + i)] = query(q_pe[bh * rope + i]);
        if (q_bf16) {
          const auto ref = rounded_reference_attention<double>(
              q.data(), width, dense[static_cast<std::size_t>(b)], width, 0, dense[static_cast<std::size_t>(b)], width,
              0, rank, c.lens[static_cast<std::size_t>(b)], c.window, static_cast<double>(scale_f),
              c.sinks ? &sinks[static_cast<std::size_t>(h)] : nullptr,
              mla::cpu::decode_split_count(layout.view(), a.options), mla::cpu::detail::tile_tokens,
              [](float x) { return mla::cpu::to_float(mla::cpu::to_bf16(x)); });
          worst_bound = std::max(worst_bound, check_rounded_row(out.data() + bh * rank, lse[bh], ref, b, h));
          continue;
        }
        const reference_row ref = reference_attention(
            q.data(), width, dense[static_cast<std::size_t>(b)], width, 0, dense[static_cast<std::size_t>(b)], width, 0,
            rank, c.lens[static_cast<std::size_t>(b)], c.window, static_cast<double>(a.options.softmax_scale),
            c.sinks ? &sinks[static_cast<std::size_t>(h)] : nullptr);
        worst = std::max(worst, row_error(out.data() + bh * rank, ref.out));
        worst_lse = std::max(worst_lse, lse_error(lse[bh], ref.lse));
      }
    BOOST_TEST(worst <= decode_tolerance(width));
    BOOST_TEST(worst_lse <= decode_tolerance(width));
    if (q_bf16) BOOST_TEST_MESSAGE("bf16 pairs path: worst distance / bound " << worst_bound);
  }
}

struct gqa_config {
  int heads, kv_heads, head_dim;
};

// Runs GQA decode on case c (c.heads is replaced by g.heads) and checks it against the reference.
template <class Elem>
void check_gqa_case(const gqa_config& g, decode_case c, std::mt19937& rng) {
  c.heads = g.heads;
  BOOST_TEST_CONTEXT("GQA heads " << g.heads << ", kv_heads " << g.kv_heads << ", head_dim " << g.head_dim << ", case "
                                  << c) {
    const int batch = static_cast<int>(c.lens.size()), heads = g.heads, dim = g.head_dim;
    const int row = g.kv_heads * dim, group = heads / g.kv_heads;
    std::vector<std::vector<float>> k_dense, v_dense;
    for (int len : c.lens) {
      k_dense.push_back(random_rows<Elem>(len, row, rng));
      v_dense.push_back(random_rows<Elem>(len, row, rng));
    }
    const mla::paged_layout layout = shuffled_layout(c.lens, c.page_size, c.spare_pages, rng);
    const std::vector<Elem> k_cache = scatter_paged<Elem>(layout, k_dense, row, window_starts(c));
    const std::vector<Elem> v_cache = scatter_paged<Elem>(layout, v_dense, row, window_starts(c));
    const std::vector<float> q = random_vector(static_cast<std::size_t>(batch) * heads * dim, rng);
    const std::vector<float> sinks = random_sinks(heads, rng);
    std::vector<float> out(static_cast<std::size_t>(batch) * heads * dim, nan_f());
    std::vector<float> lse(static_cast<std::size_t>(batch) * heads, nan_f());

    mla::cpu::gqa_decode_args<Elem> a;
    a.q = q.data();
    a.k_cache = k_cache.data();
    a.v_cache = v_cache.data();
    a.pages = layout.view();
    a.num_heads = heads;
    a.num_kv_heads = g.kv_heads;
    a.head_dim = dim;
    a.options.softmax_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)));
    a.options.sliding_window = c.window;
    a.options.sinks = c.sinks ? sinks.data() : nullptr;
    a.options.num_splits = c.splits;
    a.options.num_threads = c.threads;
    a.options.bf16_dot = c.bf16_dot;
    a.out = out.data();
    a.lse = lse.data();
    mla::cpu::gqa_decode(a);
    // The AVX512-BF16 path: bf16 queries and weights, checked against the reference that rounds the same way
    // (as in check_mla_case).
    const bool pairs = mla::cpu::gqa_decode_uses_bf16_dot<Elem>(a.options, dim);
    const float scale_f = a.options.softmax_scale;

    BOOST_TEST(all_finite(out));
    BOOST_TEST(all_finite(lse));
    double worst = 0, worst_lse = 0;
    std::vector<double> qh(static_cast<std::size_t>(dim));
    for (int b = 0; b < batch; ++b)
      for (int h = 0; h < heads; ++h) {
        const std::size_t bh = static_cast<std::size_t>(b) * heads + h;
        for (int i = 0; i < dim; ++i)
          qh[static_cast<std::size_t>(i)] =
              pairs ? static_cast<double>(mla::cpu::to_float(mla::cpu::to_bf16(scale_f * q[bh * dim + i]))) / scale_f
                    : static_cast<double>(q[bh * dim + i]);
        const int kv = h / group;
        if (pairs) {
          const auto ref = rounded_reference_attention<double>(
              qh.data(), dim, k_dense[static_cast<std::size_t>(b)], row, kv * dim, v_dense[static_cast<std::size_t>(b)],
              row, kv * dim, dim, c.lens[static_cast<std::size_t>(b)], c.window, static_cast<double>(scale_f),
              c.sinks ? &sinks[static_cast<std::size_t>(h)] : nullptr,
              mla::cpu::decode_split_count(layout.view(), a.options), mla::cpu::detail::tile_tokens,
              [](float x) { return mla::cpu::to_float(mla::cpu::to_bf16(x)); });
          check_rounded_row(out.data() + bh * dim, lse[bh], ref, b, h);
          continue;
        }
        const reference_row ref = reference_attention(
            qh.data(), dim, k_dense[static_cast<std::size_t>(b)], row, kv * dim, v_dense[static_cast<std::size_t>(b)],
            row, kv * dim, dim, c.lens[static_cast<std::size_t>(b)], c.window,
            static_cast<double>(a.options.softmax_scale), c.sinks ? &sinks[static_cast<std::size_t>(h)] : nullptr);
        worst = std::max(worst, row_error(out.data() + bh * dim, ref.out));
        worst_lse = std::max(worst_lse, lse_error(lse[bh], ref.lse));
      }
    BOOST_TEST(worst <= decode_tolerance(dim));
    BOOST_TEST(worst_lse <= decode_tolerance(dim));
  }
}

}  // namespace mla_cpu_test
