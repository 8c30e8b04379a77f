#include "mla/core/shape_fit.hpp"

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <map>
#include <random>
#include <utility>

#include "mla/core/supported_shapes.hpp"
#include "seed.hpp"
#include "expect_error.hpp"

namespace {
// The fit computed directly: the supported ranks are 32, 64, ..., 768 for each head split (and 512 alone for
// DeepSeek-V3), so the largest that fits a budget b is the largest multiple of 32 with rank + rope_dim <= b.
std::vector<mla::runtime_shape> direct(std::int64_t budget) {
  const std::pair<int, int> splits[] = {{64, 16}, {64, 32}, {96, 32}, {128, 64}};
  std::vector<mla::runtime_shape> out;
  for (const auto& [h, r] : splits) {
    const std::int64_t rank = std::min<std::int64_t>(768, (budget - r) / 32 * 32);
    if (budget - r >= 32) out.push_back({h, r, int(rank)});
  }
  if (budget >= 512 + 64) out.push_back({192, 64, 512});
  return out;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(core_shape_fit)

// The examples: gpt-oss at 50 % (budget 512) and SmolLM2 at 75 % (budget 96).
BOOST_AUTO_TEST_CASE(the_documented_budgets) {
  const mla::shape_fit gpt = mla::fitting_shapes(8, 64, 0.5);
  BOOST_TEST(gpt.gqa_elements == 1024);
  BOOST_TEST(gpt.budget == 512);
  BOOST_TEST(
      (gpt.shapes == std::vector<mla::runtime_shape>{{64, 16, 480}, {64, 32, 480}, {96, 32, 480}, {128, 64, 448}}));
  const mla::shape_fit smol = mla::fitting_shapes(3, 64, 0.75);
  BOOST_TEST(smol.budget == 96);
  BOOST_TEST((smol.shapes == std::vector<mla::runtime_shape>{{64, 16, 64}, {64, 32, 64}, {96, 32, 64}, {128, 64, 32}}));
}

// Random layers, from tiny (nothing fits) to far beyond 32-bit counts, against the direct computation.
BOOST_AUTO_TEST_CASE(matches_a_direct_computation) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    std::uniform_int_distribution<int> log2(0, 30);
    std::uniform_real_distribution<double> red(0.0, 1.0);
    for (int i = 0; i < 2000; ++i) {
      const std::int64_t kv = std::int64_t(1) << log2(gen) >> (i % 3), hd = std::int64_t(1) << log2(gen);
      const std::int64_t k = std::max<std::int64_t>(1, kv + i % 7), d = std::max<std::int64_t>(1, hd - i % 5);
      const double r = i % 10 == 0 ? 0.0 : red(gen);
      const mla::shape_fit fit = mla::fitting_shapes(k, d, r);
      const std::int64_t elements = 2 * k * d;  // < 2^62
      BOOST_TEST(fit.gqa_elements == elements);
      const double budget = double(elements) * (1.0 - r);
      BOOST_TEST(fit.budget == std::int64_t(budget));
      BOOST_TEST((fit.shapes == direct(fit.budget)), "kv_heads " << k << " head_dim " << d << " reduction " << r);
    }
  }
}

// Nothing fits a layer smaller than the smallest MLA cache (32 + 16); the 64-bit limit is refused, not wrapped.
BOOST_AUTO_TEST_CASE(nothing_fits_and_overflow) {
  BOOST_TEST(mla::fitting_shapes(1, 16, 0.0).shapes.empty());       // 32 elements
  BOOST_TEST(mla::fitting_shapes(1, 24, 0.0).shapes.size() == 1u);  // 48 = 32 + 16
  const mla::shape_fit big = mla::fitting_shapes(100000000, 100000000, 0.5);
  BOOST_TEST(big.gqa_elements == std::int64_t(20000000000000000));
  BOOST_TEST(big.shapes.size() == 5u);
  mla::test::expect_error([] { mla::fitting_shapes(std::int64_t(1) << 31, std::int64_t(1) << 31, 0.5); },
                          {"--kv-heads 2147483648", "--head-dim 2147483648", "64-bit"});
  mla::test::expect_error([] { mla::fitting_shapes(0, 64, 0.5); }, {"--kv-heads", "> 0"});
  mla::test::expect_error([] { mla::fitting_shapes(8, 64, 1.5); }, {"--reduction", "[0, 1]"});
}

BOOST_AUTO_TEST_SUITE_END()
