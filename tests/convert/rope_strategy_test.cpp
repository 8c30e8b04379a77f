#include "mla/convert/rope_strategy.hpp"

#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "convert_test_support.hpp"
#include "mla/convert/convert_layer.hpp"
#include "mla/reference/mla_attention.hpp"

namespace {

using mla::convert::dmatrix;
using mla::convert::rope_strategy;
using mla::ref::gqa_layer;
using mla::ref::matrix;

// The attention strategy's cost of cutting RoPE from pair (f, e), recomputed the long way: scores with and
// without the rotation of that one pair built from explicit d-wide vectors and the rope class, the source
// attention from a softmax written here, and the first-order change of each head's output through o_proj,
// W_o,h sum_s p_s (delta_s - E_p delta) v_s, summed over heads and queries.
double direct_cut_cost(const gqa_layer<double>& src, const dmatrix& dirs, int f, int e,
                       const std::vector<matrix<double>>& windows) {
  const int g = src.n_kv_heads, d = src.head_dim, half = d / 2;
  const mla::ref::rope<double> rot(src.rope);
  const double af = rot.attention_factor(), scale = src.attention.softmax_scale;
  double total = 0;
  for (const matrix<double>& x : windows) {
    const long n = static_cast<long>(x.rows());
    const matrix<double> q =
        x * src.wq.transpose() +
        (src.bq.size() ? matrix<double>(src.bq.transpose().replicate(n, 1)) : matrix<double>::Zero(n, src.wq.rows()));
    const matrix<double> k =
        x * src.wk.transpose() +
        (src.bk.size() ? matrix<double>(src.bk.transpose().replicate(n, 1)) : matrix<double>::Zero(n, src.wk.rows()));
    const matrix<double> v =
        x * src.wv.transpose() +
        (src.bv.size() ? matrix<double>(src.bv.transpose().replicate(n, 1)) : matrix<double>::Zero(n, src.wv.rows()));
    for (int h = 0; h < src.n_heads; ++h) {
      const int j = src.kv_head_of(h);
      for (long t = 0; t < n; ++t) {
        std::vector<double> qt(q.row(t).segment(h * d, d).data(), q.row(t).segment(h * d, d).data() + d);
        std::vector<double> qt_rot = qt;
        rot.apply(qt_rot.data(), t);
        std::vector<double> logit, delta;
        for (long s = 0; s <= t; ++s) {
          if (src.attention.sliding_window > 0 && t - s >= src.attention.sliding_window) continue;
          std::vector<double> ks(k.row(s).segment(j * d, d).data(), k.row(s).segment(j * d, d).data() + d);
          std::vector<double> kp(static_cast<std::size_t>(d), 0.0);  // head j's share of the pair (f, e)
          double c_re = 0, c_im = 0;
          for (int jj = 0; jj < g; ++jj) {
            c_re += dirs(jj, e) * k(s, jj * d + f);
            c_im += dirs(jj, e) * k(s, jj * d + f + half);
          }
          kp[static_cast<std::size_t>(f)] = dirs(j, e) * c_re;
          kp[static_cast<std::size_t>(f + half)] = dirs(j, e) * c_im;
          std::vector<double> ks_rot = ks, kp_rot = kp;
          rot.apply(ks_rot.data(), s);
          rot.apply(kp_rot.data(), s);
          double full = 0, rotated = 0, plain = 0;
          for (int i = 0; i < d; ++i) {
            full += qt_rot[i] * ks_rot[i];
            rotated += qt_rot[i] * kp_rot[i];
            plain += qt[i] * kp[i];
          }
          logit.push_back(scale * full);
          delta.push_back(scale * (af * af * plain - rotated));
        }
        double mx = src.sinks.size() ? src.sinks[h] : -std::numeric_limits<double>::infinity();
        for (double l : logit) mx = std::max(mx, l);
        double z = src.sinks.size() ? std::exp(src.sinks[h] - mx) : 0.0;
        for (double l : logit) z += std::exp(l - mx);
        std::vector<double> prob;
        double mean_delta = 0;
        for (std::size_t i = 0; i < logit.size(); ++i) {
          prob.push_back(std::exp(logit[i] - mx) / z);
          mean_delta += prob.back() * delta[i];
        }
        Eigen::VectorXd change = Eigen::VectorXd::Zero(src.hidden);  // W_o,h sum_s p_s (delta_s - mean) v_s
        long i = 0;
        for (long s = 0; s <= t; ++s) {
          if (src.attention.sliding_window > 0 && t - s >= src.attention.sliding_window) continue;
          const Eigen::VectorXd o = src.wo.middleCols(h * d, d) * v.row(s).segment(j * d, d).transpose();
          change += prob[static_cast<std::size_t>(i)] * (delta[static_cast<std::size_t>(i)] - mean_delta) * o;
          ++i;
        }
        total += change.squaredNorm();
      }
    }
  }
  return total;
}

BOOST_AUTO_TEST_SUITE(convert_rope_strategy)

// rope_cut_costs agrees with the direct computation for every (frequency, direction), plain and with
// biases, sinks, a sliding window and YaRN.
BOOST_AUTO_TEST_CASE(cut_costs_match_direct_scores) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  for (int variant = 0; variant < 2; ++variant) {
    BOOST_TEST_CONTEXT("seed " << seed << ", variant " << variant) {
      mla::test::layer_spec spec;
      if (variant == 1) spec = mla::test::with_gpt_oss_features(spec, 7);
      const auto src = mla::test::random_gqa<double>(gen, spec);
      const mla::test::correlated_source<double> xs(gen, spec.hidden);
      const auto windows = xs.windows(gen, 2, 24);
      const int g = spec.n_kv_heads, half = spec.head_dim / 2;
      std::vector<dmatrix> dirs;  // random orthonormal directions per frequency
      for (int f = 0; f < half; ++f) {
        const Eigen::MatrixXd a = mla::test::randn<double>(gen, g, g, 1.0);
        const Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
        dirs.push_back(dmatrix(Eigen::MatrixXd(qr.householderQ())));
      }
      const auto cost = mla::convert::detail::rope_cut_costs(src, dirs, windows, 1 << 20, 1 << 20);
      double largest = 0;
      for (int f = 0; f < half; ++f)
        for (int e = 0; e < g; ++e) {
          const double want = direct_cut_cost(src, dirs[static_cast<std::size_t>(f)], f, e, windows);
          const double got = cost[static_cast<std::size_t>(f)][static_cast<std::size_t>(e)];
          largest = std::max(largest, want);
          BOOST_TEST(std::abs(got - want) <= 1e-9 * std::max(1.0, want),
                     "f " << f << " e " << e << ": " << got << " vs " << want);
        }
      BOOST_TEST(largest > 1e-3);  // the test compares something
    }
  }
}

// With a large RoPE base most frequencies barely turn within the window. The attention strategy then gives
// its pairs to the fast frequencies (several directions each), keeps the plan orthonormal and
// frequency-pure, and its RoPE cut costs less than RoRoPE's and the fixed selections' at the same d_R.
BOOST_AUTO_TEST_CASE(pairs_go_where_rotation_matters) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::test::layer_spec spec;
    spec.n_kv_heads = 2;
    spec.rope.theta = 1e6;  // theta_f = 1e6^(-f/8): f >= 4 turns < 0.1 rad over 64 tokens
    const auto src = mla::test::random_gqa<double>(gen, spec);
    const mla::test::correlated_source<double> xs(gen, spec.hidden);
    const auto calib = xs.windows(gen, 16, 64);
    const auto stats = mla::test::moments_of(calib);
    const auto test = xs.windows(gen, 4, 64);
    mla::convert::rope_options ro{rope_strategy::attention, 8, 0};
    const auto plan = mla::convert::make_rope_plan(src, stats, ro, &calib);
    const dmatrix gram = plan.basis.transpose() * plan.basis;
    BOOST_TEST(mla::ref::relative_error(gram, dmatrix::Identity(gram.rows(), gram.cols())) < 1e-12);
    BOOST_TEST(plan.frequency_pure);
    BOOST_TEST(plan.freq_index.size() == 4u);
    const std::vector<double> freq = mla::ref::rope<double>(src.rope).inv_freq();
    for (std::size_t i = 0; i < plan.freq_index.size(); ++i) {
      BOOST_TEST(plan.freq_index[i] < 4, "pair " << i << " on slow frequency " << plan.freq_index[i]);
      BOOST_TEST(plan.inv_freq[i] == freq[static_cast<std::size_t>(plan.freq_index[i])]);
    }
    BOOST_TEST(std::is_sorted(plan.freq_index.begin(), plan.freq_index.end()));

    auto cut_error = [&](const mla::convert::rope_options& o) {
      mla::convert::convert_options co;
      co.rope = o;
      co.rank = 0;  // full rank: only the RoPE cut loses
      const auto plan_o = mla::convert::make_rope_plan(src, stats, o, &calib);
      const auto prob = mla::convert::make_factor_problem(src, plan_o, stats, co.factor);
      const auto layer =
          mla::convert::assemble_mla_layer(src, plan_o, mla::convert::solve_factor_problem(prob, prob.rows()));
      return mla::convert::attention_output_error(src, layer, test);
    };
    // RoRoPE and the 2-norm selection spend pairs on the static frequencies. "high" keeps exactly the four
    // turning frequencies here, which is close to ideal by construction; the cost is a first-order model of
    // the output error, so against it the test allows a small margin.
    const double attention = cut_error(ro);
    for (rope_strategy s : {rope_strategy::rorope, rope_strategy::two_norm}) {
      const double other = cut_error({s, 8, 0});
      BOOST_TEST_MESSAGE("RoPE cut error on held-out tokens: attention " << attention << ", " << to_string(s) << " "
                                                                         << other);
      BOOST_TEST(attention < other, to_string(s) << ": attention " << attention << " vs " << other);
    }
    const double high = cut_error({rope_strategy::high, 8, 0});
    BOOST_TEST(attention < 1.1 * high, "high: attention " << attention << " vs " << high);
    // The converted layer runs with its per-pair frequencies (absorbed = naive).
    {
      mla::convert::convert_options co;
      co.rope = ro;
      const auto prob = mla::convert::make_factor_problem(src, plan, stats, co.factor);
      const auto layer = mla::convert::assemble_mla_layer(src, plan, mla::convert::solve_factor_problem(prob, 12));
      BOOST_TEST(!layer.rope.inv_freq_override.empty());
      const matrix<double> x = test.front();
      BOOST_TEST(mla::ref::relative_error(mla::ref::mla_prefill(layer, x, mla::ref::mla_form::absorbed),
                                          mla::ref::mla_prefill(layer, x, mla::ref::mla_form::naive)) < 1e-10);
    }
  }
  // No calibration inputs: a clear error.
  {
    std::mt19937_64 gen2(mla::test::test_seed());
    mla::test::layer_spec spec;
    const auto src = mla::test::random_gqa<double>(gen2, spec);
    const mla::test::correlated_source<double> xs(gen2, spec.hidden);
    const auto stats = mla::test::moments_of(xs.windows(gen2, 2, 16));
    BOOST_CHECK_THROW(mla::convert::make_rope_plan(src, stats, {rope_strategy::attention, 8, 0}), mla::error);
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
