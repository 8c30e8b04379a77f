// RMSNorm, row-wise over [tokens, hidden]: y = x / sqrt(mean(x^2) + eps) * weight.
// Accumulates the mean square in double for float inputs (the reference favours accuracy over speed).
#pragma once

#include <cmath>

#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"

namespace mla::ref {

template <class T>
matrix<T> rms_norm(const matrix<T>& x, const vector<T>& weight, double eps) {
  check(weight.size() == x.cols(), "mla::ref::rms_norm: weight has ", weight.size(), " entries, expected ", x.cols());
  matrix<T> y(x.rows(), x.cols());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const double mean_square = x.row(t).template cast<double>().squaredNorm() / static_cast<double>(x.cols());
    const T inv = static_cast<T>(1.0 / std::sqrt(mean_square + eps));
    y.row(t) = (x.row(t) * inv).cwiseProduct(weight.transpose());
  }
  return y;
}

}  // namespace mla::ref
