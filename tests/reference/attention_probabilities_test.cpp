#include "mla/reference/attention_probabilities.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/exact_rewrite.hpp"
#include "random.hpp"
#include "random_layers.hpp"

namespace {

using mla::ref::matrix;
using mla::test::pick;
using mla::test::randn;
using mla::test::test_seed;

// Direct float64 softmax weights of one head, with plain loops: rows are queries at positions
// first_query_pos + r, columns keys at positions 0..; the mask and the sink from formats.md §1.4.
matrix<double> direct_probabilities(const matrix<double>& q, const matrix<double>& k, double scale, int window,
                                    const double* sink, long first_query_pos) {
  matrix<double> p = matrix<double>::Zero(q.rows(), k.rows());
  for (Eigen::Index r = 0; r < q.rows(); ++r) {
    const long t = first_query_pos + r;
    std::vector<double> logit(static_cast<std::size_t>(k.rows()), -std::numeric_limits<double>::infinity());
    double m = sink ? *sink : -std::numeric_limits<double>::infinity();
    for (Eigen::Index s = 0; s < k.rows(); ++s) {
      if (s > t || (window > 0 && s <= t - window)) continue;
      double dot = 0;
      for (Eigen::Index i = 0; i < q.cols(); ++i) dot += q(r, i) * k(s, i);
      logit[static_cast<std::size_t>(s)] = scale * dot;
      m = std::max(m, scale * dot);
    }
    double sum = sink ? std::exp(*sink - m) : 0.0;
    for (Eigen::Index s = 0; s < k.rows(); ++s) sum += std::exp(logit[static_cast<std::size_t>(s)] - m);
    for (Eigen::Index s = 0; s < k.rows(); ++s) p(r, s) = std::exp(logit[static_cast<std::size_t>(s)] - m) / sum;
  }
  return p;
}

mla::test::gqa_spec probability_spec(std::mt19937_64& gen, int tokens) {
  mla::test::gqa_spec s{};
  s.n_kv_heads = pick(gen, 1, 3);
  s.n_heads = s.n_kv_heads * pick(gen, 1, 3);
  s.head_dim = 2 * pick(gen, 2, 8);
  s.hidden = pick(gen, 8, 40);
  s.bq = s.bk = s.bv = s.bo = pick(gen, 0, 1) == 1;
  s.sinks = pick(gen, 0, 1) == 1;
  s.window = pick(gen, 0, 1) == 0 ? 0 : pick(gen, 1, tokens);
  s.rope = mla::test::random_rope(gen, s.head_dim);
  s.scale = 1.0 / std::sqrt(double(s.head_dim));
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(attention_probabilities)

// One head, queries starting anywhere, against a direct float64 softmax with the mask and the sink.
BOOST_AUTO_TEST_CASE(one_head_matches_a_direct_float64_softmax) {
  const auto seed = test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (int trial = 0; trial < 20; ++trial) {
      const int keys = pick(gen, 1, 40), d = pick(gen, 1, 24), first = pick(gen, 0, keys - 1);
      const int rows = pick(gen, 1, keys - first);
      const matrix<double> q = randn<double>(gen, rows, d, 1.0), k = randn<double>(gen, keys, d, 1.0);
      mla::ref::attention_options opt;
      opt.softmax_scale = 1.0 / std::sqrt(double(d));
      opt.sliding_window = pick(gen, 0, 1) == 0 ? 0 : pick(gen, 1, keys);
      const bool with_sink = pick(gen, 0, 1) == 1;
      const float sink_f = static_cast<float>(randn<double>(gen, 1, 1, 1.0)(0, 0));
      const double sink_d = sink_f;
      const matrix<double> want =
          direct_probabilities(q, k, opt.softmax_scale, opt.sliding_window, with_sink ? &sink_d : nullptr, first);
      const matrix<float> qf = q.cast<float>(), kf = k.cast<float>();
      const matrix<float> got =
          mla::ref::attention_probabilities<float>(qf, kf, opt, with_sink ? &sink_f : nullptr, first);
      BOOST_TEST_CONTEXT("trial " << trial << ": " << rows << " queries from " << first << ", " << keys
                                  << " keys, window " << opt.sliding_window << ", sink " << with_sink) {
        BOOST_TEST_REQUIRE(got.rows() == rows);
        BOOST_TEST_REQUIRE(got.cols() == keys);
        BOOST_TEST((got.cast<double>() - want).cwiseAbs().maxCoeff() < 1e-5);
        const matrix<double> got_d =
            mla::ref::attention_probabilities<double>(q, k, opt, with_sink ? &sink_d : nullptr, first);
        BOOST_TEST((got_d - want).cwiseAbs().maxCoeff() < 1e-13);
      }
    }
  }
}

// Every head of a GQA layer: probabilities against the direct softmax of the layer's own RoPE'd projections
// (computed here with plain loops in float64), and p times the values through o_proj gives gqa_prefill.
BOOST_AUTO_TEST_CASE(gqa_layer_heads_match_direct_computation_and_the_prefill) {
  const auto seed = test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (int trial = 0; trial < 8; ++trial) {
      const int n = pick(gen, 1, 40);
      const mla::test::gqa_spec spec = probability_spec(gen, n);
      const mla::ref::gqa_layer<double> layer = mla::test::random_gqa<double>(gen, spec);
      const matrix<double> x = randn<double>(gen, n, spec.hidden, 1.0);
      const std::vector<matrix<double>> p = mla::ref::attention_probabilities(layer, x);
      BOOST_TEST_REQUIRE(p.size() == std::size_t(spec.n_heads));
      const int d = spec.head_dim;
      // q, k by loops, RoPE'd by the library's rotation (tested in rope_test.cpp).
      matrix<double> q(n, spec.n_heads * d), k(n, spec.n_kv_heads * d), v(n, spec.n_kv_heads * d);
      auto project = [&](const matrix<double>& w, const mla::ref::vector<double>& b, matrix<double>& out) {
        for (int t = 0; t < n; ++t)
          for (Eigen::Index o = 0; o < w.rows(); ++o) {
            double acc = b.size() ? b[o] : 0.0;
            for (int i = 0; i < spec.hidden; ++i) acc += w(o, i) * x(t, i);
            out(t, o) = acc;
          }
      };
      project(layer.wq, layer.bq, q), project(layer.wk, layer.bk, k), project(layer.wv, layer.bv, v);
      const mla::ref::rope<double> rot(layer.rope);
      for (int t = 0; t < n; ++t) {
        for (int h = 0; h < spec.n_heads; ++h) rot.apply(q.data() + t * q.cols() + h * d, t);
        for (int g = 0; g < spec.n_kv_heads; ++g) rot.apply(k.data() + t * k.cols() + g * d, t);
      }
      matrix<double> attn(n, spec.n_heads * d);
      for (int h = 0; h < spec.n_heads; ++h) {
        const int g = h / (spec.n_heads / spec.n_kv_heads);
        const double* sink = spec.sinks ? &layer.sinks[h] : nullptr;
        const matrix<double> want =
            direct_probabilities(q.middleCols(h * d, d), k.middleCols(g * d, d), spec.scale, spec.window, sink, 0);
        BOOST_TEST((p[std::size_t(h)] - want).cwiseAbs().maxCoeff() < 1e-12, "head " << h);
        attn.middleCols(h * d, d) = p[std::size_t(h)] * v.middleCols(g * d, d);
      }
      const matrix<double> out = mla::ref::linear(attn, layer.wo, layer.bo);
      BOOST_TEST(mla::ref::relative_error(out, mla::ref::gqa_prefill(layer, x)) < 1e-12);
    }
  }
}

// Every head of an MLA layer: the exact rewrite of a GQA layer (latent RoPE) attends with the GQA layer's
// probabilities, and p times the expanded values through o_proj gives the naive prefill.
BOOST_AUTO_TEST_CASE(mla_layer_heads_match_the_source_and_the_prefill) {
  const auto seed = test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (int trial = 0; trial < 6; ++trial) {
      const int n = pick(gen, 1, 40);
      mla::test::gqa_spec spec = probability_spec(gen, n);
      const mla::ref::gqa_layer<double> src = mla::test::random_gqa<double>(gen, spec);
      const mla::ref::mla_layer<double> layer = mla::ref::exact_mla_from_gqa(src);
      const matrix<double> x = randn<double>(gen, n, spec.hidden, 1.0);
      const std::vector<matrix<double>> want = mla::ref::attention_probabilities(src, x);
      const std::vector<matrix<double>> got = mla::ref::attention_probabilities(layer, x);
      BOOST_TEST_REQUIRE(got.size() == want.size());
      const int dv = layer.v_head_dim;
      mla::ref::mla_cache<double> cache;
      mla::ref::mla_prefill(layer, x, cache, mla::ref::mla_form::naive);  // the cached latents
      matrix<double> attn(n, layer.n_heads * dv);
      for (std::size_t h = 0; h < got.size(); ++h) {
        BOOST_TEST((got[h] - want[h]).cwiseAbs().maxCoeff() < 1e-10, "head " << h);
        attn.middleCols(Eigen::Index(h) * dv, dv) =
            got[h] * (cache.c * layer.w_uv.middleRows(Eigen::Index(h) * dv, dv).transpose());
      }
      const matrix<double> out = mla::ref::linear(attn, layer.wo, layer.bo);
      BOOST_TEST(mla::ref::relative_error(out, mla::ref::mla_prefill(layer, x, mla::ref::mla_form::naive)) < 1e-12);
    }
  }
}

BOOST_AUTO_TEST_CASE(mismatched_channels_are_named) {
  mla::ref::attention_options opt;
  opt.softmax_scale = 1;
  const matrix<float> q = matrix<float>::Zero(2, 3), k = matrix<float>::Zero(4, 5);
  BOOST_CHECK_EXCEPTION(mla::ref::attention_probabilities<float>(q, k, opt, nullptr), mla::error,
                        [](const mla::error& e) {
                          return std::string(e.what()).find("queries have 3 channels, keys 5") != std::string::npos;
                        });
}

BOOST_AUTO_TEST_SUITE_END()
