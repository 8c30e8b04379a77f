#include "mla/inspect/sinks.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "inspect_test_support.hpp"
#include "seed.hpp"

namespace {

using mla::ref::matrix;

struct sinks_xn_recorder : mla::model::observer<float> {
  std::vector<matrix<float>> xn;
  void attention_input(int l, const matrix<float>& x, long) override {
    if (int(xn.size()) <= l) xn.resize(std::size_t(l) + 1);
    xn[std::size_t(l)] = x;
  }
};

template <class M>
auto to64(const M& m) {
  return m.template cast<double>().eval();
}

// The layers in float64, field by field, for the reference's attention_probabilities.
mla::ref::gqa_layer<double> to64(const mla::ref::gqa_layer<float>& a) {
  mla::ref::gqa_layer<double> b;
  b.hidden = a.hidden, b.n_heads = a.n_heads, b.n_kv_heads = a.n_kv_heads, b.head_dim = a.head_dim;
  b.wq = to64(a.wq), b.wk = to64(a.wk), b.wv = to64(a.wv), b.wo = to64(a.wo);
  b.bq = to64(a.bq), b.bk = to64(a.bk), b.bv = to64(a.bv), b.bo = to64(a.bo), b.sinks = to64(a.sinks);
  b.rope = a.rope, b.attention = a.attention;
  return b;
}

mla::ref::mla_layer<double> to64(const mla::ref::mla_layer<float>& a) {
  mla::ref::mla_layer<double> b;
  b.hidden = a.hidden, b.n_heads = a.n_heads, b.nope_dim = a.nope_dim, b.rope_dim = a.rope_dim;
  b.latent_rank = a.latent_rank, b.v_head_dim = a.v_head_dim;
  b.wq = to64(a.wq), b.bq = to64(a.bq), b.w_dkv = to64(a.w_dkv), b.b_dkv = to64(a.b_dkv), b.w_kr = to64(a.w_kr);
  b.b_kr = to64(a.b_kr), b.w_uk = to64(a.w_uk), b.w_uv = to64(a.w_uv), b.wo = to64(a.wo), b.bo = to64(a.bo);
  b.sinks = to64(a.sinks), b.latent_norm = to64(a.latent_norm), b.latent_norm_eps = a.latent_norm_eps;
  b.rope = a.rope, b.attention = a.attention;
  return b;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(inspect_sinks)

// The sink and first-token masses of every head (GQA with sinks, windowed GQA without, MLA with sinks and a latent
// norm) against the reference's float64 attention probabilities of the layer on the forward's attention inputs.
BOOST_AUTO_TEST_CASE(every_head_against_the_reference_probabilities) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    const mla::test::inspect_model im = mla::test::random_inspect_model(gen);
    const mla::model::decoder<float> m(im.cfg, im.w);
    const int n = mla::test::pick(gen, 12, 40);
    const std::vector<int> tokens = mla::test::random_tokens(gen, im.cfg.vocab_size, n);
    const mla::inspect::sinks_report r = mla::inspect::sinks(m, tokens, "random");
    sinks_xn_recorder rec;
    m.forward(tokens, &rec);
    BOOST_TEST_REQUIRE(r.layers.size() == 3u);
    const double threshold = 0.3;
    long flags = 0;
    for (std::size_t l = 0; l < 3; ++l) {
      const auto& lw = im.w.layers[l];
      const matrix<double> x = rec.xn[l].cast<double>();
      const bool gqa = l < 2;
      const std::vector<matrix<double>> p =
          gqa ? mla::ref::attention_probabilities(to64(lw.gqa), x) : mla::ref::attention_probabilities(to64(lw.mla), x);
      const bool has_sinks = gqa ? lw.gqa.sinks.size() != 0 : lw.mla.sinks.size() != 0;
      BOOST_TEST(r.layers[l].has_sinks == has_sinks);
      BOOST_TEST_REQUIRE(r.layers[l].heads.size() == p.size());
      for (std::size_t h = 0; h < p.size(); ++h) {
        double sink = 0, first = 0;
        for (long t = 1; t < n; ++t) {
          double row = 0;
          for (long s = 0; s < n; ++s) row += p[h](t, s);
          sink += (1.0 - row) / (n - 1);
          first += p[h](t, 0) / (n - 1);
        }
        const auto& got = r.layers[l].heads[h];
        BOOST_TEST_CONTEXT("layer " << l << " head " << h) {
          BOOST_TEST(std::abs(got.sink_mass - sink) <= 1e-9, got.sink_mass << " vs " << sink);
          BOOST_TEST(std::abs(got.first_mass - first) <= 1e-9, got.first_mass << " vs " << first);
          if (!has_sinks) BOOST_TEST(got.sink_mass == 0.0);
          BOOST_TEST(mla::inspect::flagged(got, threshold) == (sink > threshold || first > threshold));
        }
        flags += mla::inspect::flagged(got, threshold);
      }
    }
    // The sink logits N(0, 1) of the random model put real mass there.
    BOOST_TEST(r.layers[0].heads[0].sink_mass + r.layers[0].heads[1].sink_mass > 1e-3);
    // Tables and CSV: a row per head, the flag count, and the change column with two reports.
    const std::string csv = mla::inspect::sinks_csv({r, r}, threshold);
    BOOST_TEST(std::count(csv.begin(), csv.end(), '\n') == 1 + 2 * 3 * im.cfg.n_heads);
    const std::string table = mla::inspect::sinks_table({r, r}, threshold);
    BOOST_TEST(table.find("random: " + std::to_string(flags) + " heads flagged") != std::string::npos, table);
    BOOST_TEST(table.find("  +0.0000  +0.0000\n") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(reports_of_different_shapes_are_refused) {
  std::mt19937_64 gen(mla::test::test_seed());
  const mla::test::inspect_model im = mla::test::random_inspect_model(gen);
  const mla::model::decoder<float> m(im.cfg, im.w);
  const mla::inspect::sinks_report a = mla::inspect::sinks(m, {1, 2, 3}, "a");
  mla::inspect::sinks_report b = a;
  b.model = "b";
  b.layers[1].heads.pop_back();
  BOOST_CHECK_EXCEPTION(mla::inspect::sinks_table({a, b}, 0.5), mla::error, [](const mla::error& e) {
    return std::string(e.what()).find("layer 1 of 'b' has 3 heads, of 'a' 4") != std::string::npos;
  });
}

BOOST_AUTO_TEST_SUITE_END()
