#include "mla/convert/calibration.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "convert_test_support.hpp"
#include "mla/model/decoder.hpp"
#include "mla/reference/norms.hpp"
#include "mla/reference/rope.hpp"

namespace {

using mla::convert::dmatrix;
using mla::convert::dvector;
using mla::ref::matrix;
using mla::ref::relative_error;

BOOST_AUTO_TEST_SUITE(convert_calibration)

// The observer's per-layer moments equal moments computed directly from the attention inputs: layer 0's
// input is rms_norm(embedding) (computed here independently), deeper layers' inputs are recorded.
BOOST_AUTO_TEST_CASE(observer_moments_match_direct_computation) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::test::layer_spec spec;
    spec.hidden = 32;
    spec.head_dim = 8;
    spec.biases = true;
    mla::model::model_config cfg;
    mla::model::model_weights<double> w;
    mla::test::random_model(gen, 2, spec, cfg, w);
    const mla::model::decoder<double> dec(cfg, w);
    const auto windows = mla::test::random_windows(gen, cfg.vocab_size, 3, 20);

    const mla::convert::calibration_stats stats = mla::convert::calibrate(dec, windows);
    BOOST_TEST(stats.layers.size() == 2u);
    BOOST_TEST(stats.tokens() == 60);

    // Layer 0 directly.
    dmatrix xx = dmatrix::Zero(32, 32);
    dvector sum = dvector::Zero(32);
    for (const auto& win : windows)
      for (int tok : win) {
        const matrix<double> e = w.embed.row(tok);
        const dvector x = mla::ref::rms_norm(e, w.layers[0].attn_norm, cfg.rms_eps).row(0).transpose();
        xx += x * x.transpose();
        sum += x;
      }
    BOOST_TEST(relative_error(stats.layers[0].xx, xx) < 1e-13);
    BOOST_TEST(relative_error(stats.layers[0].x_sum, sum) < 1e-13);

    // Layer 1 from recorded inputs.
    mla::convert::input_recorder<double> rec(2);
    mla::convert::run_windows(dec, windows, rec);
    const auto m1 = mla::test::moments_of(rec.inputs()[1]);
    BOOST_TEST(relative_error(stats.layers[1].second_moment(), m1.second_moment()) < 1e-13);
    BOOST_TEST(relative_error(stats.layers[1].mean(), m1.mean()) < 1e-13);
    BOOST_TEST(stats.layers[1].residual_mean_square() > 0.0);
  }
}

// Moments of affine maps from the input moments equal the moments of the mapped activations (biases
// through the mean), and the centred covariance drops the bias.
BOOST_AUTO_TEST_CASE(affine_moments_match_activations) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::correlated_source<double> src(gen, 24);
    const matrix<double> x = src.sample(gen, 200);
    mla::convert::layer_moments m;
    m.add(x);
    const matrix<double> wk = mla::test::randn<double>(gen, 10, 24, 0.3);
    const mla::ref::vector<double> bk = mla::test::randn_vec<double>(gen, 10, 0.5);
    matrix<double> y = x * wk.transpose();
    y.rowwise() += bk.transpose();
    const dmatrix direct = y.transpose() * y / 200.0;
    const dmatrix via =
        mla::convert::affine_second_moment(mla::convert::augmented_weight(wk, bk), m.augmented_second_moment());
    BOOST_TEST(relative_error(via, direct) < 1e-12);
    const dvector diag =
        mla::convert::affine_second_moment_diag(mla::convert::augmented_weight(wk, bk), m.augmented_second_moment());
    BOOST_TEST(relative_error(diag, direct.diagonal()) < 1e-12);
    const matrix<double> yc = y.rowwise() - y.colwise().mean();
    BOOST_TEST(relative_error(mla::convert::affine_covariance(wk, m), dmatrix(yc.transpose() * yc / 200.0)) < 1e-12);
  }
}

// The per-frequency (re + im) second moment across heads is the same before and after RoPE, so pre-RoPE
// moments serve RoRoPE: at one frequency RoPE rotates every head's pair by the same angle.
BOOST_AUTO_TEST_CASE(per_frequency_moment_is_rope_invariant) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const int g = 3, d = 16, half = d / 2, n = 100;
    const matrix<double> k = mla::test::randn<double>(gen, n, g * d, 1.0);
    matrix<double> kr = k;
    mla::ref::rope_config rc;
    rc.dim = d;
    const mla::ref::rope<double> rot(rc);
    for (int t = 0; t < n; ++t)
      for (int j = 0; j < g; ++j) rot.apply(kr.data() + t * kr.cols() + j * d, 5 * t + 3);
    for (int f = 0; f < half; ++f) {
      dmatrix a = dmatrix::Zero(g, g), b = dmatrix::Zero(g, g);
      for (int t = 0; t < n; ++t) {
        dvector re(g), im(g), rre(g), rim(g);
        for (int j = 0; j < g; ++j) {
          re[j] = k(t, j * d + f);
          im[j] = k(t, j * d + f + half);
          rre[j] = kr(t, j * d + f);
          rim[j] = kr(t, j * d + f + half);
        }
        a += re * re.transpose() + im * im.transpose();
        b += rre * rre.transpose() + rim * rim.transpose();
      }
      BOOST_TEST(relative_error(b, a) < 1e-12, "frequency " << f);
    }
  }
}

BOOST_AUTO_TEST_CASE(token_windows_and_errors) {
  std::vector<int> toks(100);
  for (int i = 0; i < 100; ++i) toks[static_cast<std::size_t>(i)] = i;
  const auto w = mla::convert::token_windows(toks, 30, 1, 2);
  BOOST_TEST(w.size() == 2u);
  BOOST_TEST(w[0].front() == 30);
  BOOST_TEST(w[1].back() == 89);
  BOOST_CHECK_THROW(mla::convert::token_windows(toks, 30, 2, 2), mla::error);
  mla::convert::layer_moments empty;
  BOOST_CHECK_THROW(empty.require("test"), mla::error);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
