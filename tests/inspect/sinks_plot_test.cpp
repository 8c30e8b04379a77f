#include "mla/inspect/sinks_plot.hpp"

#include <boost/test/unit_test.hpp>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "random.hpp"
#include "seed.hpp"

namespace {

mla::inspect::sinks_report random_report(std::mt19937_64& gen, const std::string& model, int layers, int heads,
                                         bool sinks) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  mla::inspect::sinks_report r;
  r.model = model;
  r.tokens = 12;
  for (int l = 0; l < layers; ++l) {
    mla::inspect::layer_sinks ls;
    ls.layer = l;
    ls.has_sinks = sinks && l % 2 == 0;
    for (int h = 0; h < heads; ++h) ls.heads.push_back({ls.has_sinks ? u(gen) : 0.0, u(gen)});
    r.layers.push_back(ls);
  }
  return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(inspect_sinks_plot)

// One report: the first-token map at [layer, head]; the sink map only where some layer has sinks.
BOOST_AUTO_TEST_CASE(cells_are_the_reports_masses) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    const int layers = mla::test::pick(gen, 1, 5), heads = mla::test::pick(gen, 1, 7);
    for (const bool sinks : {false, true}) {
      const auto r = random_report(gen, "dir/model.gguf", layers, heads, sinks);
      const auto hms = mla::inspect::sinks_heatmaps({r});
      BOOST_TEST_REQUIRE(hms.size() == (sinks ? 2u : 1u));
      BOOST_TEST(hms[0].name == "first_token_mass");
      BOOST_TEST(hms[0].subtitle == "model.gguf, 12 tokens");
      BOOST_TEST(hms[0].values.rows() == layers);
      BOOST_TEST(hms[0].values.cols() == heads);
      for (int l = 0; l < layers; ++l)
        for (int h = 0; h < heads; ++h) {
          const auto& hs = r.layers[std::size_t(l)].heads[std::size_t(h)];
          BOOST_TEST(hms[0].values(l, h) == hs.first_mass);
          if (sinks) BOOST_TEST(hms[1].values(l, h) == hs.sink_mass);
        }
      if (sinks) BOOST_TEST(hms[1].name == "sink_mass");
    }
  }
}

// Two reports: each one's maps under its prefix, and the change (second minus first) of each mass.
BOOST_AUTO_TEST_CASE(change_is_the_second_minus_the_first) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    const int layers = mla::test::pick(gen, 1, 5), heads = mla::test::pick(gen, 1, 7);
    const auto a = random_report(gen, "a", layers, heads, true), b = random_report(gen, "b/", layers, heads, true);
    const auto hms = mla::inspect::sinks_heatmaps({a, b});
    BOOST_TEST_REQUIRE(hms.size() == 6u);
    const std::vector<std::string> names{"model_first_token_mass",   "model_sink_mass",
                                         "compare_first_token_mass", "compare_sink_mass",
                                         "change_first_token_mass",  "change_sink_mass"};
    for (std::size_t i = 0; i < 6; ++i) BOOST_TEST(hms[i].name == names[i]);
    BOOST_TEST(hms[4].subtitle == "b, 12 tokens minus a, 12 tokens");
    for (int l = 0; l < layers; ++l)
      for (int h = 0; h < heads; ++h) {
        const auto &x = a.layers[std::size_t(l)].heads[std::size_t(h)],
                   &y = b.layers[std::size_t(l)].heads[std::size_t(h)];
        BOOST_TEST(hms[4].values(l, h) == y.first_mass - x.first_mass);
        BOOST_TEST(hms[5].values(l, h) == y.sink_mass - x.sink_mass);
      }
    auto c = b;
    c.layers.back().heads.pop_back();
    mla::test::expect_error([&] { mla::inspect::sinks_heatmaps({a, c}); }, {"heads"});
  }
}

BOOST_AUTO_TEST_SUITE_END()
