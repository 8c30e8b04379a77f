#include "mla/convert/latent_norm.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "convert_test_support.hpp"
#include "expect_error.hpp"
#include "mla/reference/exact_rewrite.hpp"

namespace {

using mla::ref::matrix;

}  // namespace

BOOST_AUTO_TEST_SUITE(convert_latent_norm)

// E||c||^2 from the moments against the latents themselves, token by token in double; with and without biases
// (the bias is what the augmented moment's last row and column carry).
BOOST_AUTO_TEST_CASE(mean_square_matches_the_latents_of_the_calibration_tokens) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  for (const bool biases : {false, true}) {
    BOOST_TEST_CONTEXT("seed " << seed << ", biases " << biases) {
      mla::test::layer_spec spec;
      spec.biases = biases;
      const auto m = mla::ref::exact_mla_from_gqa(mla::test::random_gqa<double>(gen, spec));
      const mla::test::correlated_source<double> src(gen, spec.hidden);
      const std::vector<matrix<double>> windows = src.windows(gen, 3, 50);
      const double got = mla::convert::latent_mean_square(m, mla::test::moments_of(windows).augmented_second_moment());

      double sum = 0;
      int tokens = 0;
      for (const auto& x : windows)
        for (Eigen::Index t = 0; t < x.rows(); ++t, ++tokens) {
          Eigen::VectorXd c = m.w_dkv * x.row(t).transpose();
          if (biases) c += m.b_dkv;
          sum += c.squaredNorm();
        }
      const double want = sum / tokens;
      BOOST_TEST(want > 1.0);  // random latents, far from zero
      BOOST_TEST(std::abs(got - want) <= 1e-10 * want);
    }
  }
}

// The added norm: a constant weight equal to the latent's calibration RMS, the format's epsilon, nothing else moved.
BOOST_AUTO_TEST_CASE(add_latent_norm_gives_the_calibration_rms_as_weight) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::test::layer_spec spec;
    spec.biases = true;
    const auto before = mla::ref::exact_mla_from_gqa(mla::test::random_gqa<float>(gen, spec));
    const mla::test::correlated_source<float> src(gen, spec.hidden);
    const auto m_aug = mla::test::moments_of(src.windows(gen, 2, 40)).augmented_second_moment();
    auto after = before;
    mla::convert::add_latent_norm(after, m_aug);
    const double rms = std::sqrt(mla::convert::latent_mean_square(before, m_aug) / before.latent_rank);
    BOOST_TEST_REQUIRE(after.latent_norm.size() == before.latent_rank);
    for (Eigen::Index i = 0; i < after.latent_norm.size(); ++i)
      BOOST_TEST(std::abs(after.latent_norm[i] - rms) <= 1e-6 * rms);
    BOOST_TEST(after.latent_norm_eps == mla::model::mla_latent_norm_eps);
    BOOST_TEST((after.w_dkv.array() == before.w_dkv.array()).all());
    BOOST_TEST((after.w_uk.array() == before.w_uk.array()).all());
    BOOST_TEST((after.w_uv.array() == before.w_uv.array()).all());
  }
}

BOOST_AUTO_TEST_CASE(a_moment_of_the_wrong_size_is_refused) {
  std::mt19937_64 gen(mla::test::test_seed());
  const mla::test::layer_spec spec;
  const auto m = mla::ref::exact_mla_from_gqa(mla::test::random_gqa<float>(gen, spec));
  const matrix<double> wrong = matrix<double>::Identity(spec.hidden, spec.hidden);  // not augmented
  BOOST_CHECK_EXCEPTION(mla::convert::latent_mean_square(m, wrong), mla::error, [](const mla::error& e) {
    return mla::test::message_has(e, {"latent_mean_square", "65x65", "hidden + 1"});
  });
}

BOOST_AUTO_TEST_SUITE_END()
