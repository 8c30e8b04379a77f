#include "mla/cpu/mla_decode.hpp"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "decode_case.hpp"
#include "expect_error.hpp"
#include "mla/core/dispatch.hpp"
#include "mla/core/supported_shapes.hpp"

using namespace mla_cpu_test;
using mla::test::expect_error;

namespace {

template <class Shape, class Elem>
struct direct_call {
  void operator()(const mla::cpu::mla_decode_args<Elem>& a) const { mla::cpu::mla_decode<Shape>(a); }
};

template <class Shape, class Elem>
void run_random_and_edge_cases(int cases_per_page_size, bool bf16_dot = true) {
  const std::uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed << " (replay with MLA_TEST_SEED=" << seed << ")") {
    for (decode_case c : edge_cases()) {
      c.bf16_dot = bf16_dot;
      check_mla_case<Elem>(Shape::runtime(), c, rng, direct_call<Shape, Elem>{});
    }
    for (int page_size : {1, 3, 16, 64})
      for (int k = 0; k < cases_per_page_size; ++k) {
        decode_case c = random_case(page_size, rng);
        c.bf16_dot = bf16_dot;
        check_mla_case<Elem>(Shape::runtime(), c, rng, direct_call<Shape, Elem>{});
      }
  }
}

// c and k_pe in two paged tensors (rope_cache): the same results, for each representative shape, float and
// bf16, edge cases and random cases.
BOOST_AUTO_TEST_CASE(split_rope_cache) {
  const std::uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed << " (replay with MLA_TEST_SEED=" << seed << ")") {
    std::apply(
        [&](auto... shapes) {
          auto one = [&](auto shape) {
            using S = decltype(shape);
            for (const decode_case& c : edge_cases()) {
              check_mla_case<float>(S::runtime(), c, rng, direct_call<S, float>{}, true);
              check_mla_case<mla::cpu::bf16>(S::runtime(), c, rng, direct_call<S, mla::cpu::bf16>{}, true);
            }
            for (int page_size : {1, 16})
              check_mla_case<float>(S::runtime(), random_case(page_size, rng), rng, direct_call<S, float>{}, true);
          };
          (one(shapes), ...);
        },
        mla::representative_shapes{});
  }
}

// The kernel body with compile-time widths (Shape's) writes its result to the caller's out/lse, which
// check_mla_case compares with the float64 reference; the same body with runtime widths must then give the
// same bits (same operations in the same order; only the loop trip counts are constants).
// (A std::function, so that check_mla_case is instantiated once per element type, not once per shape.)
template <class Shape, class Elem>
std::function<void(const mla::cpu::mla_decode_args<Elem>&)> both_widths() {
  return [](const mla::cpu::mla_decode_args<Elem>& a) {
    const std::size_t rows = a.pages.num_seqs * static_cast<std::size_t>(a.num_heads);
    std::vector<float> out(rows * Shape::latent_rank, nan_f()), lse(rows, nan_f());
    mla::cpu::mla_decode_args<Elem> r = a;
    r.out = out.data(), r.lse = lse.data();
    mla::cpu::detail::mla_decode_impl<Elem, Shape::latent_rank, Shape::rope_dim>(a, Shape::latent_rank,
                                                                                 Shape::rope_dim);
    mla::cpu::detail::mla_decode_impl<Elem>(r, Shape::latent_rank, Shape::rope_dim);
    BOOST_TEST(std::memcmp(out.data(), a.out, out.size() * sizeof(float)) == 0);
    BOOST_TEST(std::memcmp(lse.data(), a.lse, lse.size() * sizeof(float)) == 0);
  };
}

// A small valid problem whose arguments the error tests break one at a time.
struct small_problem {
  using shape = mla::mla_shape<64, 16, 32>;
  mla::paged_layout layout = mla::make_paged_layout({5, 9}, 4);
  std::vector<float> cache = std::vector<float>(static_cast<std::size_t>(layout.num_pages) * 4 * 48, 0.5f);
  std::vector<float> q_latent = std::vector<float>(2 * 3 * 32, 0.1f);
  std::vector<float> q_pe = std::vector<float>(2 * 3 * 16, 0.1f);
  std::vector<float> sinks = std::vector<float>(3, 0.0f);
  std::vector<float> out = std::vector<float>(2 * 3 * 32);
  std::vector<float> lse = std::vector<float>(2 * 3);

  mla::cpu::mla_decode_args<float> args() {
    mla::cpu::mla_decode_args<float> a;
    a.q_latent = q_latent.data();
    a.q_pe = q_pe.data();
    a.cache = cache.data();
    a.pages = layout.view();
    a.num_heads = 3;
    a.options.softmax_scale = 0.125f;
    a.out = out.data();
    a.lse = lse.data();
    return a;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(cpu_mla_decode)

// fp32 cache: random ragged batches over page sizes 1, 3, 16, 64 plus the fixed edge cases, per shape.
BOOST_AUTO_TEST_CASE_TEMPLATE(matches_float64_reference, Shape, mla::representative_shapes) {
  run_random_and_edge_cases<Shape, float>(3);
}

// bf16 cache (float accumulation): same checks; the reference reads the same bf16-rounded values. Where the
// CPU has AVX512-BF16 this is the pairs path, checked against rounded_reference_attention (decode_case.hpp).
using bf16_shapes = std::tuple<mla::mla_shape<64, 16, 32>, mla::mla_shape<96, 32, 224>, mla::mla_shape<192, 64, 512>>;
BOOST_AUTO_TEST_CASE_TEMPLATE(bf16_cache_matches_float64_reference, Shape, bf16_shapes) {
  run_random_and_edge_cases<Shape, mla::cpu::bf16>(1);
}

// The portable bf16 path (float queries, rows converted to float) where the CPU would take AVX512-BF16.
BOOST_AUTO_TEST_CASE_TEMPLATE(bf16_cache_portable_path_matches_float64_reference, Shape, bf16_shapes) {
  run_random_and_edge_cases<Shape, mla::cpu::bf16>(1, false);
}

// On a CPU with AVX512-BF16 the bf16 cases above take the vdpbf16ps scores (bf16 queries: the reference
// rounds them too, and a float-query reference misses by ~1e-3 there, 100x the tolerance): check that they
// do, and that the two paths differ (the pairs path really ran). Skipped on CPUs without it.
BOOST_AUTO_TEST_CASE(avx512_bf16_scores_are_taken_where_the_cpu_has_them,
                     *boost::unit_test::precondition([](boost::unit_test::test_unit_id) {
                       return mla::cpu::cpu_has_avx512_bf16() ? boost::test_tools::assertion_result(true)
                                                              : boost::test_tools::assertion_result(false);
                     })) {
  mla::cpu::decode_options opt;
  BOOST_TEST(mla::cpu::mla_decode_uses_bf16_dot<mla::cpu::bf16>(opt, 512, 64));
  BOOST_TEST(!mla::cpu::mla_decode_uses_bf16_dot<float>(opt, 512, 64));
  BOOST_TEST(!mla::cpu::mla_decode_uses_bf16_dot<mla::cpu::bf16>(opt, 24, 7));  // odd widths: portable
  opt.bf16_dot = false;
  BOOST_TEST(!mla::cpu::mla_decode_uses_bf16_dot<mla::cpu::bf16>(opt, 512, 64));

  using S = mla::mla_shape<96, 32, 224>;
  std::mt19937 rng(fresh_seed());
  const mla::paged_layout layout = mla::make_paged_layout({100, 37}, 16);
  std::vector<mla::cpu::bf16> cache(static_cast<std::size_t>(layout.num_pages) * 16 * S::cached_elements_per_token);
  std::normal_distribution<float> nd;
  for (auto& x : cache) x = mla::cpu::to_bf16(nd(rng));
  const std::vector<float> ql = random_vector(2 * 5 * S::latent_rank, rng),
                           qp = random_vector(2 * 5 * S::rope_dim, rng);
  std::vector<float> fast(2 * 5 * S::latent_rank), portable(fast.size());
  mla::cpu::mla_decode_args<mla::cpu::bf16> a;
  a.q_latent = ql.data(), a.q_pe = qp.data(), a.cache = cache.data(), a.pages = layout.view(), a.num_heads = 5;
  a.options.softmax_scale = 0.1f;
  a.out = fast.data();
  mla::cpu::mla_decode<S>(a);
  a.options.bf16_dot = false, a.out = portable.data();
  mla::cpu::mla_decode<S>(a);
  BOOST_TEST(fast != portable);
  // What bf16 queries and weights cost against float ones (each rounded by up to 2^-9 of itself): a few 1e-3.
  double worst = 0;
  for (int r = 0; r < 2 * 5; ++r) {
    double e = 0, n = 0;
    for (int j = 0; j < S::latent_rank; ++j) {
      const double x = fast[static_cast<std::size_t>(r * S::latent_rank + j)],
                   y = portable[static_cast<std::size_t>(r * S::latent_rank + j)];
      e += (x - y) * (x - y), n += y * y;
    }
    worst = std::max(worst, std::sqrt(e / n));
  }
  BOOST_TEST(worst <= 2e-2);
  BOOST_TEST_MESSAGE("bf16 pairs path vs the float-query path: worst row relative difference " << worst);
}

// Every supported shape is reachable through the runtime entry and computes the right thing on a tiny case.
BOOST_AUTO_TEST_CASE(every_supported_shape_dispatches) {
  const std::uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    int runs = 0;
    for (const mla::runtime_shape& s : mla::supported_runtime_shapes()) {
      decode_case c;
      c.lens = {1, 5, 9};
      c.page_size = 4;
      c.heads = 2;
      c.window = 6;
      c.sinks = true;
      c.splits = 2;
      check_mla_case<float>(s, c, rng, [&](const mla::cpu::mla_decode_args<float>& a) {
        mla::cpu::mla_decode_dispatch(s, a);
        ++runs;
      });
    }
    BOOST_TEST(runs == static_cast<int>(mla::supported_shape_count));
  }
}

// Compile-time and runtime widths: both match the float64 reference and each other bit for bit, for a
// few shapes (the smallest supported one, the gpt-oss 75 % conversion, DeepSeek-V3: value widths of 2, 14
// and 32 vectors), float and bf16 caches, joint and split (rope_cache) layouts, edge cases and random cases.
// (Each shape adds two kernel bodies, about 1 s of compile time each.)
using width_shapes = std::tuple<mla::mla_shape<64, 16, 32>, mla::mla_shape<96, 32, 224>, mla::mla_shape<192, 64, 512>>;
BOOST_AUTO_TEST_CASE_TEMPLATE(compile_time_widths_match_runtime_widths, Shape, width_shapes) {
  const std::uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed << " (replay with MLA_TEST_SEED=" << seed << ")") {
    for (bool split_rope : {false, true}) {
      for (const decode_case& c : edge_cases()) {
        check_mla_case<float>(Shape::runtime(), c, rng, both_widths<Shape, float>(), split_rope);
        check_mla_case<mla::cpu::bf16>(Shape::runtime(), c, rng, both_widths<Shape, mla::cpu::bf16>(), split_rope);
      }
      for (int page_size : {1, 16}) {
        check_mla_case<float>(Shape::runtime(), random_case(page_size, rng), rng, both_widths<Shape, float>(),
                              split_rope);
        check_mla_case<mla::cpu::bf16>(Shape::runtime(), random_case(page_size, rng), rng,
                                       both_widths<Shape, mla::cpu::bf16>(), split_rope);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(unsupported_shape_is_rejected) {
  small_problem p;
  expect_error(
      [&] {
        mla::cpu::mla_decode_dispatch(mla::runtime_shape{64, 16, 33}, p.args());
      },
      {"unsupported MLA shape"});
}

// The split count changes only rounding: 1 split and many splits agree closely.
BOOST_AUTO_TEST_CASE(split_count_does_not_change_the_result) {
  using shape = mla::mla_shape<96, 32, 224>;
  const std::uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const std::vector<int> lens = {1000, 77};
    const mla::paged_layout layout = shuffled_layout(lens, 16, 0, rng);
    std::vector<std::vector<float>> dense;
    for (int len : lens) dense.push_back(random_rows<float>(len, shape::cached_elements_per_token, rng));
    const auto cache = scatter_paged<float>(layout, dense, shape::cached_elements_per_token, {0, 0});
    const auto ql = random_vector(2 * 4 * 224, rng), qp = random_vector(2 * 4 * 32, rng);
    const auto sinks = random_sinks(4, rng);
    std::vector<float> base_out, base_lse;
    for (int splits : {1, 2, 7, 63}) {
      std::vector<float> out(2 * 4 * 224, nan_f()), lse(2 * 4, nan_f());
      mla::cpu::mla_decode_args<float> a;
      a.q_latent = ql.data();
      a.q_pe = qp.data();
      a.cache = cache.data();
      a.pages = layout.view();
      a.num_heads = 4;
      a.options.softmax_scale = 0.1f;
      a.options.sinks = sinks.data();
      a.options.num_splits = splits;
      a.out = out.data();
      a.lse = lse.data();
      mla::cpu::mla_decode<shape>(a);
      if (base_out.empty()) {
        base_out = out, base_lse = lse;
        continue;
      }
      BOOST_TEST_CONTEXT("splits " << splits) {
        for (std::size_t r = 0; r < 8; ++r) {
          std::vector<double> want(base_out.begin() + static_cast<std::ptrdiff_t>(r * 224),
                                   base_out.begin() + static_cast<std::ptrdiff_t>((r + 1) * 224));
          BOOST_TEST(row_error(out.data() + r * 224, want) <= 1e-5);
          BOOST_TEST(lse_error(lse[r], base_lse[r]) <= 1e-6);
        }
      }
    }
  }
}

// lse may be null: the output is then the one of the run that writes lse, bit for bit (random inputs, so the
// rows differ).
BOOST_AUTO_TEST_CASE(lse_is_optional) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    small_problem p;
    std::normal_distribution<float> normal;
    for (std::vector<float>* v : {&p.cache, &p.q_latent, &p.q_pe})
      for (float& x : *v) x = normal(gen);
    mla::cpu::mla_decode<small_problem::shape>(p.args());
    const std::vector<float> want = p.out;
    BOOST_TEST(want[0] != want[32]);  // not a constant output
    auto a = p.args();
    a.lse = nullptr;
    std::fill(p.out.begin(), p.out.end(), nan_f());
    mla::cpu::mla_decode<small_problem::shape>(a);
    BOOST_TEST(p.out == want, boost::test_tools::per_element());
  }
}

// An empty batch is a no-op: output and lse buffers are left as they were, and a null output is accepted.
BOOST_AUTO_TEST_CASE(empty_batch) {
  small_problem p;
  auto a = p.args();
  const mla::paged_layout none = mla::make_paged_layout({}, 4);
  a.pages = none.view();
  std::fill(p.out.begin(), p.out.end(), 7.0f);
  std::fill(p.lse.begin(), p.lse.end(), 7.0f);
  mla::cpu::mla_decode<small_problem::shape>(a);
  BOOST_TEST(std::count(p.out.begin(), p.out.end(), 7.0f) == std::ptrdiff_t(p.out.size()));
  BOOST_TEST(std::count(p.lse.begin(), p.lse.end(), 7.0f) == std::ptrdiff_t(p.lse.size()));
  a.out = nullptr;
  a.lse = nullptr;
  BOOST_CHECK_NO_THROW(mla::cpu::mla_decode<small_problem::shape>(a));
}

BOOST_AUTO_TEST_CASE(bad_arguments_name_the_field) {
  using shape = small_problem::shape;
  small_problem p;
  BOOST_CHECK_NO_THROW(mla::cpu::mla_decode<shape>(p.args()));
  auto run = [&](auto mutate) {
    return [&p, mutate] {
      auto a = p.args();
      mutate(a);
      mla::cpu::mla_decode<shape>(a);
    };
  };
  {
    small_problem q;
    q.layout.page_table[static_cast<std::size_t>(q.layout.pages_per_seq) + 1] = q.layout.num_pages;  // seq 1, page 1
    expect_error([&] { mla::cpu::mla_decode<shape>(q.args()); }, {"pages.page_table[1][1] = 5"});
    q.layout.page_table[static_cast<std::size_t>(q.layout.pages_per_seq) + 1] = -1;
    expect_error([&] { mla::cpu::mla_decode<shape>(q.args()); }, {"pages.page_table[1][1] = -1"});
  }
  {
    small_problem q;
    q.layout.seq_lens[0] = 13;  // 4 pages of 4, but pages_per_seq = 3
    expect_error([&] { mla::cpu::mla_decode<shape>(q.args()); }, {"pages.seq_lens[0] = 13 needs 4 pages"});
    q.layout.seq_lens[0] = 0;
    expect_error([&] { mla::cpu::mla_decode<shape>(q.args()); }, {"pages.seq_lens[0] = 0, expected >= 1"});
  }
  expect_error(run([](auto& a) { a.pages.page_size = 0; }), {"pages.page_size must be > 0, found 0"});
  expect_error(run([](auto& a) { a.options.sliding_window = -1; }), {"options.sliding_window must be >= 0"});
  expect_error(run([](auto& a) { a.options.softmax_scale = 0.0f; }), {"options.softmax_scale"});
  expect_error(run([](auto& a) { a.options.softmax_scale = nan_f(); }), {"options.softmax_scale"});
  expect_error(run([](auto& a) { a.options.num_splits = -2; }),
               {"options.num_splits must be >= 0 (0 = automatic), found -2"});
  expect_error(run([](auto& a) { a.options.num_threads = -1; }), {"options.num_threads"});
  expect_error(run([](auto& a) { a.num_heads = 0; }), {"num_heads must be > 0, found 0"});
  expect_error(run([](auto& a) { a.out = nullptr; }), {"out is null"});
  expect_error(run([](auto& a) { a.cache = nullptr; }), {"cache is null"});
  expect_error(run([](auto& a) { a.q_pe = nullptr; }), {"q_pe is null"});
  p.sinks[1] = nan_f();
  expect_error(run([&p](auto& a) { a.options.sinks = p.sinks.data(); }), {"options.sinks[1] must be finite or -inf"});
}

BOOST_AUTO_TEST_SUITE_END()
