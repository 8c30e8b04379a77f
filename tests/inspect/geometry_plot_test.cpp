#include "mla/inspect/geometry_plot.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "random.hpp"
#include "seed.hpp"

BOOST_AUTO_TEST_SUITE(inspect_geometry_plot)

// The heatmaps' cells against the report they come from: the per-layer energy share (2-norm scores summed over
// heads, normalised per layer) and the per-head quantities, at [layer, head].
BOOST_AUTO_TEST_CASE(heatmap_cells_are_the_reports_numbers) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<double> u(0.0, 2.0);
    mla::inspect::geometry_report r;
    r.model = "m";
    r.tokens = 10;
    const int layers = mla::test::pick(gen, 1, 5), heads = mla::test::pick(gen, 1, 6),
              freqs = mla::test::pick(gen, 1, 8);
    for (int l = 0; l < layers; ++l) {
      mla::inspect::layer_geometry lg;
      lg.layer = l;
      for (int h = 0; h < heads; ++h) {
        mla::inspect::head_geometry g;
        g.q_norm = u(gen), g.k_norm = u(gen), g.entropy_ratio = u(gen);
        for (int f = 0; f < freqs; ++f) g.q_energy.push_back(u(gen)), g.k_energy.push_back(u(gen));
        lg.heads.push_back(g);
      }
      r.layers.push_back(lg);
    }
    const std::vector<mla::inspect::heatmap> hms = mla::inspect::geometry_heatmaps(r, "p_");
    BOOST_TEST_REQUIRE(hms.size() == 5u);
    BOOST_TEST(hms[0].name == "p_rope_energy_layer_freq");
    BOOST_TEST(hms[2].name == "p_q_norm");
    BOOST_TEST(hms[4].name == "p_entropy_ratio");
    BOOST_TEST(hms[0].values.rows() == layers);
    BOOST_TEST(hms[0].values.cols() == freqs);
    for (int l = 0; l < layers; ++l) {
      std::vector<double> score(std::size_t(freqs), 0.0);
      double total = 0;
      for (const auto& g : r.layers[std::size_t(l)].heads)
        for (int f = 0; f < freqs; ++f) {
          const double s = std::sqrt(g.q_energy[std::size_t(f)] * g.k_energy[std::size_t(f)]);
          score[std::size_t(f)] += s;
          total += s;
        }
      for (int f = 0; f < freqs; ++f)
        BOOST_TEST(hms[0].values(l, f) == score[std::size_t(f)] / total, boost::test_tools::tolerance(1e-12));
      for (int h = 0; h < heads; ++h) {
        const auto& g = r.layers[std::size_t(l)].heads[std::size_t(h)];
        double w = 0, c = 0;
        for (int f = 0; f < freqs; ++f) {
          const double s = std::sqrt(g.q_energy[std::size_t(f)] * g.k_energy[std::size_t(f)]);
          w += s, c += s * f;
        }
        BOOST_TEST(hms[1].values(l, h) == c / w, boost::test_tools::tolerance(1e-12));
        BOOST_TEST(hms[2].values(l, h) == g.q_norm);
        BOOST_TEST(hms[3].values(l, h) == g.k_norm);
        BOOST_TEST(hms[4].values(l, h) == g.entropy_ratio);
      }
    }
    BOOST_TEST(hms[2].subtitle == "m, 10 tokens");
  }
}

BOOST_AUTO_TEST_SUITE_END()
