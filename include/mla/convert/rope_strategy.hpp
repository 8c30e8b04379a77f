// mla::convert rope strategies: how the single shared RoPE key k_pe [d_R] of the target MLA layer is cut out
// of the g pre-RoPE key heads of a GQA layer (g KV heads of width d, NeoX layout).
//
// Index convention: the stacked pre-RoPE key k = W_k x + b_k has g*d channels; frequency f in [0, d/2) of KV
// head j is the pair (re, im) = (j*d + f, j*d + f + d/2), rotated at position t by the angle t*theta_f.
//
// Every strategy builds an orthonormal basis B = [B_R, B_N] of the key space [g*d, g*d]:
//   B_R [g*d, d_R]: the RoPE key. Pair i (i < d_R/2) is column i (its "re" vector u_i, supported on re
//                   channels) and column i + d_R/2 (the same coefficients on the matching im channels), with
//                   frequency inv_freq[i]. If u_i touches a single source frequency, RoPE commutes with the
//                   projection exactly: at one frequency RoPE applies the same 2x2 rotation to every head, so
//                   (u.RoPE_t(k)_re, u.RoPE_t(k)_im) = RoPE_t(u.k_re, u.k_im).
//   B_N [g*d, g*d - d_R]: the rest, which loses RoPE (NoPE) and joins the latent factorisation (k_nope).
// The score of query head h (KV group j, E_j^T picks head j's d channels from g*d) then splits as
//   q_h . k_j = q_h^T E_j^T (B_R B_R^T + B_N B_N^T) k
//             = (B_R^T E_j q_h) . (B_R^T k)   [rope part: the query's rope rows are (E_j^T B_R)^T W_q,h]
//             + q_h . (E_j^T B_N B_N^T k)     [nope part: the query is unchanged, the key is projected]
// which is exact as long as nothing is cut; the only losses are (1) dropping RoPE on B_N and (2) u_i mixing
// frequencies (FreqFold F > 1).
//
// The covariance used for PCA at one frequency block counts the real and the imaginary parts as separate
// samples, Sigma_a = E[k_re k_re^T] + E[k_im k_im^T] over the block's re / im channels (heads x frequencies).
// At a single frequency, RoPE rotates (k_re, k_im) jointly, so this sum is invariant under RoPE: pre-RoPE
// moments from the calibration statistics suffice (TransMLA collects post-RoPE keys; same matrix).
//
// Strategies:
//   rorope (TransMLA RoRoPE + FreqFold): frequencies are grouped into d/(2F) blocks of F adjacent ones; one
//     PCA per block over its g*F re channels; the top k = d_R*F/d eigenvectors of each block become RoPE
//     pairs; pair b of block a gets source frequency index a*F + floor(b*F/k) (TransMLA's a*F + b*c for
//     collapse c = d/d_R). F = 1 keeps every pair frequency-pure (exact rotation); with d_R = g*d and F = 1
//     nothing is cut and the layer is exact.
//   high / low / uniform / two_norm (MHA2MLA selection): d_R/2 source frequencies are selected (S_high: the
//     fastest f < d_R/2; S_low: the slowest; S_uniform: floor(k*d/d_R); S_2-norm: the largest
//     sum_j [sum_{h in j} rms(q_h^(f))] * rms(k_j^(f)), using RMS as the expected 2-norm). Because the target
//     has ONE shared key, the g per-head pairs at a selected frequency are merged: the top eigenvector of
//     that frequency's g x g (re + im) second moment is the shared pair, and the other g-1 directions at the
//     frequency (and every channel of the unselected ones) fold into the NoPE remainder. With g = 1 this is
//     MHA2MLA's per-head selection exactly.
#pragma once

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "mla/convert/calibration.hpp"
#include "mla/core/error.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/rope.hpp"

namespace mla::convert {

enum class rope_strategy { rorope, high, low, uniform, two_norm };

inline const char* to_string(rope_strategy s) {
  switch (s) {
    case rope_strategy::rorope: return "rorope";
    case rope_strategy::high: return "high";
    case rope_strategy::low: return "low";
    case rope_strategy::uniform: return "uniform";
    case rope_strategy::two_norm: return "two_norm";
  }
  return "?";
}

struct rope_options {
  rope_strategy strategy = rope_strategy::rorope;
  int rope_dim = 32;  // d_R, even
  int freqfold = 0;   // RoRoPE F; 0: the smallest valid fold, d/d_R rounded up to a divisor of d/2 (>= 1)
};

// The basis and frequencies of the shared RoPE key; see the header comment.
struct rope_plan {
  int n_kv_heads = 0;
  int head_dim = 0;
  int rope_dim = 0;
  int freqfold = 1;
  dmatrix basis;                  // [g*d, g*d] orthonormal: columns [0, d_R) = B_R, the rest = B_N
  std::vector<double> inv_freq;   // [d_R/2] frequency of pair i (source inv_freq of freq_index[i])
  std::vector<int> freq_index;    // [d_R/2] source frequency index of pair i
  bool frequency_pure = true;     // every rope pair touches one source frequency (the rotation is exact)

  int key_dim() const { return n_kv_heads * head_dim; }
  int nope_count() const { return key_dim() - rope_dim; }
  Eigen::Block<const dmatrix> rope_basis() const { return basis.leftCols(rope_dim); }       // [g*d, d_R]
  Eigen::Block<const dmatrix> nope_basis() const { return basis.rightCols(nope_count()); }  // [g*d, g*d-d_R]
};

namespace detail {

// Eigenvectors of a symmetric matrix, columns sorted by descending eigenvalue.
inline void sorted_eigen(const dmatrix& s, dvector& values, dmatrix& vectors) {
  const Eigen::MatrixXd s_copy = s;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(s_copy);
  check(es.info() == Eigen::Success, "mla::convert: eigen-decomposition failed");
  const Eigen::Index n = s.rows();
  values.resize(n);
  vectors.resize(n, n);
  for (Eigen::Index i = 0; i < n; ++i) {  // SelfAdjointEigenSolver sorts ascending
    values[i] = es.eigenvalues()[n - 1 - i];
    vectors.col(i) = es.eigenvectors().col(n - 1 - i);
  }
}

inline int default_freqfold(int head_dim, int rope_dim) {
  const int half = head_dim / 2;
  int f = std::max(1, (head_dim + rope_dim - 1) / rope_dim);  // collapse c = d/d_R
  while (f < half && half % f != 0) ++f;
  return f;
}

}  // namespace detail

// Builds the rope plan of a GQA layer from its calibration moments.
template <class T>
rope_plan make_rope_plan(const ref::gqa_layer<T>& src, const layer_moments& stats, const rope_options& opt) {
  const char* who = "mla::convert::make_rope_plan";
  src.validate();
  const int g = src.n_kv_heads, d = src.head_dim, half = d / 2;
  const int gd = g * d;
  check(opt.rope_dim > 0 && opt.rope_dim % 2 == 0 && opt.rope_dim <= gd, who, ": rope_dim must be even and in [2, ",
        "n_kv_heads*head_dim = ", gd, "], found ", opt.rope_dim);
  check(src.rope.layout == ref::rope_layout::neox, who, ": the source RoPE must be NeoX (half-split); permute ",
        "interleaved checkpoints first");
  const int pairs = opt.rope_dim / 2;

  rope_plan plan;
  plan.n_kv_heads = g;
  plan.head_dim = d;
  plan.rope_dim = opt.rope_dim;

  // Key second moment [g*d, g*d] (pre-RoPE, biases included). Every strategy needs it: even the fixed
  // selections merge the g heads' pairs at a selected frequency by PCA.
  stats.require(who);
  check(stats.hidden() == src.hidden, who, ": moments are for hidden = ", stats.hidden(), ", layer has ", src.hidden);
  const dmatrix m_aug = stats.augmented_second_moment();
  const dmatrix kk = affine_second_moment(augmented_weight(src.wk, src.bk), m_aug);

  // Per block: which frequencies, how many pairs to keep.
  int fold = 1;
  std::vector<int> keep;  // [blocks]
  if (opt.strategy == rope_strategy::rorope) {
    fold = opt.freqfold > 0 ? opt.freqfold : detail::default_freqfold(d, opt.rope_dim);
    check(half % fold == 0, who, ": freqfold F = ", fold, " must divide head_dim/2 = ", half);
    const int blocks = half / fold;
    check(pairs % blocks == 0, who, ": rope_dim/2 = ", pairs, " pairs cannot be spread evenly over head_dim/(2F) = ",
          blocks, " frequency blocks (F = ", fold, "); use F with rope_dim*F divisible by head_dim");
    const int k = pairs / blocks;
    check(k <= g * fold, who, ": ", k, " pairs per block exceed the block's g*F = ", g * fold, " directions");
    keep.assign(static_cast<std::size_t>(blocks), k);
  } else {
    check(pairs <= half, who, ": selection strategies keep at most head_dim/2 = ", half, " frequencies, rope_dim/2 = ",
          pairs);
    std::vector<int> selected;
    if (opt.strategy == rope_strategy::high) {
      for (int f = 0; f < pairs; ++f) selected.push_back(f);
    } else if (opt.strategy == rope_strategy::low) {
      for (int f = half - pairs; f < half; ++f) selected.push_back(f);
    } else if (opt.strategy == rope_strategy::uniform) {
      for (int k = 0; k < pairs; ++k) selected.push_back(static_cast<int>((long(k) * half) / pairs));
    } else {
      // S_2-norm: score_f = sum_j (sum_{h in group j} rms q_h^(f)) * rms k_j^(f).
      const dvector q2 = affine_second_moment_diag(augmented_weight(src.wq, src.bq), m_aug);  // [n_h*d]
      std::vector<double> score(static_cast<std::size_t>(half), 0.0);
      for (int f = 0; f < half; ++f)
        for (int j = 0; j < g; ++j) {
          double q_rms = 0;
          for (int h = j * src.group_size(); h < (j + 1) * src.group_size(); ++h)
            q_rms += std::sqrt(std::max(0.0, q2[h * d + f] + q2[h * d + f + half]));
          const double k_rms = std::sqrt(std::max(0.0, kk(j * d + f, j * d + f) + kk(j * d + f + half, j * d + f + half)));
          score[static_cast<std::size_t>(f)] += q_rms * k_rms;
        }
      std::vector<int> order(static_cast<std::size_t>(half));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return score[static_cast<std::size_t>(a)] > score[static_cast<std::size_t>(b)]; });
      selected.assign(order.begin(), order.begin() + pairs);
      std::sort(selected.begin(), selected.end());
    }
    keep.assign(static_cast<std::size_t>(half), 0);
    for (int f : selected) keep[static_cast<std::size_t>(f)] = 1;
  }
  plan.freqfold = fold;

  const std::vector<double> src_freq = ref::rope<double>(src.rope).inv_freq();  // [d/2], scaling applied
  plan.basis = dmatrix::Zero(gd, gd);
  int rope_col = 0;             // next rope pair
  int nope_col = opt.rope_dim;  // next nope column
  const int blocks = static_cast<int>(keep.size());
  for (int a = 0; a < blocks; ++a) {
    // Block channels, ordered (frequency, head): re index j*d + f, im = re + d/2.
    std::vector<int> re;
    for (int f = a * fold; f < (a + 1) * fold; ++f)
      for (int j = 0; j < g; ++j) re.push_back(j * d + f);
    const Eigen::Index n = static_cast<Eigen::Index>(re.size());
    dmatrix sigma(n, n);
    for (Eigen::Index r = 0; r < n; ++r)
      for (Eigen::Index c = 0; c < n; ++c) {
        const int ir = re[static_cast<std::size_t>(r)], ic = re[static_cast<std::size_t>(c)];
        sigma(r, c) = kk(ir, ic) + kk(ir + half, ic + half);
      }
    dvector values;
    dmatrix vectors;
    detail::sorted_eigen(sigma, values, vectors);
    const int k = keep[static_cast<std::size_t>(a)];
    for (Eigen::Index e = 0; e < n; ++e) {
      const bool is_rope = e < k;
      const int col_re = is_rope ? rope_col : nope_col;
      const int col_im = is_rope ? rope_col + pairs : nope_col + 1;
      for (Eigen::Index r = 0; r < n; ++r) {
        plan.basis(re[static_cast<std::size_t>(r)], col_re) = vectors(r, e);
        plan.basis(re[static_cast<std::size_t>(r)] + half, col_im) = vectors(r, e);
      }
      if (is_rope) {
        const int fi = a * fold + static_cast<int>((long(e) * fold) / k);
        plan.freq_index.push_back(fi);
        plan.inv_freq.push_back(src_freq[static_cast<std::size_t>(fi)]);
        if (fold > 1) {
          // Pure iff the eigenvector lives on one frequency of the block.
          int touched = 0;
          for (int fb = 0; fb < fold; ++fb) {
            double w = 0;
            for (int j = 0; j < g; ++j) w += std::abs(vectors(fb * g + j, e));
            touched += w > 1e-12;
          }
          if (touched > 1) plan.frequency_pure = false;
        }
        ++rope_col;
      } else {
        nope_col += 2;
      }
    }
  }
  check(rope_col == pairs && nope_col == gd, who, ": internal: built ", rope_col, " rope pairs and ", nope_col,
        " columns, expected ", pairs, " and ", gd);
  return plan;
}

// The target RoPE config of the shared key: the source config at width d_R with explicit per-pair
// frequencies, unless they are exactly the standard ladder of a d_R-wide RoPE with the same base (the every-
// c-th-frequency case with no scaling), which is then written without the override (stock DeepSeek RoPE).
inline ref::rope_config target_rope_config(const ref::rope_config& src, const rope_plan& plan) {
  ref::rope_config c = src;
  c.dim = plan.rope_dim;
  c.inv_freq_override.clear();
  const std::vector<double> ladder = ref::rope<double>(c).inv_freq();
  bool standard = src.scaling == ref::rope_scaling::none && src.inv_freq_override.empty();
  for (std::size_t i = 0; standard && i < ladder.size(); ++i)
    standard = std::abs(ladder[i] - plan.inv_freq[i]) <= 1e-12 * plan.inv_freq[i];
  if (!standard) c.inv_freq_override = plan.inv_freq;
  return c;
}

}  // namespace mla::convert
