#include "mla/reference/online_softmax.hpp"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "mla/core/error.hpp"
#include "random.hpp"
#include "mla/reference/eigen_types.hpp"

namespace {

using mla::ref::matrix;
using mla::ref::row_vector;
using mla::ref::softmax_state;
using mla::ref::vector;

using mla::test::test_seed;
using mla::test::tolerance;

constexpr double neg_inf = -std::numeric_limits<double>::infinity();

// Direct float64 softmax-weighted sum over keys (masked = -inf), with an optional sink column.
struct direct_result {
  row_vector<double> out;
  double lse;
};
direct_result direct_softmax(const std::vector<double>& s, const matrix<double>& v, const double* sink) {
  double m = sink != nullptr ? *sink : neg_inf;
  for (double x : s) m = std::max(m, x);
  direct_result r{row_vector<double>::Zero(v.cols()), neg_inf};
  if (m == neg_inf) return r;
  double den = sink != nullptr ? std::exp(*sink - m) : 0.0;
  for (double x : s) den += x == neg_inf ? 0.0 : std::exp(x - m);
  for (std::size_t k = 0; k < s.size(); ++k)
    if (s[k] != neg_inf) r.out += (std::exp(s[k] - m) / den) * v.row(Eigen::Index(k));
  r.lse = m + std::log(den);
  return r;
}

// Feeds keys [begin, end) into a state, one at a time, as one block, or as two blocks.
template <class T>
softmax_state<T> state_over(const std::vector<T>& s, const matrix<T>& v, int begin, int end, int mode) {
  softmax_state<T> st(static_cast<int>(v.cols()));
  const int mid = begin + (end - begin) / 2;
  vector<T> scores(end - begin);
  for (int k = begin; k < end; ++k) scores[k - begin] = s[k];
  switch (mode) {
    case 0:
      for (int k = begin; k < end; ++k) st.update(s[k], v.row(k));
      break;
    case 1:
      st.update_block(scores, v.middleRows(begin, end - begin));
      break;
    default:
      st.update_block(scores.head(mid - begin), v.middleRows(begin, mid - begin));
      st.update_block(scores.tail(end - mid), v.middleRows(mid, end - mid));
      break;
  }
  return st;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(reference_online_softmax)

using value_types = std::tuple<float, double>;

// Random chunks of a key range (some empty, some with masked keys), each reduced on its own, merged in a
// random order: the same output and log-sum-exp as one direct float64 softmax.
BOOST_AUTO_TEST_CASE_TEMPLATE(chunked_merge_matches_direct_softmax, T, value_types) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  for (int trial = 0; trial < 40; ++trial) {
    BOOST_TEST_CONTEXT("seed " << seed << ", trial " << trial) {
      const int n = std::uniform_int_distribution<int>(0, 300)(gen);
      const int dv = std::uniform_int_distribution<int>(1, 16)(gen);
      // Logits around a random offset (up to +-1000: exp without max-subtraction would overflow).
      const double offset = std::uniform_real_distribution<double>(-1000, 1000)(gen) * (trial % 2);
      std::normal_distribution<double> logit(offset, 4.0);
      std::normal_distribution<double> unit(0.0, 1.0);
      std::bernoulli_distribution masked(trial % 5 == 4 ? 1.0 : 0.1);
      std::vector<T> s(n);
      for (T& x : s) x = masked(gen) ? T(neg_inf) : static_cast<T>(logit(gen));
      matrix<T> v(n, dv);
      for (Eigen::Index i = 0; i < v.size(); ++i) v.data()[i] = static_cast<T>(unit(gen));

      const std::vector<double> s64(s.begin(), s.end());
      const matrix<double> v64 = v.template cast<double>();
      const direct_result want = direct_softmax(s64, v64, nullptr);

      // Cut points with repeats, so that some chunks are empty.
      const int n_chunks = std::uniform_int_distribution<int>(1, 12)(gen);
      std::vector<int> cuts{0, n};
      for (int i = 1; i < n_chunks; ++i) cuts.push_back(std::uniform_int_distribution<int>(0, n)(gen));
      std::sort(cuts.begin(), cuts.end());
      std::vector<softmax_state<T>> parts;
      for (std::size_t i = 0; i + 1 < cuts.size(); ++i)
        parts.push_back(state_over(s, v, cuts[i], cuts[i + 1], std::uniform_int_distribution<int>(0, 2)(gen)));
      parts.emplace_back(dv);  // an explicitly empty state
      std::shuffle(parts.begin(), parts.end(), gen);

      softmax_state<T> total(dv);
      for (const softmax_state<T>& p : parts) total.merge(p);

      if (want.lse == neg_inf) {
        BOOST_TEST(total.empty());
        BOOST_TEST(total.lse() == -std::numeric_limits<T>::infinity());
        BOOST_TEST(total.output().isZero(0));
      } else {
        BOOST_TEST(!total.empty());
        // Rounding scales with the terms, not with their sum: with random-sign values the weighted mean can
        // cancel to far below them, so the error is measured against the same weights applied to |v|.
        const row_vector<double> scale = direct_softmax(s64, v64.cwiseAbs(), nullptr).out;
        const double err = (total.output().template cast<double>() - want.out).norm();
        BOOST_TEST(err <= tolerance<T>() * scale.norm(),
                   "error " << err << ", scale " << scale.norm() << ", relative to the output "
                            << mla::ref::relative_error(total.output(), want.out));
        BOOST_TEST(std::abs(double(total.lse()) - want.lse) <= tolerance<T>() * std::max(1.0, std::abs(want.lse)));
      }
    }
  }
}

// The sink is one more softmax column without a value: p_j = exp(s_j - m) / (exp(S - m) + sum_k exp(s_k - m)),
// m = max(S, max_k s_k), wherever in the key stream (or in which merged part) it is added.
BOOST_AUTO_TEST_CASE_TEMPLATE(sink_matches_closed_form, T, value_types) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  for (int trial = 0; trial < 20; ++trial) {
    BOOST_TEST_CONTEXT("seed " << seed << ", trial " << trial) {
      const int n = std::uniform_int_distribution<int>(1, 64)(gen);
      std::normal_distribution<double> logit(0.0, 3.0);
      std::vector<T> s(n);
      for (T& x : s) x = static_cast<T>(logit(gen));
      // Sinks below, among and above the logits.
      const T sink = static_cast<T>(logit(gen) + (trial % 3 == 0 ? 8.0 : trial % 3 == 1 ? -8.0 : 0.0));
      // Identity values: the output row is the weight vector p itself.
      const matrix<T> v = matrix<T>::Identity(n, n);

      double m = double(sink);
      for (T x : s) m = std::max(m, double(x));
      double den = std::exp(double(sink) - m);
      for (T x : s) den += std::exp(double(x) - m);
      row_vector<double> p(n);
      for (int j = 0; j < n; ++j) p[j] = std::exp(double(s[j]) - m) / den;

      // Sink first, last, or inside one part of a two-way split that is merged afterwards.
      const int where = trial % 3;
      const int cut = std::uniform_int_distribution<int>(0, n)(gen);
      softmax_state<T> a = state_over(s, v, 0, cut, trial % 2);
      softmax_state<T> b = state_over(s, v, cut, n, 1 - trial % 2);
      if (where == 0) a.add_sink(sink);
      if (where == 1) b.add_sink(sink);
      b.merge(a);
      if (where == 2) b.add_sink(sink);

      const row_vector<T> got = b.output();
      BOOST_TEST(mla::ref::relative_error(got, p) <= tolerance<T>());
      // Element-wise: relative to p_j, with slack for weights far below the largest.
      for (int j = 0; j < n; ++j)
        BOOST_TEST(std::abs(double(got[j]) - p[j]) <= tolerance<T>() * (2 * p[j] + 1e-3 * p.maxCoeff()));
      // The sink takes its share of the weight: 1 - sum_j p_j = exp(S - m) / den.
      BOOST_TEST(std::abs((1.0 - double(got.sum())) - std::exp(double(sink) - m) / den) <= tolerance<T>());
      BOOST_TEST(std::abs(double(b.lse()) - (m + std::log(den))) <= tolerance<T>() * std::max(1.0, std::abs(m)));
    }
  }
}

BOOST_AUTO_TEST_CASE(empty_states_merge_correctly) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::normal_distribution<double> unit(0.0, 1.0);
    softmax_state<double> e1(3), e2(3);
    e1.merge(e2);
    BOOST_TEST(e1.empty());
    BOOST_TEST(e1.lse() == neg_inf);
    BOOST_TEST(e1.output().isZero(0));

    softmax_state<double> a(3);
    a.update(unit(gen), row_vector<double>::Random(3));
    a.update(unit(gen), row_vector<double>::Random(3));
    const softmax_state<double> a0 = a;
    a.merge(e2);  // nonempty <- empty: unchanged, bit for bit
    BOOST_TEST(a.max_logit() == a0.max_logit());
    BOOST_TEST(a.denominator() == a0.denominator());
    BOOST_TEST((a.accumulator() == a0.accumulator()));
    e1.merge(a);  // empty <- nonempty: a copy
    BOOST_TEST((e1.output() == a.output()));
    BOOST_TEST(e1.lse() == a.lse());

    // Masked keys change nothing; a fully masked block neither.
    a.update(neg_inf, row_vector<double>::Random(3));
    vector<double> masked = vector<double>::Constant(4, neg_inf);
    a.update_block(masked, matrix<double>::Random(4, 3));
    BOOST_TEST(a.denominator() == a0.denominator());
    BOOST_TEST((a.accumulator() == a0.accumulator()));

    // A sink alone: not empty, zero output, lse = the sink.
    softmax_state<double> s(3);
    s.add_sink(0.75);
    BOOST_TEST(!s.empty());
    BOOST_TEST(s.output().isZero(0));
    BOOST_TEST(s.lse() == 0.75);
  }
}

BOOST_AUTO_TEST_CASE(bad_input_throws) {
  softmax_state<float> s(4);
  BOOST_CHECK_THROW(s.update(std::numeric_limits<float>::quiet_NaN(), row_vector<float>::Zero(4)), mla::error);
  BOOST_CHECK_THROW(s.update(std::numeric_limits<float>::infinity(), row_vector<float>::Zero(4)), mla::error);
  BOOST_CHECK_THROW(s.update(0.f, row_vector<float>::Zero(5)), mla::error);
  BOOST_CHECK_THROW(s.update_block(vector<float>::Zero(2), matrix<float>::Zero(3, 4)), mla::error);
  BOOST_CHECK_THROW(s.merge(softmax_state<float>(5)), mla::error);
  BOOST_CHECK_THROW(softmax_state<float>(-1), mla::error);
}

BOOST_AUTO_TEST_SUITE_END()
