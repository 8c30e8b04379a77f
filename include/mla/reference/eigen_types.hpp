// Eigen aliases shared by the reference math. Token-major, row-major storage: row t is token t,
// which matches the [tokens, channels] layout of checkpoints and caches.
#pragma once

#include <Eigen/Core>

namespace mla::ref {

template <class T>
using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;  // [rows, cols]
template <class T>
using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;  // [n]
template <class T>
using row_vector = Eigen::Matrix<T, 1, Eigen::Dynamic>;  // [1, n]

// Norm-wise relative error ||a - b|| / ||b|| (the measure the equivalence tests state tolerances in).
template <class DerivedA, class DerivedB>
double relative_error(const Eigen::MatrixBase<DerivedA>& a, const Eigen::MatrixBase<DerivedB>& b) {
  const double den = b.template cast<double>().norm();
  const double num = (a.template cast<double>() - b.template cast<double>()).norm();
  return den == 0.0 ? num : num / den;
}

}  // namespace mla::ref
