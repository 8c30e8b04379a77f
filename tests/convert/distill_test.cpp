#include "mla/convert/distill.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "convert_test_support.hpp"
#include "expect_error.hpp"
#include "mla/convert/convert_layer.hpp"
#include "mla/reference/mla_attention.hpp"

namespace {

using mla::convert::convert_options;
using mla::convert::distill_gradient;
using mla::convert::distill_options;
using mla::convert::factor_method;
using mla::convert::rope_strategy;
using mla::ref::matrix;

// A layer with everything the stage must carry: biases, sinks, a sliding window and YaRN RoPE.
mla::test::layer_spec distill_spec() {
  mla::test::layer_spec s;
  s.biases = s.sinks = true;
  s.window = 24;
  s.rope.scaling = mla::ref::rope_scaling::yarn;
  s.rope.factor = 4;
  s.rope.original_max_position = 32;
  return s;
}

// A rank-`rank` conversion of src (weight SVD: the crudest factorisation, so there is something to heal).
template <class T>
mla::ref::mla_layer<T> lossy_conversion(const mla::ref::gqa_layer<T>& src, const std::vector<matrix<T>>& cal, int rank) {
  convert_options o;
  o.rope = {rope_strategy::rorope, 8, 0};
  o.factor.method = factor_method::weight_svd;
  o.rank = rank;
  return mla::convert::convert_layer(src, mla::test::moments_of(cal), o).layer;
}

// A lossy rank-12 conversion of a random source layer and a fresh 40-token input (longer than the window of
// 24, so the mask matters), in double.
struct lossy_case {
  mla::ref::gqa_layer<double> src;
  mla::ref::mla_layer<double> layer;
  matrix<double> x;
};

lossy_case make_lossy_case(std::mt19937_64& gen) {
  const auto spec = distill_spec();
  lossy_case c;
  c.src = mla::test::random_gqa<double>(gen, spec);
  const mla::test::correlated_source<double> xs(gen, spec.hidden);
  c.layer = lossy_conversion(c.src, xs.windows(gen, 3, 40), 12);
  c.x = xs.sample(gen, 40);
  return c;
}

BOOST_AUTO_TEST_SUITE(distill)

// The stage's own forward pass is the reference naive prefill: loss 0 against the reference's output, and
// the squared relative error of the reference against the GQA source.
BOOST_AUTO_TEST_CASE(forward_matches_reference) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const lossy_case c = make_lossy_case(gen);
    const auto& [src, layer, x] = c;
    const matrix<double> self = mla::ref::mla_prefill_naive(layer, x);
    BOOST_TEST(mla::convert::distill_loss(layer, x, self, 1.0 / self.squaredNorm()) < 1e-24);
    const matrix<double> want = mla::ref::gqa_prefill(src, x);
    const double rel = mla::convert::attention_output_error(src, layer, {x});
    const double loss = mla::convert::distill_loss(layer, x, want, 1.0 / want.squaredNorm());
    BOOST_TEST(rel > 1e-3);  // the conversion is lossy, so the check below is not 0 == 0
    BOOST_TEST(std::abs(loss - rel * rel) <= 1e-10 * rel * rel);
  }
}

// The hand-written gradient against central finite differences in double, entry by entry on random entries
// of every trained tensor.
BOOST_AUTO_TEST_CASE(gradient_matches_finite_differences) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const lossy_case c = make_lossy_case(gen);
    const auto& [src, layer, x] = c;
    const matrix<double> y = mla::ref::gqa_prefill(src, x);
    const double inv = 1.0 / y.squaredNorm();
    distill_gradient<double> g(layer);
    mla::convert::distill_loss(layer, x, y, inv, &g);

    using member = matrix<double> mla::ref::mla_layer<double>::*;
    const std::pair<const char*, member> tensors[] = {
        {"wq", &mla::ref::mla_layer<double>::wq},     {"w_dkv", &mla::ref::mla_layer<double>::w_dkv},
        {"w_kr", &mla::ref::mla_layer<double>::w_kr}, {"w_uk", &mla::ref::mla_layer<double>::w_uk},
        {"w_uv", &mla::ref::mla_layer<double>::w_uv}, {"wo", &mla::ref::mla_layer<double>::wo}};
    const matrix<double>* grads[] = {&g.wq, &g.w_dkv, &g.w_kr, &g.w_uk, &g.w_uv, &g.wo};
    for (std::size_t t = 0; t < 6; ++t) {
      const matrix<double>& w = layer.*(tensors[t].second);
      const matrix<double>& gw = *grads[t];
      BOOST_TEST_REQUIRE(gw.rows() == w.rows());
      BOOST_TEST_REQUIRE(gw.cols() == w.cols());
      const double gscale = gw.cwiseAbs().maxCoeff();
      BOOST_TEST(gscale > 0.0, tensors[t].first << ": zero gradient");
      std::uniform_int_distribution<Eigen::Index> pick_r(0, w.rows() - 1), pick_c(0, w.cols() - 1);
      for (int k = 0; k < 8; ++k) {
        const Eigen::Index i = pick_r(gen), j = pick_c(gen);
        const double h = 1e-6 * std::max(1.0, std::abs(w(i, j)));
        auto plus = layer, minus = layer;
        (plus.*(tensors[t].second))(i, j) += h;
        (minus.*(tensors[t].second))(i, j) -= h;
        const double fd = (mla::convert::distill_loss(plus, x, y, inv) - mla::convert::distill_loss(minus, x, y, inv)) /
                          (2 * h);
        BOOST_TEST(std::abs(fd - gw(i, j)) <= 1e-6 * gscale + 1e-6 * std::abs(fd),
                   tensors[t].first << "(" << i << ", " << j << "): analytic " << gw(i, j) << ", finite difference "
                                    << fd);
      }
    }
  }
}

// Distillation lowers the attention-output error on windows it never saw, and never returns a layer worse
// than its input on its own held-out windows; the cache shape is unchanged.
BOOST_AUTO_TEST_CASE(distill_reduces_heldout_error) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const auto spec = distill_spec();
    const auto src = mla::test::random_gqa<float>(gen, spec);
    const mla::test::correlated_source<float> xs(gen, spec.hidden);
    const auto cal = xs.windows(gen, 10, 48);
    const auto test = xs.windows(gen, 3, 48);
    const auto layer = lossy_conversion(src, cal, 12);
    distill_options o;
    o.steps = 150;
    o.learning_rate = 1e-2;
    mla::convert::distill_report rep;
    const auto healed = mla::convert::distill_layer(src, layer, cal, o, &rep);
    const double before = mla::convert::attention_output_error(src, layer, test);
    const double after = mla::convert::attention_output_error(src, healed, test);
    BOOST_TEST_MESSAGE("distill of weight_svd rank 12: unseen windows " << before << " -> " << after
                                                                         << ", own held-out " << rep.heldout_before
                                                                         << " -> " << rep.heldout_after
                                                                         << " (best step " << rep.best_step << ")");
    BOOST_TEST(rep.heldout_after <= rep.heldout_before);
    BOOST_TEST(after < 0.9 * before);
    BOOST_TEST(healed.latent_rank == layer.latent_rank);
    BOOST_TEST(healed.rope_dim == layer.rope_dim);
    BOOST_TEST((healed.sinks == layer.sinks));
    BOOST_TEST((healed.bq == layer.bq));
  }
}

BOOST_AUTO_TEST_CASE(bad_inputs_are_rejected) {
  std::mt19937_64 gen(7);
  const auto spec = distill_spec();
  const auto src = mla::test::random_gqa<double>(gen, spec);
  const mla::test::correlated_source<double> xs(gen, spec.hidden);
  const auto cal = xs.windows(gen, 3, 16);
  const auto layer = lossy_conversion(src, cal, 12);
  distill_options o;
  o.steps = 1;
  mla::test::expect_error([&] { mla::convert::distill_layer(src, layer, {cal[0]}, o); },
                          {"distill_layer", "at least 2 calibration windows"});
  auto normed = layer;
  normed.latent_norm = mla::ref::vector<double>::Ones(layer.latent_rank);
  mla::test::expect_error([&] { mla::convert::distill_layer(src, normed, cal, o); }, {"latent norm"});
  std::vector<matrix<double>> narrow = cal;
  narrow[1] = matrix<double>::Ones(16, spec.hidden - 1);
  mla::test::expect_error([&] { mla::convert::distill_layer(src, layer, narrow, o); },
                          {"window 1", "hidden = " + std::to_string(spec.hidden)});
  o.learning_rate = 0;
  mla::test::expect_error([&] { mla::convert::distill_layer(src, layer, cal, o); }, {"learning_rate > 0"});
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
