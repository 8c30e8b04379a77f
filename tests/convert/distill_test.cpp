#include "mla/convert/distill.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "convert_test_support.hpp"
#include "distill_test_support.hpp"
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
mla::ref::mla_layer<T> lossy_conversion(const mla::ref::gqa_layer<T>& src, const std::vector<matrix<T>>& cal,
                                        int rank) {
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

// The layer with DeepSeek's latent RMSNorm added, its weight drawn around the latent's typical RMS.
template <class T>
mla::ref::mla_layer<T> with_random_latent_norm(mla::ref::mla_layer<T> l, const matrix<T>& x, std::mt19937_64& gen) {
  const matrix<T> c = x * l.w_dkv.transpose();
  const double rms = std::sqrt(c.template cast<double>().squaredNorm() / double(c.size()));
  std::uniform_real_distribution<double> u(0.5, 1.5);
  l.latent_norm.resize(l.latent_rank);
  for (Eigen::Index i = 0; i < l.latent_rank; ++i) l.latent_norm[i] = static_cast<T>(rms * u(gen));
  l.latent_norm_eps = 1e-6;
  return l;
}

// A random float source layer with 10 calibration windows and 3 unseen ones (48 tokens each).
struct float_case {
  mla::ref::gqa_layer<float> src;
  std::vector<matrix<float>> cal, test;
};

float_case make_float_case(std::mt19937_64& gen) {
  const auto spec = distill_spec();
  float_case c;
  c.src = mla::test::random_gqa<float>(gen, spec);
  const mla::test::correlated_source<float> xs(gen, spec.hidden);
  c.cal = xs.windows(gen, 10, 48);
  c.test = xs.windows(gen, 3, 48);
  return c;
}

distill_options healing_options() {
  distill_options o;
  o.steps = 150;
  o.learning_rate = 1e-2;
  return o;
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

    // With the latent norm, against the reference prefill that applies it (mla_compress).
    const auto normed = with_random_latent_norm(layer, x, gen);
    const matrix<double> self_n = mla::ref::mla_prefill_naive(normed, x);
    BOOST_TEST((self_n - self).norm() > 1e-3 * self.norm());  // the norm changes the output
    BOOST_TEST(mla::convert::distill_loss(normed, x, self_n, 1.0 / self_n.squaredNorm()) < 1e-24);
  }
}

// The hand-written gradient against central finite differences in double, entry by entry on random entries
// of every trained tensor, without and with the latent norm (whose weight is then trained too).
void check_gradient(const mla::ref::mla_layer<double>& layer, const matrix<double>& x, const matrix<double>& y,
                    std::mt19937_64& gen) {
  {
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
        const double fd =
            (mla::convert::distill_loss(plus, x, y, inv) - mla::convert::distill_loss(minus, x, y, inv)) / (2 * h);
        BOOST_TEST(
            std::abs(fd - gw(i, j)) <= 1e-6 * gscale + 1e-6 * std::abs(fd),
            tensors[t].first << "(" << i << ", " << j << "): analytic " << gw(i, j) << ", finite difference " << fd);
      }
    }
    BOOST_TEST_REQUIRE(g.latent_norm.size() == layer.latent_norm.size());
    if (layer.latent_norm.size() == 0) return;
    const double gscale = g.latent_norm.cwiseAbs().maxCoeff();
    BOOST_TEST(gscale > 0.0, "latent_norm: zero gradient");
    std::uniform_int_distribution<Eigen::Index> pick(0, layer.latent_rank - 1);
    for (int k = 0; k < 8; ++k) {
      const Eigen::Index i = pick(gen);
      const double h = 1e-6 * std::max(1.0, std::abs(layer.latent_norm[i]));
      auto plus = layer, minus = layer;
      plus.latent_norm[i] += h;
      minus.latent_norm[i] -= h;
      const double fd =
          (mla::convert::distill_loss(plus, x, y, inv) - mla::convert::distill_loss(minus, x, y, inv)) / (2 * h);
      BOOST_TEST(std::abs(fd - g.latent_norm[i]) <= 1e-6 * gscale + 1e-6 * std::abs(fd),
                 "latent_norm(" << i << "): analytic " << g.latent_norm[i] << ", finite difference " << fd);
    }
  }
}

BOOST_AUTO_TEST_CASE(gradient_matches_finite_differences) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const lossy_case c = make_lossy_case(gen);
    const matrix<double> y = mla::ref::gqa_prefill(c.src, c.x);
    BOOST_TEST_CONTEXT("without latent norm") { check_gradient(c.layer, c.x, y, gen); }
    BOOST_TEST_CONTEXT("with latent norm") { check_gradient(with_random_latent_norm(c.layer, c.x, gen), c.x, y, gen); }
  }
}

// Distillation lowers the attention-output error on windows it never saw and, recomputed here, on its own
// held-out windows (whose loss the report gives); the cache shape is unchanged.
BOOST_AUTO_TEST_CASE(distill_reduces_heldout_error) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const float_case fc = make_float_case(gen);
    const auto& [src, cal, test] = fc;
    const auto layer = lossy_conversion(src, cal, 12);
    const distill_options o = healing_options();
    mla::convert::distill_report rep;
    const auto healed = mla::convert::distill_layer(src, layer, cal, o, &rep);
    const double before = mla::convert::attention_output_error(src, layer, test);
    const double after = mla::convert::attention_output_error(src, healed, test);
    BOOST_TEST_MESSAGE("distill of weight_svd rank 12: unseen windows "
                       << before << " -> " << after << ", own held-out " << rep.heldout_before << " -> "
                       << rep.heldout_after << " (best step " << rep.best_step << ")");
    mla::test::check_distilled(rep, mla::test::distill_heldout_loss(src, layer, cal),
                               mla::test::distill_heldout_loss(src, healed, cal), 0.5);  // measured: 0.04 to 0.11
    BOOST_TEST(after < 0.9 * before);
    BOOST_TEST(healed.latent_rank == layer.latent_rank);
    BOOST_TEST(healed.rope_dim == layer.rope_dim);
    BOOST_TEST((healed.sinks == layer.sinks));
    BOOST_TEST((healed.bq == layer.bq));
  }
}

// Training through the latent norm heals what adding it cost: the normed layer (weight = the latent's RMS on
// calibration windows, as the DeepSeek export sets it) gets closer to the source on unseen windows, and the
// norm's weight moves.
BOOST_AUTO_TEST_CASE(distill_heals_the_latent_norm) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const float_case fc = make_float_case(gen);
    const auto& [src, cal, test] = fc;
    auto normed = lossy_conversion(src, cal, 12);
    const double plain = mla::convert::attention_output_error(src, normed, test);
    double ms = 0;
    long count = 0;
    for (const auto& w : cal) {
      const matrix<float> c = mla::ref::linear(w, normed.w_dkv, normed.b_dkv);
      ms += c.template cast<double>().squaredNorm(), count += c.size();
    }
    normed.latent_norm = mla::ref::vector<float>::Constant(normed.latent_rank, float(std::sqrt(ms / double(count))));
    normed.latent_norm_eps = 1e-6;
    const distill_options o = healing_options();
    mla::convert::distill_report rep;
    const auto healed = mla::convert::distill_layer(src, normed, cal, o, &rep);
    const double before = mla::convert::attention_output_error(src, normed, test);
    const double after = mla::convert::attention_output_error(src, healed, test);
    BOOST_TEST_MESSAGE("distill through the latent norm: unseen windows, no norm " << plain << ", norm " << before
                                                                                   << " -> " << after);
    mla::test::check_distilled(rep, mla::test::distill_heldout_loss(src, normed, cal),
                               mla::test::distill_heldout_loss(src, healed, cal), 0.5);  // measured: 0.04 to 0.11
    BOOST_TEST(after < 0.9 * before);
    BOOST_TEST_REQUIRE(healed.latent_norm.size() == normed.latent_norm.size());
    BOOST_TEST((healed.latent_norm - normed.latent_norm).norm() > 1e-3 * normed.latent_norm.norm());
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
  std::vector<matrix<double>> narrow = cal;
  narrow[1] = matrix<double>::Ones(16, spec.hidden - 1);
  mla::test::expect_error([&] { mla::convert::distill_layer(src, layer, narrow, o); },
                          {"window 1", "hidden = " + std::to_string(spec.hidden)});
  o.learning_rate = 0;
  mla::test::expect_error([&] { mla::convert::distill_layer(src, layer, cal, o); }, {"learning_rate > 0"});
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
