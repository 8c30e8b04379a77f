// mla::ref::moe_block: the gpt-oss mixture-of-experts feed-forward (formats.md §1.6).
//
//   router logits r = x w_router^T + b_router                 [tokens, n_experts]
//   per token: the k experts with the largest RAW logits (ties: lower index first), then
//              weights = softmax over those k logits only (no renormalisation, no shared expert)
//   expert e:  u = x w_gate_up_e^T + b_gate_up_e              [tokens, 2 * intermediate]
//              columns interleaved: u[:, 2i] is the gate ("glu"), u[:, 2i + 1] the linear ("up") part
//              g = min(gate, limit), l = clamp(up, -limit, limit)
//              a = g * sigmoid(alpha * g) * (l + 1)          [tokens, intermediate]
//              y_e = a w_down_e^T + b_down_e                  [tokens, hidden]
//   out = sum over the token's k experts of weight_e * y_e
//
// Expert weights come from an expert_source, one expert at a time: a checkpoint can keep its experts
// quantised (MXFP4, memory-mapped) and expand only the expert being applied. forward() loads each
// expert at most once per call, for all the tokens routed to it.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"

namespace mla::ref {

// One expert in float form. PyTorch [out, in] layout.
template <class T>
struct moe_expert {
  matrix<T> w_gate_up;  // [2 * intermediate, hidden]; even rows gate, odd rows up
  vector<T> b_gate_up;  // [2 * intermediate]
  matrix<T> w_down;     // [hidden, intermediate]
  vector<T> b_down;     // [hidden]
};

// Supplies expert e on demand. `load` may reuse `out`'s storage; it must be safe to call concurrently
// (the forward is const and may run on several sequences at once).
template <class T>
struct expert_source {
  virtual ~expert_source() = default;
  virtual int count() const = 0;
  virtual void load(int e, moe_expert<T>& out) const = 0;
};

// Experts held in memory as floats (tests, small models, converted checkpoints).
template <class T>
struct dense_experts final : expert_source<T> {
  std::vector<moe_expert<T>> experts;

  explicit dense_experts(std::vector<moe_expert<T>> e = {}) : experts(std::move(e)) {}
  int count() const override { return static_cast<int>(experts.size()); }
  void load(int e, moe_expert<T>& out) const override { out = experts.at(static_cast<std::size_t>(e)); }
};

// Top-k routing of one token: expert ids (by descending raw logit, ties to the lower id) and their
// softmax weights over the k selected logits (computed in double).
struct moe_route {
  std::vector<int> experts;
  std::vector<double> weights;
};

template <class Row>
moe_route route_top_k(const Row& logits, int k) {
  const int n = static_cast<int>(logits.size());
  check(k > 0 && k <= n, "mla::ref::route_top_k: k = ", k, " must be in [1, ", n, "]");
  std::vector<int> ids(static_cast<std::size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                    [&](int a, int b) { return logits(a) != logits(b) ? logits(a) > logits(b) : a < b; });
  moe_route r;
  r.experts.assign(ids.begin(), ids.begin() + k);
  const double m = static_cast<double>(logits(r.experts[0]));  // the largest: exp never overflows
  double sum = 0;
  for (const int e : r.experts) {
    r.weights.push_back(std::exp(static_cast<double>(logits(e)) - m));
    sum += r.weights.back();
  }
  for (double& w : r.weights) w /= sum;
  return r;
}

template <class T>
struct moe_block {
  int hidden = 0;
  int intermediate = 0;  // per expert
  int n_experts = 0;
  int experts_per_token = 0;
  double swiglu_alpha = 1.702;
  double swiglu_limit = 7.0;  // 0: no clamping
  matrix<T> w_router;         // [n_experts, hidden]
  vector<T> b_router;         // [n_experts] or empty
  std::shared_ptr<const expert_source<T>> experts;

  bool empty() const { return n_experts == 0 && !experts; }

  void validate(const char* owner = "mla::ref::moe_block") const {
    check(hidden > 0 && intermediate > 0, owner, ": hidden (", hidden, ") and intermediate (", intermediate,
          ") must be > 0");
    check(n_experts > 0 && experts_per_token > 0 && experts_per_token <= n_experts, owner,
          ": experts_per_token = ", experts_per_token, " must be in [1, n_experts = ", n_experts, "]");
    check(swiglu_limit >= 0 && swiglu_alpha > 0, owner, ": swiglu_limit must be >= 0 and swiglu_alpha > 0, found ",
          swiglu_limit, " and ", swiglu_alpha);
    check(w_router.rows() == n_experts && w_router.cols() == hidden, owner, ": w_router has shape [", w_router.rows(),
          ", ", w_router.cols(), "], expected [n_experts = ", n_experts, ", hidden = ", hidden, "]");
    check(b_router.size() == 0 || b_router.size() == n_experts, owner, ": b_router has ", b_router.size(),
          " entries, expected 0 or n_experts = ", n_experts);
    check(experts != nullptr, owner, ": no expert source");
    check(experts->count() == n_experts, owner, ": expert source holds ", experts->count(),
          " experts, expected n_experts = ", n_experts);
  }

  // Checks one loaded expert's shapes (sources are external, so every load is checked).
  void validate_expert(int e, const moe_expert<T>& x) const {
    const char* o = "mla::ref::moe_block";
    check(x.w_gate_up.rows() == 2 * intermediate && x.w_gate_up.cols() == hidden, o, ": expert ", e, " w_gate_up is [",
          x.w_gate_up.rows(), ", ", x.w_gate_up.cols(), "], expected [2 * intermediate = ", 2 * intermediate,
          ", hidden = ", hidden, "]");
    check(x.w_down.rows() == hidden && x.w_down.cols() == intermediate, o, ": expert ", e, " w_down is [",
          x.w_down.rows(), ", ", x.w_down.cols(), "], expected [hidden = ", hidden, ", intermediate = ", intermediate,
          "]");
    check(x.b_gate_up.size() == 0 || x.b_gate_up.size() == 2 * intermediate, o, ": expert ", e, " b_gate_up has ",
          x.b_gate_up.size(), " entries, expected 0 or ", 2 * intermediate);
    check(x.b_down.size() == 0 || x.b_down.size() == hidden, o, ": expert ", e, " b_down has ", x.b_down.size(),
          " entries, expected 0 or ", hidden);
  }

  // Routing of every token of x [tokens, hidden].
  std::vector<moe_route> route(const matrix<T>& x) const {
    matrix<T> r;
    r.noalias() = x * w_router.transpose();
    if (b_router.size()) r.rowwise() += b_router.transpose();
    std::vector<moe_route> out;
    out.reserve(static_cast<std::size_t>(x.rows()));
    for (Eigen::Index t = 0; t < x.rows(); ++t) out.push_back(route_top_k(r.row(t), experts_per_token));
    return out;
  }

  // The clamped SwiGLU of one expert on rows xs [n, hidden] -> [n, hidden] (bias included, unweighted).
  matrix<T> apply_expert(const moe_expert<T>& ex, const matrix<T>& xs) const {
    matrix<T> u;
    u.noalias() = xs * ex.w_gate_up.transpose();
    if (ex.b_gate_up.size()) u.rowwise() += ex.b_gate_up.transpose();
    const double lim = swiglu_limit > 0 ? swiglu_limit : INFINITY;
    matrix<T> a(xs.rows(), intermediate);
    for (Eigen::Index t = 0; t < xs.rows(); ++t)
      for (int i = 0; i < intermediate; ++i) {
        const T g = std::min(u(t, 2 * i), T(lim));
        const T l = std::clamp(u(t, 2 * i + 1), T(-lim), T(lim));
        a(t, i) = g / (T(1) + std::exp(-T(swiglu_alpha) * g)) * (l + T(1));
      }
    matrix<T> y;
    y.noalias() = a * ex.w_down.transpose();
    if (ex.b_down.size()) y.rowwise() += ex.b_down.transpose();
    return y;
  }

  // x [tokens, hidden] -> [tokens, hidden].
  matrix<T> forward(const matrix<T>& x) const {
    check(x.cols() == hidden, "mla::ref::moe_block: input has ", x.cols(), " columns, expected hidden = ", hidden);
    const std::vector<moe_route> routes = route(x);
    // Tokens (and their weights) per expert, so that each expert is loaded once.
    std::vector<std::vector<std::pair<Eigen::Index, double>>> by_expert(static_cast<std::size_t>(n_experts));
    for (Eigen::Index t = 0; t < x.rows(); ++t) {
      const moe_route& r = routes[static_cast<std::size_t>(t)];
      for (std::size_t j = 0; j < r.experts.size(); ++j)
        by_expert[static_cast<std::size_t>(r.experts[j])].emplace_back(t, r.weights[j]);
    }
    matrix<T> out = matrix<T>::Zero(x.rows(), hidden);
    moe_expert<T> ex;
    for (int e = 0; e < n_experts; ++e) {
      const auto& rows = by_expert[static_cast<std::size_t>(e)];
      if (rows.empty()) continue;
      experts->load(e, ex);
      validate_expert(e, ex);
      matrix<T> xs(static_cast<Eigen::Index>(rows.size()), hidden);
      for (std::size_t i = 0; i < rows.size(); ++i) xs.row(static_cast<Eigen::Index>(i)) = x.row(rows[i].first);
      const matrix<T> y = apply_expert(ex, xs);
      for (std::size_t i = 0; i < rows.size(); ++i)
        out.row(rows[i].first) += T(rows[i].second) * y.row(static_cast<Eigen::Index>(i));
    }
    return out;
  }
};

}  // namespace mla::ref
