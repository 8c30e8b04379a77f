// Random test data shared by every test area: a fresh seed per run (MLA_TEST_SEED=<n> replays one;
// tests print it through BOOST_TEST_CONTEXT), Gaussian matrices with a chosen spread, small integers.
#pragma once

#include <random>
#include <type_traits>

#include "mla/reference/eigen_types.hpp"
#include "seed.hpp"

namespace mla::test {

// The equivalence tolerance the project states: relative error 1e-5 in float, 1e-12 in double.
template <class T>
double tolerance() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

// [rows, cols] with N(0, stddev^2) entries.
template <class T>
ref::matrix<T> randn(std::mt19937_64& gen, Eigen::Index rows, Eigen::Index cols, double stddev) {
  std::normal_distribution<double> nd(0.0, stddev);
  ref::matrix<T> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(nd(gen));
  return m;
}

template <class T>
ref::vector<T> randn_vec(std::mt19937_64& gen, Eigen::Index n, double stddev) {
  const ref::matrix<T> m = randn<T>(gen, n, 1, stddev);
  return m.col(0);
}

inline int pick(std::mt19937_64& gen, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); }

}  // namespace mla::test
