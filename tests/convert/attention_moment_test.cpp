#include "mla/convert/attention_moment.hpp"

#include <Eigen/Eigenvalues>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "convert_test_support.hpp"
#include "expect_error.hpp"
#include "mla/convert/convert_layer.hpp"
#include "mla/convert/factorize.hpp"
#include "mla/convert/rope_strategy.hpp"

namespace {

using mla::ref::matrix;

// xbar_h [tokens, hidden+1] = sum_s p_h(t, s) [x_s, 1] for head h, computed by the reference GQA prefill (its
// own scores, mask, sinks and softmax) on single-head probes whose values copy d input columns at a time and
// whose o_proj is a selector: an independent path to the attention averages.
matrix<double> attention_average_by_probe(const mla::ref::gqa_layer<double>& src, int h, const matrix<double>& x) {
  const int d = src.head_dim, hidden = src.hidden, j = src.kv_head_of(h);
  mla::ref::gqa_layer<double> p;
  p.hidden = hidden;
  p.n_heads = p.n_kv_heads = 1;
  p.head_dim = d;
  p.wq = src.wq.middleRows(h * d, d);
  p.wk = src.wk.middleRows(j * d, d);
  if (src.bq.size()) p.bq = src.bq.segment(h * d, d);
  if (src.bk.size()) p.bk = src.bk.segment(j * d, d);
  if (src.sinks.size()) p.sinks = src.sinks.segment(h, 1);
  p.wo = matrix<double>::Zero(hidden, d);
  p.wo.topRows(d).setIdentity();
  p.rope = src.rope;
  p.attention = src.attention;
  matrix<double> out(x.rows(), hidden + 1);
  for (int c0 = 0; c0 < hidden + 1; c0 += d) {
    const int cw = std::min(d, hidden + 1 - c0);
    p.wv = matrix<double>::Zero(d, hidden);
    p.bv = mla::ref::vector<double>::Zero(d);
    for (int i = 0; i < cw; ++i) {
      if (c0 + i < hidden)
        p.wv(i, c0 + i) = 1.0;
      else
        p.bv[i] = 1.0;  // the augmented 1
    }
    out.middleCols(c0, cw) = mla::ref::gqa_prefill(p, x).leftCols(cw);
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(convert_attention_moment)

// The moment of the attention averages against the reference attention's own averages, head by head, for a
// Llama-style layer and one with sinks, a sliding window and YaRN (where the weights sum to less than 1).
BOOST_AUTO_TEST_CASE(matches_the_reference_attention_averages) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  for (const bool gpt_oss : {false, true}) {
    BOOST_TEST_CONTEXT("seed " << seed << ", gpt-oss features " << gpt_oss) {
      mla::test::layer_spec spec;
      if (gpt_oss) spec = mla::test::with_gpt_oss_features(spec, 9);
      const auto src = mla::test::random_gqa<double>(gen, spec);
      const mla::test::correlated_source<double> xs(gen, spec.hidden);
      const std::vector<matrix<double>> windows = xs.windows(gen, 3, 23);
      const matrix<double> got = mla::convert::attention_averaged_moment(src, windows);

      matrix<double> want = matrix<double>::Zero(spec.hidden + 1, spec.hidden + 1);
      long count = 0;
      for (const auto& x : windows)
        for (int h = 0; h < spec.n_heads; ++h) {
          const matrix<double> xbar = attention_average_by_probe(src, h, x);
          want += xbar.transpose() * xbar;
          count += x.rows();
        }
      want /= double(count);
      BOOST_TEST(mla::ref::relative_error(got, want) < 1e-10);
      // It is not the token moment: attention averages are smoother than the tokens.
      const matrix<double> tokens = mla::test::moments_of(windows).augmented_second_moment();
      BOOST_TEST(mla::ref::relative_error(got, tokens) > 1e-3);
      // max_tokens: only the first window.
      const matrix<double> first = mla::convert::attention_averaged_moment(src, windows, 1);
      const matrix<double> first_only =
          mla::convert::attention_averaged_moment(src, std::vector<matrix<double>>{windows[0]});
      BOOST_TEST(mla::ref::relative_error(first, first_only) == 0.0);
    }
  }
}

// With the attention moment, the value term of the objective is the value error attention produces: the mean
// over heads h' and queries t of sum_h ||W_o,h (A_V - P_V D)_j(h) xbar_h',t||^2 (one moment for every head, their
// average, since the closed form takes one), with xbar from the reference attention. Checked as the objective left
// at rank r (sum of the discarded eigenvalues) = that value error + the key term (from the key block of L).
// Centred, the value offset (A_V - P_V D) mu folded into bo leaves the error (A_V - P_V D)(xbar - mu), and the
// mu that minimises it is the attention averages' mean, not the tokens': the centred objective must match that.
BOOST_AUTO_TEST_CASE(value_objective_is_the_error_attention_produces) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  const mla::test::calibrated_layer c(gen, 2, 40);
  const auto& [spec, src, xs, cal, stats, plan] = c;
  const matrix<double> am = mla::convert::attention_averaged_moment(src, cal);
  const Eigen::Index in = am.rows();
  std::vector<matrix<double>> xbars;  // [windows * heads] of [tokens, hidden+1]
  for (const auto& x : cal)
    for (int hp = 0; hp < spec.n_heads; ++hp) xbars.push_back(attention_average_by_probe(src, hp, x));
  for (const bool centre : {false, true}) {
    BOOST_TEST_CONTEXT("seed " << seed << ", centred " << centre) {
      mla::convert::factor_options fo;
      fo.omega_ridge = 0;  // so that the value block of L^T L is exactly sum_h W_o,h^T W_o,h
      fo.moment = mla::convert::factor_options::moment_kind::attention;
      fo.centre = centre;
      const auto p = mla::convert::make_factor_problem(src, plan, stats, fo, &am);
      const int r = 12, d = spec.head_dim;
      const auto f = mla::convert::solve_factor_problem(p, r);
      const Eigen::Index nk = p.key_rows, gd = p.rows() - nk;
      const mla::convert::dmatrix e = p.a - f.up * f.down;  // [n, hidden+1] error map
      const mla::convert::dmatrix ev = e.bottomRows(gd);
      mla::convert::dvector mu = mla::convert::dvector::Zero(in);  // the mean each xbar is measured from
      if (centre) {
        for (const auto& xbar : xbars) mu += xbar.colwise().sum().transpose();
        mu /= double(xbars.size() * std::size_t(xbars[0].rows()));
        BOOST_TEST(std::abs(mu[in - 1] - 1.0) < 1e-12);  // no sinks: the weights sum to 1
        BOOST_TEST((p.input_mean - mu).norm() <= 1e-10 * mu.norm());
        BOOST_TEST((f.value_offset - ev * mu).norm() <= 1e-10 * f.value_offset.norm());
        // Not the tokens' mean, which would leave a different (larger) error.
        BOOST_TEST((stats.augmented_second_moment().col(in - 1) - mu).norm() > 1e-3 * mu.norm());
      }
      double value_err = 0;
      long count = 0;
      for (const auto& xbar : xbars) {
        const matrix<double> xc = xbar.rowwise() - mu.transpose();
        for (int h = 0; h < spec.n_heads; ++h) {
          const int j = src.kv_head_of(h);
          value_err +=
              (xc * ev.middleRows(j * d, d).transpose() * src.wo.middleCols(h * d, d).transpose()).squaredNorm();
        }
        count += xbar.rows();
      }
      value_err /= double(count);
      const mla::convert::dmatrix lk = p.l.topLeftCorner(nk, nk) * e.topRows(nk);
      const double key_err = (lk * (am - mu * mu.transpose()) * lk.transpose()).trace();
      BOOST_TEST(p.l.topRightCorner(nk, gd).norm() <= 1e-9 * p.l.norm());  // L is block diagonal
      BOOST_TEST(std::abs(value_err + key_err - p.residual(r)) <= 1e-8 * p.residual(r),
                 value_err << " + " << key_err << " vs " << p.residual(r));
      BOOST_TEST(value_err > 0.01 * p.residual(r));  // the value term is not negligible here
    }
  }
}

// CARE's shrinkage regularises the moment the problem uses: with the attention moment, G = A (M_att + lambda
// mean(diag) I_hidden) A^T, its spectrum checked against one computed here.
BOOST_AUTO_TEST_CASE(care_shrinks_the_attention_moment) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::calibrated_layer c(gen, 2, 40);
    const auto& [spec, src, xs, cal, stats, plan] = c;
    const matrix<double> am = mla::convert::attention_averaged_moment(src, cal);
    mla::convert::factor_options fo;
    fo.method = mla::convert::factor_method::care;
    fo.care_shrinkage = 0.05;
    fo.moment = mla::convert::factor_options::moment_kind::attention;
    const auto p = mla::convert::make_factor_problem(src, plan, stats, fo, &am);
    mla::convert::dmatrix shrunk = am;
    const Eigen::Index h = am.rows() - 1;
    shrunk.topLeftCorner(h, h).diagonal().array() += fo.care_shrinkage * am.topLeftCorner(h, h).diagonal().mean();
    const mla::convert::dmatrix g = p.a * shrunk * p.a.transpose();
    Eigen::SelfAdjointEigenSolver<mla::convert::dmatrix> es(0.5 * (g + g.transpose()));
    const mla::convert::dvector want = es.eigenvalues().reverse();
    BOOST_TEST((p.spectrum - want).norm() <= 1e-9 * want.norm());
    // Without the shrinkage the spectrum would differ at this lambda.
    const mla::convert::dmatrix g0 = p.a * am * p.a.transpose();
    Eigen::SelfAdjointEigenSolver<mla::convert::dmatrix> es0(0.5 * (g0 + g0.transpose()));
    BOOST_TEST((p.spectrum - es0.eigenvalues().reverse()).norm() > 1e-4 * want.norm());
  }
}

// The attention moment must be given where it applies, and is refused where it does not.
BOOST_AUTO_TEST_CASE(needs_the_moment) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  mla::test::layer_spec spec;
  const auto src = mla::test::random_gqa<double>(gen, spec);
  const mla::test::correlated_source<double> xs(gen, spec.hidden);
  const auto stats = mla::test::moments_of(xs.windows(gen, 1, 32));
  const auto plan = mla::convert::make_rope_plan(src, stats, {mla::convert::rope_strategy::rorope, 8, 0});
  mla::convert::factor_options fo;
  fo.moment = mla::convert::factor_options::moment_kind::attention;
  mla::test::expect_error([&] { mla::convert::make_factor_problem(src, plan, stats, fo); }, {"attention moment"});
  // weight_svd has no input moment (M = I): the attention moment is refused there, not silently dropped.
  const matrix<double> am = mla::convert::attention_averaged_moment(src, xs.windows(gen, 1, 16));
  fo.method = mla::convert::factor_method::weight_svd;
  mla::test::expect_error([&] { mla::convert::make_factor_problem(src, plan, stats, fo, &am); },
                          {"attention moment", "weight_svd"});
}

BOOST_AUTO_TEST_SUITE_END()
