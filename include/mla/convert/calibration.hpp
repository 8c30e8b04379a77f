// mla::convert calibration: the only statistic the converters need is, per layer, the float64 second moment
// of the normalised attention input x [hidden],
//   S = sum_t x_t x_t^T  [hidden, hidden],   s = sum_t x_t  [hidden],   n = tokens,
// collected by an observer while a decoder runs over calibration windows. Memory does not depend on the
// number of tokens. Everything the methods use follows from it because q, k and v are affine in x: for
// y = W x + b the uncentred second moment is E[y y^T] = W_a E[x_a x_a^T] W_a^T with the augmented
// x_a = [x; 1] and W_a = [W, b] (biases enter through the mean). Uncentred moments are what scores and
// PCA see (TransMLA's Z^T Z is uncentred too); the centred covariance is available where a spread is wanted.
//
// The observer also sums ||h||^2 of the residual stream after each layer, so that an attention-output error
// can be put relative to the stream it is added to (rank allocation).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/model/decoder.hpp"
#include "mla/reference/eigen_types.hpp"

namespace mla::convert {

using dmatrix = ref::matrix<double>;  // row-major, like the weights
using dvector = ref::vector<double>;

// Per-layer moments of the attention input, accumulated in double.
struct layer_moments {
  long count = 0;              // tokens seen
  dmatrix xx;                  // [hidden, hidden] sum_t x_t x_t^T
  dvector x_sum;               // [hidden] sum_t x_t
  double residual_sq_sum = 0;  // sum_t ||h_t||^2 of the residual stream after the layer
  long residual_count = 0;

  int hidden() const { return static_cast<int>(x_sum.size()); }

  // Adds the rows of x [tokens, hidden].
  template <class T>
  void add(const ref::matrix<T>& x) {
    if (x.rows() == 0) return;
    if (xx.size() == 0) {
      xx = dmatrix::Zero(x.cols(), x.cols());
      x_sum = dvector::Zero(x.cols());
    }
    check(x.cols() == xx.cols(), "mla::convert::layer_moments::add: x has ", x.cols(),
          " columns, expected hidden = ", xx.cols());
    const dmatrix xd = x.template cast<double>();
    xx.noalias() += xd.transpose() * xd;
    x_sum += xd.colwise().sum().transpose();
    count += static_cast<long>(x.rows());
  }

  void merge(const layer_moments& o) {
    if (o.count == 0) return;
    if (count == 0 && xx.size() == 0) {
      *this = o;
      return;
    }
    check(o.xx.cols() == xx.cols(), "mla::convert::layer_moments::merge: hidden ", o.xx.cols(), " vs ", xx.cols());
    xx += o.xx;
    x_sum += o.x_sum;
    count += o.count;
    residual_sq_sum += o.residual_sq_sum;
    residual_count += o.residual_count;
  }

  void require(const char* who) const {
    check(count > 0 && xx.size() != 0, who, ": calibration moments are empty (no tokens were observed)");
  }

  dvector mean() const { return x_sum / static_cast<double>(count); }  // [hidden] E[x]
  // [hidden, hidden] E[x x^T] (uncentred).
  dmatrix second_moment() const { return xx / static_cast<double>(count); }
  // [hidden, hidden] E[(x - mu)(x - mu)^T].
  dmatrix covariance() const {
    const dvector mu = mean();
    return second_moment() - mu * mu.transpose();
  }
  // [hidden+1, hidden+1] E[x_a x_a^T] with x_a = [x; 1]: [[E xx^T, E x], [E x^T, 1]].
  dmatrix augmented_second_moment() const {
    const Eigen::Index d = xx.cols();
    dmatrix m(d + 1, d + 1);
    m.topLeftCorner(d, d) = second_moment();
    const dvector mu = mean();
    m.topRightCorner(d, 1) = mu;
    m.bottomLeftCorner(1, d) = mu.transpose();
    m(d, d) = 1.0;
    return m;
  }
  // E||h||^2 per token of the residual stream after the layer (0 when not observed).
  double residual_mean_square() const {
    return residual_count > 0 ? residual_sq_sum / static_cast<double>(residual_count) : 0.0;
  }
};

// Per-layer calibration statistics of one model.
struct calibration_stats {
  std::vector<layer_moments> layers;  // [n_layers]
  long tokens() const { return layers.empty() ? 0 : layers.front().count; }
};

// The augmented weight W_a = [W, b] [out, in+1] of an affine map y = W x + b (b may be empty: zero).
template <class T>
dmatrix augmented_weight(const ref::matrix<T>& w, const ref::vector<T>& b) {
  dmatrix a(w.rows(), w.cols() + 1);
  a.leftCols(w.cols()) = w.template cast<double>();
  if (b.size() != 0) {
    check(b.size() == w.rows(), "mla::convert::augmented_weight: bias has ", b.size(), " entries, expected ", w.rows());
    a.col(w.cols()) = b.template cast<double>();
  } else {
    a.col(w.cols()).setZero();
  }
  return a;
}

// E[y y^T] [out, out] of y = W_a x_a from the augmented weight [out, hidden+1] and E[x_a x_a^T].
inline dmatrix affine_second_moment(const dmatrix& w_aug, const dmatrix& m_aug) {
  check(w_aug.cols() == m_aug.rows(), "mla::convert::affine_second_moment: weight has ", w_aug.cols(),
        " columns, moment is [", m_aug.rows(), ", ", m_aug.cols(), "]");
  dmatrix r = w_aug * m_aug * w_aug.transpose();
  return 0.5 * (r + r.transpose());  // symmetrise away rounding
}

// Diagonal of E[y y^T] [out] without forming the full matrix.
inline dvector affine_second_moment_diag(const dmatrix& w_aug, const dmatrix& m_aug) {
  const dmatrix wm = w_aug * m_aug;
  return wm.cwiseProduct(w_aug).rowwise().sum();
}

// Centred covariance [out, out] of y = W x + b (the bias cancels).
template <class T>
dmatrix affine_covariance(const ref::matrix<T>& w, const layer_moments& m) {
  const dmatrix wd = w.template cast<double>();
  dmatrix r = wd * m.covariance() * wd.transpose();
  return 0.5 * (r + r.transpose());
}

// Observer that accumulates layer_moments for every layer of a decoder forward.
template <class T>
class calibration_observer : public model::observer<T> {
 public:
  explicit calibration_observer(int n_layers) { stats_.layers.resize(static_cast<std::size_t>(n_layers)); }

  void attention_input(int layer, const ref::matrix<T>& x, long /*first_pos*/) override { at(layer).add(x); }
  void layer_output(int layer, const ref::matrix<T>& h) override {
    layer_moments& m = at(layer);
    m.residual_sq_sum += h.template cast<double>().squaredNorm();
    m.residual_count += static_cast<long>(h.rows());
  }

  const calibration_stats& stats() const { return stats_; }
  calibration_stats take() { return std::move(stats_); }

 private:
  layer_moments& at(int layer) {
    check(layer >= 0 && layer < static_cast<int>(stats_.layers.size()), "mla::convert::calibration_observer: layer ",
          layer, " outside [0, ", stats_.layers.size(), ")");
    return stats_.layers[static_cast<std::size_t>(layer)];
  }
  calibration_stats stats_;
};

// Records the attention inputs x [tokens, hidden] of every layer, one matrix per window, for held-out
// evaluation of converted layers against the originals (teacher-forced: each layer sees the source model's
// input).
template <class T>
class input_recorder : public model::observer<T> {
 public:
  explicit input_recorder(int n_layers) : inputs_(static_cast<std::size_t>(n_layers)) {}
  void attention_input(int layer, const ref::matrix<T>& x, long first_pos) override {
    check(first_pos == 0, "mla::convert::input_recorder: windows must start at position 0, found ", first_pos);
    inputs_.at(static_cast<std::size_t>(layer)).push_back(x);
  }
  // [n_layers][windows] of [tokens, hidden].
  const std::vector<std::vector<ref::matrix<T>>>& inputs() const { return inputs_; }
  std::vector<std::vector<ref::matrix<T>>> take() { return std::move(inputs_); }

 private:
  std::vector<std::vector<ref::matrix<T>>> inputs_;
};

// Token windows [first_window, first_window + n_windows) of `window` consecutive tokens each, cut from a token
// stream (the last partial window is dropped).
inline std::vector<std::vector<int>> token_windows(const std::vector<int>& tokens, int window, int first_window,
                                                   int n_windows) {
  check(window > 0, "mla::convert::token_windows: window must be > 0, found ", window);
  const long available = static_cast<long>(tokens.size()) / window;
  check(first_window >= 0 && n_windows > 0 && first_window + n_windows <= available,
        "mla::convert::token_windows: windows [", first_window, ", ", first_window + n_windows,
        ") requested, but the stream of ", tokens.size(), " tokens holds ", available, " windows of ", window);
  std::vector<std::vector<int>> out;
  for (int w = first_window; w < first_window + n_windows; ++w) {
    const auto begin = tokens.begin() + static_cast<std::ptrdiff_t>(w) * window;
    out.emplace_back(begin, begin + window);
  }
  return out;
}

// Runs the decoder over each window (a fresh session per window, positions from 0) with the observer.
template <class T>
void run_windows(const model::decoder<T>& dec, const std::vector<std::vector<int>>& windows, model::observer<T>& obs) {
  for (const std::vector<int>& w : windows) {
    model::session<T> s = dec.new_session();
    dec.hidden_states(s, w, &obs);
  }
}

// Calibration statistics of every layer over the windows (e.g. 16-64 windows of 256 tokens).
template <class T>
calibration_stats calibrate(const model::decoder<T>& dec, const std::vector<std::vector<int>>& windows) {
  calibration_observer<T> obs(dec.config().n_layers);
  run_windows(dec, windows, obs);
  return obs.take();
}

}  // namespace mla::convert
