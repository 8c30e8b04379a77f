// mla::eval::next_token_kl: KL(p || q) between the next-token distributions of a teacher's and a student's
// logit rows [vocab] (p = softmax(teacher), q = softmax(student)), in float64 with log-sum-exp shifts; rounding
// can make the sum a hair negative, so it is clamped at 0.
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

namespace mla::eval {

template <class A, class B>
double next_token_kl(const Eigen::MatrixBase<A>& teacher, const Eigen::MatrixBase<B>& student) {
  const Eigen::ArrayXd a = teacher.template cast<double>().reshaped().array();
  const Eigen::ArrayXd b = student.template cast<double>().reshaped().array();
  const Eigen::ArrayXd lp = a - (a.maxCoeff() + std::log((a - a.maxCoeff()).exp().sum()));
  const Eigen::ArrayXd lq = b - (b.maxCoeff() + std::log((b - b.maxCoeff()).exp().sum()));
  return std::max(0.0, (lp.exp() * (lp - lq)).sum());
}

}  // namespace mla::eval
