#include "mla/core/softmax_merge.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "paged_layout_support.hpp"

using namespace mla_cpu_test;

namespace {
const float neg_inf = -HUGE_VALF;
}

BOOST_AUTO_TEST_SUITE(core_softmax_merge)

BOOST_AUTO_TEST_CASE(finalize_adds_the_sink) {
  // Keys with logits {1, 2}: online state m = 2, d = e^-1 + 1.
  const mla::softmax_stats st{2.0f, static_cast<float>(std::exp(-1.0) + 1.0)};
  const auto no_sink = mla::softmax_finalize(st, neg_inf);
  BOOST_TEST(no_sink.lse == std::log(std::exp(1.0) + std::exp(2.0)), boost::test_tools::tolerance(1e-6));
  BOOST_TEST(no_sink.out_scale == 1.0 / (std::exp(-1.0) + 1.0), boost::test_tools::tolerance(1e-6));
  // A sink above the max: lse = ln(e + e^2 + e^3); out = o e^{m - lse}.
  const auto sink = mla::softmax_finalize(st, 3.0f);
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  BOOST_TEST(sink.lse == lse, boost::test_tools::tolerance(1e-6));
  BOOST_TEST(sink.out_scale == std::exp(2.0 - lse), boost::test_tools::tolerance(1e-6));
  // No key: only the sink (out = 0), or nothing at all (lse = -inf).
  const auto only_sink = mla::softmax_finalize({neg_inf, 0.0f}, 0.5f);
  BOOST_TEST(only_sink.out_scale == 0.0f);
  BOOST_TEST(only_sink.lse == 0.5f);
  const auto nothing = mla::softmax_finalize({neg_inf, 0.0f}, neg_inf);
  BOOST_TEST(nothing.out_scale == 0.0f);
  BOOST_TEST(nothing.lse == neg_inf);
}

// Random logits and values split into random disjoint sets (some empty, with NaN garbage in their outputs):
// the merge equals the float64 softmax over everything, sinks included.
BOOST_AUTO_TEST_CASE(merge_equals_the_full_softmax) {
  const std::uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, 3.0);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (int trial = 0; trial < 200; ++trial) {
      const int keys = std::uniform_int_distribution<int>(0, 60)(rng);
      const int splits = std::uniform_int_distribution<int>(1, 9)(rng);
      const int dim = std::uniform_int_distribution<int>(1, 40)(rng);
      const bool has_sink = trial % 3 != 0;
      const double sink = has_sink ? nd(rng) : -INFINITY;
      std::vector<double> logit(static_cast<std::size_t>(keys));
      std::vector<std::vector<double>> value(static_cast<std::size_t>(keys),
                                             std::vector<double>(static_cast<std::size_t>(dim)));
      std::vector<int> owner(static_cast<std::size_t>(keys));
      for (int k = 0; k < keys; ++k) {
        logit[static_cast<std::size_t>(k)] = nd(rng) + (trial % 5 == 0 ? 80.0 : 0.0);  // sometimes large logits
        for (double& x : value[static_cast<std::size_t>(k)]) x = nd(rng);
        owner[static_cast<std::size_t>(k)] = std::uniform_int_distribution<int>(0, splits - 1)(rng);
      }
      // Partials: layout [splits][dim] with lse [splits] at stride 2 (to exercise strides).
      std::vector<float> part(static_cast<std::size_t>(splits * dim), nan_f()),
          lse(static_cast<std::size_t>(2 * splits), nan_f());
      for (int s = 0; s < splits; ++s) {
        double m = -INFINITY;
        for (int k = 0; k < keys; ++k)
          if (owner[static_cast<std::size_t>(k)] == s) m = std::max(m, logit[static_cast<std::size_t>(k)]);
        lse[static_cast<std::size_t>(2 * s)] = -HUGE_VALF;
        if (m == -INFINITY) continue;  // empty split: its output stays NaN
        double z = 0;
        std::vector<double> o(static_cast<std::size_t>(dim), 0.0);
        for (int k = 0; k < keys; ++k)
          if (owner[static_cast<std::size_t>(k)] == s) {
            const double w = std::exp(logit[static_cast<std::size_t>(k)] - m);
            z += w;
            for (int j = 0; j < dim; ++j)
              o[static_cast<std::size_t>(j)] += w * value[static_cast<std::size_t>(k)][static_cast<std::size_t>(j)];
          }
        for (int j = 0; j < dim; ++j)
          part[static_cast<std::size_t>(s * dim + j)] = static_cast<float>(o[static_cast<std::size_t>(j)] / z);
        lse[static_cast<std::size_t>(2 * s)] = static_cast<float>(m + std::log(z));
      }
      // Float64 truth. The partial lse are floats, so each carries an absolute rounding error of about
      // |lse| * 2^-24; the merge weights inherit it as a relative error, and the output error is that times
      // kappa = sum_j w_j |out_j| / |out| (cancellation between splits). Tolerance: 1e-5 for |lse| <~ 10,
      // plus that bound for the trials with logits near 80.
      double m = sink;
      for (double l : logit) m = std::max(m, l);
      std::vector<double> want(static_cast<std::size_t>(dim), 0.0);
      double want_lse = -INFINITY;
      if (m != -INFINITY) {
        double z = has_sink ? std::exp(sink - m) : 0.0;
        for (double l : logit) z += std::exp(l - m);
        for (int k = 0; k < keys; ++k)
          for (int j = 0; j < dim; ++j)
            want[static_cast<std::size_t>(j)] += std::exp(logit[static_cast<std::size_t>(k)] - m) / z *
                                                 value[static_cast<std::size_t>(k)][static_cast<std::size_t>(j)];
        want_lse = m + std::log(z);
      }
      double tolerance = 1e-5;
      if (want_lse != -INFINITY) {
        double norm_out = 0, weighted = 0, max_lse = std::abs(want_lse);
        for (double x : want) norm_out += x * x;
        for (int s = 0; s < splits; ++s) {
          const float l = lse[static_cast<std::size_t>(2 * s)];
          if (l == -HUGE_VALF) continue;
          max_lse = std::max(max_lse, std::abs(static_cast<double>(l)));
          double n = 0;
          for (int j = 0; j < dim; ++j)
            n += static_cast<double>(part[static_cast<std::size_t>(s * dim + j)]) *
                 part[static_cast<std::size_t>(s * dim + j)];
          weighted += std::exp(static_cast<double>(l) - want_lse) * std::sqrt(n);
        }
        const double kappa = norm_out > 0 ? weighted / std::sqrt(norm_out) : 1.0;
        tolerance += 4.0 * max_lse * std::ldexp(1.0, -24) * kappa;
      }
      std::vector<float> out(static_cast<std::size_t>(dim), nan_f()), weights(static_cast<std::size_t>(splits));
      const float got_lse = mla::softmax_merge(part.data(), dim, lse.data(), 2, splits, dim, static_cast<float>(sink),
                                               weights.data(), out.data());
      BOOST_TEST_CONTEXT("trial " << trial << " keys " << keys << " splits " << splits << " sink " << sink) {
        BOOST_TEST(all_finite(out));
        BOOST_TEST(row_error(out.data(), want) <= tolerance);
        if (want_lse == -INFINITY)
          BOOST_TEST(got_lse == -HUGE_VALF);
        else
          BOOST_TEST(lse_error(got_lse, want_lse) <= 1e-6);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(merge_of_nothing) {
  const float lse[2] = {-HUGE_VALF, -HUGE_VALF};
  const float part[4] = {nan_f(), nan_f(), nan_f(), nan_f()};
  float out[2] = {nan_f(), nan_f()}, w[2];
  BOOST_TEST(mla::softmax_merge(part, 2, lse, 1, 2, 2, -HUGE_VALF, w, out) == -HUGE_VALF);
  BOOST_TEST(out[0] == 0.0f);
  BOOST_TEST(out[1] == 0.0f);
  // Only a sink: the output is 0 and the lse is the sink.
  BOOST_TEST(mla::softmax_merge(part, 2, lse, 1, 2, 2, 1.5f, w, out) == 1.5f);
  BOOST_TEST(out[0] == 0.0f);
}

BOOST_AUTO_TEST_SUITE_END()
