#include "mla/convert/rank_allocation.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "convert_test_support.hpp"
#include "mla/core/dispatch.hpp"

namespace {

using mla::convert::allocate_ranks;
using mla::convert::layer_rank_info;
using mla::convert::rank_allocation;
using mla::convert::rank_budget;

constexpr rank_allocation all_allocations[] = {rank_allocation::uniform, rank_allocation::spectrum_greedy,
                                               rank_allocation::objective_greedy};

// A layer whose spectrum decays like lambda_i = scale * exp(-i / width).
layer_rank_info layer(int max_rank, double scale, double width, double weight = 1.0) {
  layer_rank_info l;
  l.max_rank = max_rank;
  l.weight = weight;
  l.spectrum.resize(max_rank);
  for (int i = 0; i < max_rank; ++i) l.spectrum[i] = scale * std::exp(-i / width);
  return l;
}

BOOST_AUTO_TEST_SUITE(convert_rank_allocation)

// SmolLM2-like: 30 layers, d = 64, d_R = 32, full rank 352. Every allocation fits the budget, uses
// supported shapes only, and (greedy) uses the budget up to less than one rank step.
BOOST_AUTO_TEST_CASE(budgets_and_supported_shapes) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(0.2, 5.0);
  std::vector<layer_rank_info> layers;
  for (int l = 0; l < 30; ++l) layers.push_back(layer(352, u(gen), 10 * u(gen), 1.0 / u(gen)));
  for (double fraction : {0.25, 0.5, 0.6, 0.875}) {
    rank_budget b;
    b.nope_dim = 64;
    b.rope_dim = 32;
    b.elements_per_token = static_cast<long>(fraction * 30 * 384);  // of the GQA cache 2*3*64 per layer
    for (rank_allocation a : all_allocations) {
      BOOST_TEST_CONTEXT("seed " << seed << ", budget " << fraction << ", " << to_string(a)) {
        const std::vector<int> ranks = allocate_ranks(layers, b, a);
        long used = 0;
        for (int r : ranks) {
          used += r + b.rope_dim;
          BOOST_TEST(mla::is_supported(mla::runtime_shape{96, 32, r}), "rank " << r);
          BOOST_TEST(r <= 352);
        }
        BOOST_TEST(used <= b.elements_per_token);
        if (a != rank_allocation::uniform && ranks != std::vector<int>(30, 352))
          BOOST_TEST(used > b.elements_per_token - 32, "greedy left " << b.elements_per_token - used << " unused");
        if (a == rank_allocation::uniform)
          BOOST_TEST(30 * (ranks[0] + 32 + 32) > b.elements_per_token, "uniform could take the next step");
      }
    }
  }
}

// Greedy allocations give more rank to the layer whose spectrum decays slowly (spectrum_greedy) or whose
// weighted objective is larger (objective_greedy).
BOOST_AUTO_TEST_CASE(greedy_follows_the_spectra) {
  rank_budget b;
  b.nope_dim = 64;
  b.rope_dim = 32;
  b.elements_per_token = 2 * (160 + 32);
  const std::vector<layer_rank_info> layers = {layer(352, 1.0, 5.0), layer(352, 1.0, 200.0)};
  const auto s = allocate_ranks(layers, b, rank_allocation::spectrum_greedy);
  BOOST_TEST(s[1] > s[0]);
  // Same shapes, but the first layer's objective is 100x heavier.
  const std::vector<layer_rank_info> weighted = {layer(352, 1.0, 50.0, 100.0), layer(352, 1.0, 50.0, 1.0)};
  const auto o = allocate_ranks(weighted, b, rank_allocation::objective_greedy);
  BOOST_TEST(o[0] > o[1]);
  const auto un = allocate_ranks(weighted, b, rank_allocation::uniform);
  BOOST_TEST(un[0] == 160);
  BOOST_TEST(un[1] == 160);
}

BOOST_AUTO_TEST_CASE(impossible_budgets_throw) {
  rank_budget b;
  b.nope_dim = 64;
  b.rope_dim = 32;
  b.elements_per_token = 3 * (32 + 32) - 1;  // below the smallest supported rank everywhere
  const std::vector<layer_rank_info> layers(3, layer(352, 1.0, 10.0));
  for (rank_allocation a : all_allocations) BOOST_CHECK_THROW(allocate_ranks(layers, b, a), mla::error);
  // A head split with no supported shape.
  b.rope_dim = 16;
  b.elements_per_token = 100000;
  BOOST_CHECK_THROW(allocate_ranks(layers, b, rank_allocation::uniform), mla::error);
  b.require_supported_shape = false;  // then any multiple of 32 up to the full rank
  const auto r = allocate_ranks(layers, b, rank_allocation::spectrum_greedy);
  for (int x : r) BOOST_TEST(x == 352);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
