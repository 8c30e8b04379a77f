// mla::convert factorisations: the joint low-rank latent of the NoPE keys and the values.
//
// After the RoPE split (rope_strategy.hpp) the per-token quantities the latent must carry are
//   y = [B_N^T k; v] = A x_a   [n = (g*d - d_R) + g*d],   A = [B_N^T [W_k, b_k]; [W_v, b_v]]  [n, hidden+1]
// with the augmented input x_a = [x; 1] (biases are one more input column, so they fold exactly). A rank-r
// latent is c = D x_a (D = [w_dkv, b_dkv] [r, hidden+1]) and y is rebuilt as P c (P [n, r]; per head the rows
// of P become w_uk / w_uv).
//
// Every method here is one weighted low-rank problem
//   minimise  E_x || L (A x_a - P D x_a) ||^2   over P [n, r], D [r, hidden+1],
// with an output weight L [n, n] (invertible) and an input second moment M = E[x_a x_a^T]. With
// G = L A M A^T L^T [n, n] and U_r its top-r eigenvectors, the minimiser is
//   D = U_r^T L A,   P = L^{-1} U_r,
// (the optimal rank-r approximation of L A M^{1/2} is U_r U_r^T L A M^{1/2}) and the minimum is the sum of
// the discarded eigenvalues of G. At full rank r = n, U is square orthogonal and P D = L^{-1} U U^T L A = A:
// the reconstruction is exact for every method. M never needs to be inverted or square-rooted.
//
// The methods differ only in L and M:
//   weight_svd      (MHA2MLA SVD_joint):  L = I, M = I. SVD of the joint weights [W_k,nope; W_v | b].
//   activation_pca  (TransMLA, BKV):      L = diag(1/alpha on key rows, 1 on value rows), M = calibration
//                   moment: PCA of the activations [K_nope/alpha; V]; alpha = mean_ch rms(K_nope ch) /
//                   mean_ch rms(V ch) (TransMLA's balance, RMS from the moments).
//   care            (CARE, sqrt(C)-whitened SVD): L = I, M = shrunk calibration moment M + lambda*mean(diag)*I
//                   (x block). SVD of A M^{1/2}, i.e. the error of the per-head keys/values over the
//                   calibration distribution. With equal GQA groups, CARE's kv_b weighting is a constant
//                   multiple of I, so without shrinkage this coincides with unbalanced activation PCA.
//   attention_aware (this project): the error of what attention uses,
//        J = sum_h s^2 beta_h E[(q_h . (k_j - k^_j))^2]  +  E || W_o,h (v_j - v^_j) ||^2 summed over heads
//     The key term is the score error (s = softmax scale times the RoPE attention factor^2) weighted by the
//     query second moment Sigma_q,h = E[q_h q_h^T] (pre-RoPE; the NoPE part is not rotated), turned into
//     output units by the first-order softmax sensitivity d o_h = s sum_t p_t (v_t - o_h) d s_t, whose size
//     is beta_h = tr(W_o,h Cov(v_j) W_o,h^T) (both terms then carry the same sum_t p_t^2 factor when
//     per-token errors are uncorrelated). The value term is the value error seen through o_proj, errors of
//     different heads treated as uncorrelated. So L = Omega^{1/2} with
//        Omega_K = key_weight * s^2 * sum_h beta_h N_j^T Sigma_q,h N_j   [g*d - d_R]^2  (N_j = rows of B_N of head j)
//        Omega_V = blockdiag_j( sum_{h in j} W_o,h^T W_o,h )            [g*d]^2
//     plus a small ridge per block (omega_ridge * mean diagonal) so that L is invertible, and M = calibration
//     moment. It reduces to exact reconstruction at full rank like every method above.
//
// Centring (factor_options::centre, any method; layers without sinks): the mean of y needs no latent capacity.
// A constant added to every NoPE key shifts all of a query's scores equally, which softmax ignores; a constant
// added to every value comes out of the attention average unchanged (the weights sum to 1) and folds exactly
// into o_proj's bias. So the problem uses the centred moment M - mu mu^T (mu the last column of the problem's
// M: E[x_a] for the token moment, E[xbar_a] for the attention moment, whose value error it is)
// and the value rows' mean error (A - P D) mu becomes factorization::value_offset, which the assembly adds to
// bo through W_o. Sinks take part of the softmax mass (the weights no longer sum to 1 and the scores are
// compared with a fixed sink logit), so there neither identity holds and centring is refused.
#pragma once

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <string>

#include "mla/convert/calibration.hpp"
#include "mla/convert/rope_strategy.hpp"
#include "mla/core/error.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/rope.hpp"

namespace mla::convert {

enum class factor_method { weight_svd, activation_pca, care, attention_aware };

inline const char* to_string(factor_method m) {
  switch (m) {
    case factor_method::weight_svd:
      return "weight_svd";
    case factor_method::activation_pca:
      return "activation_pca";
    case factor_method::care:
      return "care";
    case factor_method::attention_aware:
      return "attention_aware";
  }
  return "?";
}

struct factor_options {
  factor_method method = factor_method::attention_aware;
  bool balance_kv = true;        // activation_pca: TransMLA's BKV scaling
  double care_shrinkage = 0.01;  // care: lambda in M + lambda*mean(diag M)*I
  double key_weight = 1.0;       // attention_aware: multiplier of the key (score) term
  double omega_ridge = 1e-3;     // attention_aware: ridge on Omega's blocks, relative to their mean diagonal
  bool centre = false;           // factor the centred moment; the value mean folds into bo (header comment)
  // The input moment M of the low-rank problem: that of the tokens, or that of the source attention's averages
  // of them (attention_moment.hpp), which the pipeline computes from calibration windows.
  enum class moment_kind { tokens, attention } moment = moment_kind::tokens;
};

// One layer's weighted low-rank problem, decomposed once and solvable at any rank.
struct factor_problem {
  int key_rows = 0;      // n_K = g*d - d_R rows of A are NoPE key coordinates, the rest values
  dmatrix a;             // [n, hidden+1] joint target weights (bias in the last column)
  dmatrix l, l_inv;      // [n, n] output weight and its inverse
  dvector spectrum;      // [n] eigenvalues of G, descending (>= 0): the objective each latent direction removes
  dmatrix eigenvectors;  // [n, n] matching eigenvectors of G
  dvector input_mean;    // [hidden+1] mu = E[x_a] when centred (factor_options::centre), else empty

  int rows() const { return static_cast<int>(a.rows()); }
  // The objective left at rank r (sum of the discarded eigenvalues).
  double residual(int rank) const {
    double s = 0;
    for (Eigen::Index i = std::min<Eigen::Index>(rank, spectrum.size()); i < spectrum.size(); ++i)
      s += std::max(0.0, spectrum[i]);
    return s;
  }
  double total() const { return residual(0); }
};

// The rank-r factors: c = down x_a, y^ = up c.
struct factorization {
  dmatrix down;          // [r, hidden+1]: w_dkv = leftCols(hidden), b_dkv = last column
  dmatrix up;            // [n, r]
  dvector value_offset;  // [g*d] centred problems: the value mean the latent leaves out (folded into bo)
};

namespace detail {

// Symmetric square root and inverse square root of a positive definite matrix.
inline void sym_sqrt(const dmatrix& s, dmatrix& root, dmatrix& inv_root) {
  const Eigen::MatrixXd s_copy = s;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(s_copy);
  check(es.info() == Eigen::Success, "mla::convert: eigen-decomposition of the output weight failed");
  const Eigen::VectorXd w = es.eigenvalues().cwiseMax(0.0);
  check(w.minCoeff() > 0.0, "mla::convert: output weight is singular (smallest eigenvalue ", w.minCoeff(), ")");
  root = es.eigenvectors() * w.cwiseSqrt().asDiagonal() * es.eigenvectors().transpose();
  inv_root = es.eigenvectors() * w.cwiseSqrt().cwiseInverse().asDiagonal() * es.eigenvectors().transpose();
}

inline void add_relative_ridge(Eigen::Block<dmatrix> block, double ridge) {
  const double mean_diag = block.diagonal().mean();
  block.diagonal().array() += ridge * (mean_diag > 0 ? mean_diag : 1.0);
}

}  // namespace detail

// Joint target A [n, hidden+1] = [B_N^T [W_k, b_k]; [W_v, b_v]] for a layer and its rope plan.
template <class T>
dmatrix joint_target(const ref::gqa_layer<T>& src, const rope_plan& plan) {
  const dmatrix k_aug = augmented_weight(src.wk, src.bk);  // [g*d, hidden+1]
  const dmatrix v_aug = augmented_weight(src.wv, src.bv);
  dmatrix a(plan.nope_count() + v_aug.rows(), k_aug.cols());
  a.topRows(plan.nope_count()) = plan.nope_basis().transpose() * k_aug;
  a.bottomRows(v_aug.rows()) = v_aug;
  return a;
}

// Builds and decomposes the problem of `opt.method` for one layer.
template <class T>
factor_problem make_factor_problem(const ref::gqa_layer<T>& src, const rope_plan& plan, const layer_moments& stats,
                                   const factor_options& opt, const dmatrix* attention_moment_in = nullptr) {
  const char* who = "mla::convert::make_factor_problem";
  check(plan.n_kv_heads == src.n_kv_heads && plan.head_dim == src.head_dim, who, ": rope plan is for ", plan.n_kv_heads,
        "x", plan.head_dim, " keys, layer has ", src.n_kv_heads, "x", src.head_dim);
  const int g = src.n_kv_heads, d = src.head_dim, gd = g * d;
  factor_problem p;
  p.key_rows = plan.nope_count();
  p.a = joint_target(src, plan);
  const Eigen::Index n = p.a.rows(), in = p.a.cols();

  const bool attention_moment = opt.moment == factor_options::moment_kind::attention;
  check(!attention_moment || opt.method != factor_method::weight_svd, who,
        ": the attention moment does not apply to weight_svd, which factors the weights alone (M = I); use the ",
        "token moment, or an activation method");
  dmatrix m_tok;  // [hidden+1, hidden+1] the tokens' moment E[x_a x_a^T]: per-token quantities (queries, BKV)
  dmatrix m;      // [hidden+1, hidden+1] the problem's moment: the tokens', or the attention averages'
  if (opt.method == factor_method::weight_svd) {
    m = dmatrix::Identity(in, in);
  } else {
    stats.require(who);
    check(stats.hidden() == src.hidden, who, ": moments are for hidden = ", stats.hidden(), ", layer has ", src.hidden);
    m_tok = stats.augmented_second_moment();
    if (attention_moment) {
      check(attention_moment_in != nullptr && attention_moment_in->rows() == in && attention_moment_in->cols() == in,
            who, ": the attention moment is missing or not [hidden+1]^2 = ", in, "^2");
      m = *attention_moment_in;
    } else {
      m = m_tok;
    }
  }

  p.l = dmatrix::Identity(n, n);
  p.l_inv = dmatrix::Identity(n, n);
  if (opt.method == factor_method::activation_pca && opt.balance_kv && p.key_rows > 0) {
    // TransMLA's alpha matches the per-token rms of keys and values, so it reads the tokens' moment whatever the
    // problem's; with centring it is that of the fluctuations, like the problem.
    dmatrix mb = m_tok;
    if (opt.centre) mb.noalias() -= m_tok.col(in - 1) * m_tok.col(in - 1).transpose();
    const dvector y2 = affine_second_moment_diag(p.a, mb);  // E[y_i^2]
    const double k_rms = y2.head(p.key_rows).cwiseMax(0.0).cwiseSqrt().mean();
    const double v_rms = y2.tail(n - p.key_rows).cwiseMax(0.0).cwiseSqrt().mean();
    check(k_rms > 0 && v_rms > 0, who, ": BKV needs non-zero key and value activations (rms ", k_rms, ", ", v_rms, ")");
    const double alpha = k_rms / v_rms;
    p.l.diagonal().head(p.key_rows).setConstant(1.0 / alpha);
    p.l_inv.diagonal().head(p.key_rows).setConstant(alpha);
  } else if (opt.method == factor_method::care) {
    // CARE's shrinkage regularises the whitening of whichever moment the problem uses.
    const Eigen::Index h = in - 1;
    const double mean_diag = m.topLeftCorner(h, h).diagonal().mean();
    m.topLeftCorner(h, h).diagonal().array() += opt.care_shrinkage * mean_diag;
  } else if (opt.method == factor_method::attention_aware) {
    const ref::rope<double> rot(src.rope);
    const double af = rot.attention_factor();
    const double s = src.attention.softmax_scale * af * af;  // logit per unit q.k on the NoPE part
    const dmatrix q_aug = augmented_weight(src.wq, src.bq);  // [n_h*d, hidden+1]
    const dmatrix v_cov = affine_covariance(src.wv, stats);  // [g*d, g*d] centred
    const dmatrix wo = src.wo.template cast<double>();       // [hidden, n_h*d]
    dmatrix omega = dmatrix::Zero(n, n);
    for (int h = 0; h < src.n_heads; ++h) {
      const int j = src.kv_head_of(h);
      const auto wo_h = wo.middleCols(Eigen::Index(h) * d, d);  // [hidden, d]
      // Value term: E||W_o,h e_v||^2 = e_v^T (W_o,h^T W_o,h) e_v on group j's value block.
      omega.block(p.key_rows + Eigen::Index(j) * d, p.key_rows + Eigen::Index(j) * d, d, d).noalias() +=
          wo_h.transpose() * wo_h;
      if (p.key_rows == 0) continue;
      // Key term: s^2 beta_h (N_j^T Sigma_q,h N_j); queries are per token, so Sigma_q reads the tokens' moment.
      const dmatrix sigma_q = affine_second_moment(q_aug.middleRows(Eigen::Index(h) * d, d), m_tok);  // [d, d]
      const double beta =
          (wo_h * v_cov.block(Eigen::Index(j) * d, Eigen::Index(j) * d, d, d) * wo_h.transpose()).trace();
      const dmatrix n_j = plan.nope_basis().middleRows(Eigen::Index(j) * d, d);  // [d, n_K]
      omega.topLeftCorner(p.key_rows, p.key_rows).noalias() +=
          (opt.key_weight * s * s * std::max(beta, 0.0)) * (n_j.transpose() * sigma_q * n_j);
    }
    if (p.key_rows > 0) detail::add_relative_ridge(omega.block(0, 0, p.key_rows, p.key_rows), opt.omega_ridge);
    detail::add_relative_ridge(omega.block(p.key_rows, p.key_rows, gd, gd), opt.omega_ridge);
    omega = 0.5 * (omega + omega.transpose());
    detail::sym_sqrt(omega, p.l, p.l_inv);
  }

  if (opt.centre) {
    check(src.sinks.size() == 0, who, ": centring needs a layer without attention sinks (with sinks the value ",
          "mean does not fold into o_proj's bias and the key mean shifts scores against the sink logit)");
    // The mean of the problem's own moment: with the attention moment that is E[xbar_a], the value error's
    // mean as attention delivers it (its last entry is 1, the weights summing to 1 without sinks).
    p.input_mean = m.col(in - 1);
    m.noalias() -= p.input_mean * p.input_mean.transpose();
  }
  const dmatrix la = p.l * p.a;  // [n, hidden+1]
  dmatrix gram = la * m * la.transpose();
  gram = 0.5 * (gram + gram.transpose());
  detail::sorted_eigen(gram, p.spectrum, p.eigenvectors);
  p.spectrum = p.spectrum.cwiseMax(0.0);
  return p;
}

// The rank-r solution D = U_r^T L A, P = L^{-1} U_r. Ranks above n are padded with zero latent channels.
inline factorization solve_factor_problem(const factor_problem& p, int rank) {
  check(rank > 0, "mla::convert::solve_factor_problem: rank must be > 0, found ", rank);
  const Eigen::Index n = p.a.rows(), used = std::min<Eigen::Index>(rank, n);
  factorization f;
  f.down = dmatrix::Zero(rank, p.a.cols());
  f.up = dmatrix::Zero(n, rank);
  const auto u = p.eigenvectors.leftCols(used);  // [n, used]
  f.down.topRows(used).noalias() = u.transpose() * p.l * p.a;
  f.up.leftCols(used).noalias() = p.l_inv * u;
  if (p.input_mean.size() != 0) {  // the values' mean error, (A - P D) mu on the value rows
    const dvector mean_err = p.a * p.input_mean - f.up * (f.down * p.input_mean);
    f.value_offset = mean_err.tail(n - p.key_rows);
  }
  return f;
}

}  // namespace mla::convert
