// mla::ref::softmax_state: the running state of an online (streaming) softmax-weighted sum
//   out = sum_k softmax(s)_k * v_k
// kept as (m, d, o): m the running max logit, d = sum_k exp(s_k - m), o = sum_k exp(s_k - m) * v_k
// (unnormalised, [value_dim]). This is the state of FlashAttention / FlashInfer's state_t: keys can be fed
// one at a time or in blocks, and two states over disjoint key sets merge exactly (split-KV decode).
// Logarithms are natural (lse = m + ln d), not base 2.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <limits>

#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"

namespace mla::ref {

template <class T>
class softmax_state {
 public:
  // An empty state of value width 0; call init() before use.
  softmax_state() = default;
  explicit softmax_state(int value_dim) { init(value_dim); }

  // Resets to the empty state (no keys seen): m = -inf, d = 0, o = 0 [value_dim].
  void init(int value_dim) {
    check(value_dim >= 0, "mla::ref::softmax_state: value_dim must be >= 0, found ", value_dim);
    m_ = neg_inf();
    d_ = T(0);
    o_ = row_vector<T>::Zero(value_dim);
  }

  int value_dim() const { return static_cast<int>(o_.size()); }
  // True while no finite logit (key or sink) has been added.
  bool empty() const { return m_ == neg_inf(); }
  T max_logit() const { return m_; }
  T denominator() const { return d_; }
  // The unnormalised accumulator o = sum_k exp(s_k - m) v_k [value_dim].
  const row_vector<T>& accumulator() const { return o_; }

  // Adds one key: its logit `score` and its value row `value` [value_dim] (any vector expression).
  // A score of -inf is a masked key and changes nothing.
  template <class Derived>
  void update(T score, const Eigen::MatrixBase<Derived>& value) {
    check(value.size() == value_dim(), "mla::ref::softmax_state::update: value has ", value.size(),
          " elements, expected value_dim = ", value_dim());
    check_logit(score, "update");
    if (score == neg_inf()) return;
    raise_max(score);
    const T p = std::exp(score - m_);
    d_ += p;
    for (Eigen::Index i = 0; i < value.size(); ++i) o_[i] += p * value(i);
  }

  // Adds a block of keys: scores [n] (any vector expression), values [n, value_dim].
  // Same result as n calls of update() up to rounding; the max is raised once per block.
  template <class DerivedS, class DerivedV>
  void update_block(const Eigen::MatrixBase<DerivedS>& scores, const Eigen::MatrixBase<DerivedV>& values) {
    check(values.rows() == scores.size() && values.cols() == value_dim(),
          "mla::ref::softmax_state::update_block: values has shape [", values.rows(), ", ", values.cols(),
          "], expected [scores.size() = ", scores.size(), ", value_dim = ", value_dim(), "]");
    T block_max = neg_inf();
    for (Eigen::Index k = 0; k < scores.size(); ++k) {
      check_logit(scores(k), "update_block");
      if (scores(k) > block_max) block_max = scores(k);
    }
    if (block_max == neg_inf()) return;  // empty or fully masked block
    raise_max(block_max);
    for (Eigen::Index k = 0; k < scores.size(); ++k) {
      if (scores(k) == neg_inf()) continue;
      const T p = std::exp(scores(k) - m_);
      d_ += p;
      o_.noalias() += p * values.row(k);
    }
  }

  // Adds an attention sink: one more softmax column with logit `logit` and a zero value. It only
  // enlarges the denominator, so the normalised weights of the real keys sum to less than 1.
  void add_sink(T logit) {
    check_logit(logit, "add_sink");
    if (logit == neg_inf()) return;
    raise_max(logit);
    d_ += std::exp(logit - m_);
  }

  // Folds in a state over a disjoint key set (the split-KV log-sum-exp merge). Either side may be empty.
  void merge(const softmax_state& other) {
    check(other.value_dim() == value_dim(), "mla::ref::softmax_state::merge: other has value_dim ", other.value_dim(),
          ", expected ", value_dim());
    if (other.empty()) return;
    if (empty()) {
      *this = other;
      return;
    }
    const T m = m_ > other.m_ ? m_ : other.m_;
    const T a = std::exp(m_ - m);
    const T b = std::exp(other.m_ - m);
    d_ = d_ * a + other.d_ * b;
    o_ = o_ * a + other.o_ * b;
    m_ = m;
  }

  // The normalised output o / d [value_dim]; zeros when no key (or only a sink) was seen.
  row_vector<T> output() const {
    if (d_ == T(0)) return row_vector<T>::Zero(value_dim());
    return o_ / d_;
  }

  // ln(sum of exp over every logit added, sinks included); -inf for an empty state.
  T lse() const { return empty() ? neg_inf() : m_ + std::log(d_); }

 private:
  static constexpr T neg_inf() { return -std::numeric_limits<T>::infinity(); }

  static void check_logit(T s, const char* where) {
    check(!(std::isnan(s) || s == std::numeric_limits<T>::infinity()), "mla::ref::softmax_state::", where,
          ": logit must be finite or -inf (masked), found ", s);
  }

  // Moves the running max up to `s` and rescales d and o by exp(m_old - s). From the empty state
  // exp(-inf) = 0 and d = o = 0, so nothing needs special-casing.
  void raise_max(T s) {
    if (s <= m_) return;
    const T r = std::exp(m_ - s);
    d_ *= r;
    o_ *= r;
    m_ = s;
  }

  T m_ = neg_inf();
  T d_ = T(0);
  row_vector<T> o_;
};

}  // namespace mla::ref
