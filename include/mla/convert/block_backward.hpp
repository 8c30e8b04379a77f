// mla::convert block backward passes: d(loss)/d(input) through the frozen blocks of a decoder, for the
// end-to-end distillation (distill_model.hpp), which trains only the converted attention layers but must carry
// the gradient through everything after them. No parameter gradient is formed here.
//
//   rms_norm_backward   y = x / rms(x) o w:  dx = (g - xhat (g . xhat) / d) / rms(x),  g = dy o w, xhat = x / rms(x)
//   swiglu_backward     a = silu(g) o u, out = a W_down^T:
//                         du = da o silu(g),  dg = da o u o s (1 + g (1 - s)),  s = sigmoid(g),  da = dout W_down
//   moe_backward        gpt-oss MoE (reference/moe.hpp), recomputed from its input (experts loaded one at a time,
//                       as the forward loads them, so MXFP4 experts are expanded on demand and never all at once):
//                         out_t = sum_j w_tj y_e(j)(x_t),  w_t = softmax over the token's top-k router logits
//                         dw_tj = dout_t . y_e(j)(x_t);  dr_tj = w_tj (dw_tj - sum_k w_tk dw_tk);
//                         dx_t += dr_tj W_r[e(j)]
//                         expert: u = x W_gu^T + b, gc = min(u_gate, L), lc = clamp(u_up, -L, L),
//                         a = gc sigmoid(alpha gc) (lc + 1):
//                           d u_gate = da (lc + 1) s (1 + alpha gc (1 - s)) [u_gate < L],  s = sigmoid(alpha gc)
//                           d u_up   = da gc s [-L < u_up < L],   dx += du W_gu,   da = w_tj dout_t W_down
//                       The top-k choice is piecewise constant in x: its derivative is zero almost everywhere.
//   gqa_backward        a frozen GQA layer (reference/gqa_attention.hpp) with biases, sinks and the causal or
//                       sliding-window mask, recomputed from its input; per query head h reading KV head g:
//                         dV_g += P_h^T dO_h,  dS_h = scale P_h o (dP_h - rowsum(P_h o dP_h)),  dP_h = dO_h V_g^T
//                         dq_h = dS_h K_g,  dK_g += dS_h^T q_h  (the sink has no value: its dP is 0)
//                       then RoPE's transpose (RoPE at -p) on dq and dk, and dx = dq Wq + dk Wk + dv Wv.
// Shapes: one window of n tokens at positions 0..n-1; x, dout, dx are [n, hidden].
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/attention_probabilities.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mlp.hpp"
#include "mla/reference/moe.hpp"
#include "mla/reference/rope.hpp"

namespace mla::convert {

// Backward of ref::rms_norm: x [n, d] the norm's input, dy [n, d] -> dx [n, d].
template <class T>
ref::matrix<T> rms_norm_backward(const ref::matrix<T>& x, const ref::vector<T>& weight, double eps,
                                 const ref::matrix<T>& dy) {
  ref::matrix<T> dx(x.rows(), x.cols());
  const double d = double(x.cols());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const double inv = 1.0 / std::sqrt(x.row(t).template cast<double>().squaredNorm() / d + eps);
    const Eigen::RowVectorXd xhat = x.row(t).template cast<double>() * inv;
    const Eigen::RowVectorXd g =
        dy.row(t).template cast<double>().cwiseProduct(weight.transpose().template cast<double>());
    dx.row(t) = ((g - xhat * (g.dot(xhat) / d)) * inv).template cast<T>();
  }
  return dx;
}

// Backward of ref::swiglu_mlp::forward given its kept pre-activations: d_out [n, hidden] -> d_x [n, hidden].
template <class T>
ref::matrix<T> swiglu_backward(const ref::swiglu_mlp<T>& mlp, const ref::swiglu_intermediates<T>& kept,
                               const ref::matrix<T>& d_out) {
  using mat = ref::matrix<T>;
  const mat& gate = kept.gate;
  const auto s = (T(1) / (T(1) + (-gate.array()).exp())).eval();  // sigmoid(gate)
  mat da;
  da.noalias() = d_out * mlp.w_down;  // [n, intermediate]
  const mat d_up = (da.array() * gate.array() * s).matrix();
  const mat d_gate = (da.array() * kept.up.array() * s * (T(1) + gate.array() * (T(1) - s))).matrix();
  mat d_x;
  d_x.noalias() = d_gate * mlp.w_gate;
  d_x.noalias() += d_up * mlp.w_up;
  return d_x;
}

// Backward of ref::moe_block::forward on x [n, hidden] (router and experts frozen): d_out -> d_x [n, hidden].
template <class T>
ref::matrix<T> moe_backward(const ref::moe_block<T>& moe, const ref::matrix<T>& x, const ref::matrix<T>& d_out) {
  using mat = ref::matrix<T>;
  check(x.cols() == moe.hidden && d_out.rows() == x.rows() && d_out.cols() == moe.hidden,
        "mla::convert::moe_backward: x is [", x.rows(), ", ", x.cols(), "] and d_out [", d_out.rows(), ", ",
        d_out.cols(), "], expected [n, hidden = ", moe.hidden, "] both");
  const std::vector<ref::moe_route> routes = moe.route(x);
  // (token, slot j of its route) per expert, so that each expert is loaded once.
  std::vector<std::vector<std::pair<Eigen::Index, std::size_t>>> by_expert(static_cast<std::size_t>(moe.n_experts));
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    for (std::size_t j = 0; j < routes[static_cast<std::size_t>(t)].experts.size(); ++j)
      by_expert[static_cast<std::size_t>(routes[static_cast<std::size_t>(t)].experts[j])].emplace_back(t, j);
  std::vector<std::vector<double>> d_w(routes.size());  // [n][k] d loss / d (routing weight)
  for (std::size_t t = 0; t < routes.size(); ++t) d_w[t].assign(routes[t].experts.size(), 0.0);
  const double lim = moe.swiglu_limit > 0 ? moe.swiglu_limit : INFINITY, alpha = moe.swiglu_alpha;
  mat d_x = mat::Zero(x.rows(), moe.hidden);
  ref::moe_expert<T> ex;
  mat xs, g_rows, u, a, y, da, du, dxs;
  for (int e = 0; e < moe.n_experts; ++e) {
    const auto& rows = by_expert[static_cast<std::size_t>(e)];
    if (rows.empty()) continue;
    moe.experts->load(e, ex);
    moe.validate_expert(e, ex);
    const auto m = static_cast<Eigen::Index>(rows.size());
    xs.resize(m, moe.hidden);
    g_rows.resize(m, moe.hidden);  // routing weight x d_out of each row
    for (Eigen::Index i = 0; i < m; ++i) {
      const auto [t, j] = rows[static_cast<std::size_t>(i)];
      xs.row(i) = x.row(t);
      g_rows.row(i) = d_out.row(t) * T(routes[static_cast<std::size_t>(t)].weights[j]);
    }
    u.noalias() = xs * ex.w_gate_up.transpose();  // [m, 2 * intermediate], gate/up interleaved
    if (ex.b_gate_up.size()) u.rowwise() += ex.b_gate_up.transpose();
    a.resize(m, moe.intermediate);
    du.resize(m, 2 * moe.intermediate);
    da.noalias() = g_rows * ex.w_down;  // [m, intermediate]
    for (Eigen::Index i = 0; i < m; ++i)
      for (int k = 0; k < moe.intermediate; ++k) {
        const double gate = double(u(i, 2 * k)), up = double(u(i, 2 * k + 1));
        const double gc = std::min(gate, lim), lc = std::clamp(up, -lim, lim);
        const double s = 1.0 / (1.0 + std::exp(-alpha * gc));
        a(i, k) = static_cast<T>(gc * s * (lc + 1));
        const double dak = double(da(i, k));
        du(i, 2 * k) = static_cast<T>(gate < lim ? dak * (lc + 1) * s * (1 + alpha * gc * (1 - s)) : 0.0);
        du(i, 2 * k + 1) = static_cast<T>(up > -lim && up < lim ? dak * gc * s : 0.0);
      }
    y.noalias() = a * ex.w_down.transpose();  // [m, hidden], the expert's output before weighting
    if (ex.b_down.size()) y.rowwise() += ex.b_down.transpose();
    dxs.noalias() = du * ex.w_gate_up;
    for (Eigen::Index i = 0; i < m; ++i) {
      const auto [t, j] = rows[static_cast<std::size_t>(i)];
      d_x.row(t) += dxs.row(i);
      d_w[static_cast<std::size_t>(t)][j] = d_out.row(t).template cast<double>().dot(y.row(i).template cast<double>());
    }
  }
  // Through the router: the weights are a softmax over the selected logits.
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const ref::moe_route& r = routes[static_cast<std::size_t>(t)];
    const std::vector<double>& dw = d_w[static_cast<std::size_t>(t)];
    double mean = 0;
    for (std::size_t j = 0; j < dw.size(); ++j) mean += r.weights[j] * dw[j];
    for (std::size_t j = 0; j < dw.size(); ++j)
      d_x.row(t) += T(r.weights[j] * (dw[j] - mean)) * moe.w_router.row(r.experts[j]);
  }
  return d_x;
}

// Backward of ref::gqa_prefill on a fresh window x [n, hidden] (positions 0..n-1; the layer frozen):
// d_out -> d_x [n, hidden].
template <class T>
ref::matrix<T> gqa_backward(const ref::gqa_layer<T>& layer, const ref::matrix<T>& x, const ref::matrix<T>& d_out) {
  using mat = ref::matrix<T>;
  check(x.cols() == layer.hidden && d_out.rows() == x.rows() && d_out.cols() == layer.hidden,
        "mla::convert::gqa_backward: x is [", x.rows(), ", ", x.cols(), "] and d_out [", d_out.rows(), ", ",
        d_out.cols(), "], expected [n, hidden = ", layer.hidden, "] both");
  const int d = layer.head_dim;
  const ref::rope<T> rot(layer.rope);
  mat q = ref::linear(x, layer.wq, layer.bq);  // [n, n_heads*d]
  mat k = ref::linear(x, layer.wk, layer.bk);  // [n, n_kv*d]
  const mat v = ref::linear(x, layer.wv, layer.bv);
  ref::rope_heads(rot, q, layer.n_heads, d, 0);
  ref::rope_heads(rot, k, layer.n_kv_heads, d, 0);
  const mat d_attn = d_out * layer.wo;  // [n, n_heads*d]
  mat d_q(x.rows(), q.cols()), d_k = mat::Zero(x.rows(), k.cols()), d_v = mat::Zero(x.rows(), v.cols());
  const T scale = static_cast<T>(layer.attention.softmax_scale);
  mat d_p;
  for (int h = 0; h < layer.n_heads; ++h) {
    const Eigen::Index qc = Eigen::Index(h) * d, kc = Eigen::Index(layer.kv_head_of(h)) * d;
    const mat p = ref::attention_probabilities<T>(q.middleCols(qc, d), k.middleCols(kc, d), layer.attention,
                                                  layer.sinks.size() != 0 ? &layer.sinks[h] : nullptr);
    const auto d_o = d_attn.middleCols(qc, d);
    d_v.middleCols(kc, d).noalias() += p.transpose() * d_o;
    d_p.noalias() = d_o * v.middleCols(kc, d).transpose();  // [n, n]
    const ref::vector<T> row_dot = (p.array() * d_p.array()).rowwise().sum();
    d_p = (p.array() * (d_p.array().colwise() - row_dot.array())) * scale;  // now dS
    d_q.middleCols(qc, d).noalias() = d_p * k.middleCols(kc, d);
    d_k.middleCols(kc, d).noalias() += d_p.transpose() * q.middleCols(qc, d);
  }
  // RoPE's transpose is RoPE at -p.
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    for (int h = 0; h < layer.n_heads; ++h) rot.apply(d_q.data() + t * d_q.cols() + Eigen::Index(h) * d, -long(t));
    for (int h = 0; h < layer.n_kv_heads; ++h) rot.apply(d_k.data() + t * d_k.cols() + Eigen::Index(h) * d, -long(t));
  }
  mat d_x;
  d_x.noalias() = d_q * layer.wq;
  d_x.noalias() += d_k * layer.wk;
  d_x.noalias() += d_v * layer.wv;
  return d_x;
}

}  // namespace mla::convert
