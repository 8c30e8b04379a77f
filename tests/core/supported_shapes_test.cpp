#include "mla/core/supported_shapes.hpp"

#include <boost/test/unit_test.hpp>
#include <set>
#include <tuple>

#include "mla/core/dispatch.hpp"

namespace {
// Does the list hold (head_dim, rope_dim, rank) for a KV budget of `elements` per token?
bool has_exact(int head_dim, int rope_dim, int elements) {
  return mla::is_supported({head_dim, rope_dim, elements - rope_dim});
}
}  // namespace

BOOST_AUTO_TEST_SUITE(core_supported_shapes)

BOOST_AUTO_TEST_CASE(entries_are_unique_and_counted) {
  const auto all = mla::supported_runtime_shapes();
  BOOST_TEST(all.size() == mla::supported_shape_count);
  // 4 head splits x 24 ranks (32..768 step 32) + DeepSeek-V3.
  BOOST_TEST(all.size() == 4u * 24u + 1u);
  std::set<std::tuple<int, int, int>> seen;
  for (const auto& s : all) seen.insert({s.head_dim, s.rope_dim, s.latent_rank});
  BOOST_TEST(seen.size() == all.size());
}

BOOST_AUTO_TEST_CASE(covers_the_conversions_the_issue_names) {
  BOOST_TEST(mla::is_supported({192, 64, 512}));  // DeepSeek-V3
  for (int r = 32; r <= 512; r += 32) {
    BOOST_TEST(mla::is_supported({64, 16, r}));
    BOOST_TEST(mla::is_supported({64, 32, r}));
    BOOST_TEST(mla::is_supported({96, 32, r}));
    BOOST_TEST(mla::is_supported({128, 64, r}));
  }
}

BOOST_AUTO_TEST_CASE(gpt_oss_budgets_are_exact) {
  // gpt-oss caches 2 * 8 * 64 = 1024 elements per token and layer; reductions of 25 % .. 87.5 %.
  for (double reduction : {0.25, 0.375, 0.5, 0.625, 0.75, 0.875}) {
    const int budget = static_cast<int>(1024 * (1.0 - reduction));
    BOOST_TEST_CONTEXT("reduction " << reduction) {
      BOOST_TEST(has_exact(96, 32, budget));
      BOOST_TEST(has_exact(128, 64, budget));
    }
  }
}

BOOST_AUTO_TEST_CASE(smollm2_budgets_reachable) {
  // SmolLM2 caches 2 * 3 * 64 = 384 elements; every reduction of 25 % .. 87.5 % has an exact shape
  // with one of the RoPE widths or the next rank below within 32 elements.
  for (double reduction : {0.25, 0.5, 0.625, 0.75, 0.875}) {
    const int budget = static_cast<int>(384 * (1.0 - reduction));
    BOOST_TEST_CONTEXT("reduction " << reduction) {
      bool exact = false;
      for (auto hr : {std::pair{64, 16}, std::pair{64, 32}, std::pair{96, 32}, std::pair{128, 64}})
        exact = exact || has_exact(hr.first, hr.second, budget);
      BOOST_TEST(exact);
    }
  }
}

namespace {
template <class... S>
bool all_supported(std::tuple<S...>) {
  return (mla::is_supported(S::runtime()) && ...);
}
}  // namespace

BOOST_AUTO_TEST_CASE(representatives_are_supported) { BOOST_TEST(all_supported(mla::representative_shapes{})); }

// The shape invariants (rope_dim even and positive, nope_dim positive, ...) are static_asserts of mla_shape,
// so every entry of the list satisfies them once this file compiles; tests/compile_fail checks that they fire.

BOOST_AUTO_TEST_SUITE_END()
