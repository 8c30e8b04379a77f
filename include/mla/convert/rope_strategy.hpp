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
//   attention (the project's): F = 1 and the per-frequency PCA directions of rorope, but the d_R/2 RoPE pairs
//     are not one per frequency: they go to the (frequency, direction) pairs whose loss of RoPE would disturb
//     the source layer's own attention most. Dropping the rotation from direction u at frequency f changes
//     the score of query t and key s (complex pairs z = re + i im, Delta = t - s) by
//       delta_h(t, s) = scale * af^2 * Re( u_j(h) z_q,h(t) conj(z_u(s)) (exp(i theta_f Delta) - 1) ),
//     and to first order the head's output moves by sum_s p_h(t, s) (delta_h(t, s) - E_p delta_h(t, .)) v_s
//     under the source attention p (sinks included; a shift common to every key costs nothing), so the cost of
//     the pair is the squared norm of that change through o_proj, summed over heads and queries:
//       sum_h sum_t || W_o,h sum_s p_h(t, s) (delta_h(t, s) - E_p delta_h(t, .)) v_j(h)(s) ||^2.
//     Slow frequencies barely rotate within the context and cost almost nothing, so their pairs move to the
//     fast frequencies, where two or three heads' directions may keep RoPE. Needs calibration inputs (windows
//     as long as the evaluation context); the pairs stay frequency-pure (exact rotation), with a per-pair
//     frequency table (not the standard ladder). The cost sees only the RoPE cut, not what the freed
//     directions add to the latent: on SmolLM2 it wins at 50 % KV and loses at tighter budgets (RESULTS).
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
#include "mla/reference/attention_probabilities.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/rope.hpp"

namespace mla::convert {

enum class rope_strategy { rorope, high, low, uniform, two_norm, attention };

inline const char* to_string(rope_strategy s) {
  switch (s) {
    case rope_strategy::rorope:
      return "rorope";
    case rope_strategy::high:
      return "high";
    case rope_strategy::low:
      return "low";
    case rope_strategy::uniform:
      return "uniform";
    case rope_strategy::two_norm:
      return "two_norm";
    case rope_strategy::attention:
      return "attention";
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
  dmatrix basis;                 // [g*d, g*d] orthonormal: columns [0, d_R) = B_R, the rest = B_N
  std::vector<double> inv_freq;  // [d_R/2] frequency of pair i (source inv_freq of freq_index[i])
  std::vector<int> freq_index;   // [d_R/2] source frequency index of pair i
  bool frequency_pure = true;    // every rope pair touches one source frequency (the rotation is exact)

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

// The attention strategy's cost of cutting RoPE from each (frequency f, direction e) pair (header comment):
// directions[f] [g, g] holds the unit directions of frequency f as columns. Returns [d/2][g] costs summed over
// the windows (each x [tokens, hidden], positions from 0), using windows until `max_tokens` tokens; at most
// `max_queries` queries per window are scored (evenly strided, the last one included); every key a scored
// query sees counts.
template <class T>
std::vector<std::vector<double>> rope_cut_costs(const ref::gqa_layer<T>& src, const std::vector<dmatrix>& directions,
                                                const std::vector<ref::matrix<T>>& windows, long max_tokens = 4096,
                                                long max_queries = 256) {
  using std::size_t;
  const int g = src.n_kv_heads, d = src.head_dim, half = d / 2, heads = src.n_heads;
  const ref::rope<T> rot(src.rope);
  const double af = rot.attention_factor();
  const double scale = src.attention.softmax_scale * af * af;
  std::vector<std::vector<double>> cost(static_cast<size_t>(half), std::vector<double>(static_cast<size_t>(g), 0.0));
  long used = 0;
  for (const ref::matrix<T>& x : windows) {
    if (used >= max_tokens) break;
    const Eigen::Index n = x.rows();
    used += static_cast<long>(n);
    const ref::matrix<T> q = ref::linear(x, src.wq, src.bq);  // [n, heads*d] pre-RoPE
    const ref::matrix<T> k = ref::linear(x, src.wk, src.bk);  // [n, g*d]
    ref::matrix<T> qr = q, kr = k;
    ref::rope_heads(rot, qr, heads, d, 0);
    ref::rope_heads(rot, kr, g, d, 0);
    const Eigen::Index stride = std::max<Eigen::Index>(1, n / std::max(1L, max_queries));
    std::vector<Eigen::Index> rows;  // scored queries
    for (Eigen::Index t = n - 1; t >= 0; t -= stride) rows.push_back(t);
    const auto n_rows = static_cast<Eigen::Index>(rows.size());
    // p[h] [rows, n]: the source attention of the scored queries, sinks included. vm[h] [n, d]: the values of
    // head h's KV group in the metric of its output rows, v^T L with L L^T = W_o,h^T W_o,h, so that
    // ||W_o,h u|| = ||u^T L||. pv[h] [rows, d] = p[h] vm[h].
    const ref::matrix<T> v = ref::linear(x, src.wv, src.bv);  // [n, g*d]
    std::vector<dmatrix> p(static_cast<size_t>(heads)), vm(p), pv(p);
    for (int h = 0; h < heads; ++h) {
      const T* sink = src.sinks.size() != 0 ? &src.sinks[h] : nullptr;
      const Eigen::Index j = src.kv_head_of(h);
      ref::matrix<T> ph(n_rows, n);
      ref::matrix<T> score(1, n);  // one scored query's row
      for (Eigen::Index r = 0; r < n_rows; ++r) {
        score.row(0).noalias() =
            qr.row(rows[size_t(r)]).segment(Eigen::Index(h) * d, d) * kr.middleCols(j * d, d).transpose();
        score *= static_cast<T>(src.attention.softmax_scale);
        ref::masked_softmax(score, src.attention, sink, long(rows[size_t(r)]));
        ph.row(r) = score.row(0);
      }
      p[size_t(h)] = ph.template cast<double>();
      const dmatrix wo_h = src.wo.middleCols(Eigen::Index(h) * d, d).template cast<double>();  // [hidden, d]
      dvector values;
      dmatrix vectors;
      sorted_eigen(wo_h.transpose() * wo_h, values, vectors);
      const dmatrix l = vectors * values.cwiseMax(0.0).cwiseSqrt().asDiagonal();  // [d, d]
      vm[size_t(h)] = v.middleCols(j * d, d).template cast<double>() * l;
      pv[size_t(h)] = p[size_t(h)] * vm[size_t(h)];
    }
    std::vector<double> zr(static_cast<size_t>(n)), zi(zr), cos_d(zr), sin_d(zr);  // [n]
    dmatrix pd(n_rows, n), change(n_rows, d);
    for (int f = 0; f < half; ++f) {
      const double theta = rot.inv_freq()[size_t(f)];
      for (Eigen::Index delta = 0; delta < n; ++delta) {  // (exp(i theta Delta) - 1)
        cos_d[size_t(delta)] = std::cos(theta * double(delta)) - 1.0;
        sin_d[size_t(delta)] = std::sin(theta * double(delta));
      }
      const dmatrix& u = directions[size_t(f)];
      for (int e = 0; e < g; ++e) {
        for (Eigen::Index s = 0; s < n; ++s) {  // z_u(s) = sum_j u_j z_k,j(s)
          double a = 0, b = 0;
          for (int j = 0; j < g; ++j) {
            a += u(j, e) * double(k(s, Eigen::Index(j) * d + f));
            b += u(j, e) * double(k(s, Eigen::Index(j) * d + f + half));
          }
          zr[size_t(s)] = a;
          zi[size_t(s)] = b;
        }
        double total = 0;
        for (int h = 0; h < heads; ++h) {
          const double u_q = u(src.kv_head_of(h), e) * scale;
          if (u_q == 0.0) continue;
          // pd [rows, n] = p * delta; the first-order change of the head's output (in the W_o metric) is
          // sum_s p_s (delta_s - mean_p delta) v_s = pd vm - rowsum(pd) * pv.
          pd.setZero();
          for (Eigen::Index r = 0; r < n_rows; ++r) {
            const Eigen::Index t = rows[size_t(r)];
            const double qa = u_q * double(q(t, Eigen::Index(h) * d + f));
            const double qb = u_q * double(q(t, Eigen::Index(h) * d + f + half));
            const double* pr = p[size_t(h)].data() + r * n;
            double* out = pd.data() + r * n;
            for (Eigen::Index s = 0; s <= t; ++s) {
              const double w = pr[s];
              if (w == 0.0) continue;
              // z_q conj(z_u) = (qa zr + qb zi) + i (qb zr - qa zi), times (exp(i theta (t - s)) - 1), real part
              const double wr = qa * zr[size_t(s)] + qb * zi[size_t(s)];
              const double wi = qb * zr[size_t(s)] - qa * zi[size_t(s)];
              out[s] = w * (wr * cos_d[size_t(t - s)] - wi * sin_d[size_t(t - s)]);
            }
          }
          change.noalias() = pd * vm[size_t(h)];
          change -= pd.rowwise().sum().asDiagonal() * pv[size_t(h)];
          total += change.squaredNorm();
        }
        cost[size_t(f)][size_t(e)] += total;
      }
    }
  }
  return cost;
}

inline int default_freqfold(int head_dim, int rope_dim) {
  const int half = head_dim / 2;
  int f = std::max(1, (head_dim + rope_dim - 1) / rope_dim);  // collapse c = d/d_R
  while (f < half && half % f != 0) ++f;
  return f;
}

}  // namespace detail

// Builds the rope plan of a GQA layer from its calibration moments.
// `windows` (calibration inputs [tokens, hidden], positions from 0) are needed by the attention strategy only.
template <class T>
rope_plan make_rope_plan(const ref::gqa_layer<T>& src, const layer_moments& stats, const rope_options& opt,
                         const std::vector<ref::matrix<T>>* windows = nullptr) {
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
  if (opt.strategy == rope_strategy::attention) {
    check(windows != nullptr && !windows->empty(), who, ": the attention strategy needs calibration inputs");
    keep.assign(static_cast<std::size_t>(half), 0);  // F = 1; the counts are set from the costs below
  } else if (opt.strategy == rope_strategy::rorope) {
    fold = opt.freqfold > 0 ? opt.freqfold : detail::default_freqfold(d, opt.rope_dim);
    check(half % fold == 0, who, ": freqfold F = ", fold, " must divide head_dim/2 = ", half);
    const int blocks = half / fold;
    check(pairs % blocks == 0, who, ": rope_dim/2 = ", pairs,
          " pairs cannot be spread evenly over head_dim/(2F) = ", blocks, " frequency blocks (F = ", fold,
          "); use F with rope_dim*F divisible by head_dim");
    const int k = pairs / blocks;
    check(k <= g * fold, who, ": ", k, " pairs per block exceed the block's g*F = ", g * fold, " directions");
    keep.assign(static_cast<std::size_t>(blocks), k);
  } else {
    check(pairs <= half, who, ": selection strategies keep at most head_dim/2 = ", half,
          " frequencies, rope_dim/2 = ", pairs);
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
          const double k_rms =
              std::sqrt(std::max(0.0, kk(j * d + f, j * d + f) + kk(j * d + f + half, j * d + f + half)));
          score[static_cast<std::size_t>(f)] += q_rms * k_rms;
        }
      std::vector<int> order(static_cast<std::size_t>(half));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return score[static_cast<std::size_t>(a)] > score[static_cast<std::size_t>(b)];
      });
      selected.assign(order.begin(), order.begin() + pairs);
      std::sort(selected.begin(), selected.end());
    }
    keep.assign(static_cast<std::size_t>(half), 0);
    for (int f : selected) keep[static_cast<std::size_t>(f)] = 1;
  }
  plan.freqfold = fold;

  // One PCA per frequency block, over its g*F re channels ordered (frequency, head): re j*d + f, im re + d/2.
  const int blocks = static_cast<int>(keep.size());
  std::vector<std::vector<int>> block_re(static_cast<std::size_t>(blocks));
  std::vector<dmatrix> block_vectors(static_cast<std::size_t>(blocks));
  for (int a = 0; a < blocks; ++a) {
    std::vector<int>& re = block_re[static_cast<std::size_t>(a)];
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
    detail::sorted_eigen(sigma, values, block_vectors[static_cast<std::size_t>(a)]);
  }
  // Which directions of each block keep RoPE: the first keep[a] (largest key energy), or for the attention
  // strategy the d_R/2 costliest (frequency, direction) pairs over all frequencies.
  std::vector<std::vector<char>> is_rope(static_cast<std::size_t>(blocks));
  for (int a = 0; a < blocks; ++a) {
    auto& sel = is_rope[static_cast<std::size_t>(a)];
    sel.assign(block_re[static_cast<std::size_t>(a)].size(), 0);
    for (int e = 0; e < keep[static_cast<std::size_t>(a)]; ++e) sel[static_cast<std::size_t>(e)] = 1;
  }
  if (opt.strategy == rope_strategy::attention) {
    const auto cost = detail::rope_cut_costs(src, block_vectors, *windows);
    std::vector<std::pair<double, int>> order;  // (cost, f * g + e)
    for (int f = 0; f < half; ++f)
      for (int e = 0; e < g; ++e)
        order.emplace_back(cost[static_cast<std::size_t>(f)][static_cast<std::size_t>(e)], f * g + e);
    std::stable_sort(order.begin(), order.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    for (int i = 0; i < pairs; ++i) {
      const int f = order[static_cast<std::size_t>(i)].second / g, e = order[static_cast<std::size_t>(i)].second % g;
      is_rope[static_cast<std::size_t>(f)][static_cast<std::size_t>(e)] = 1;
      ++keep[static_cast<std::size_t>(f)];
    }
  }

  const std::vector<double> src_freq = ref::rope<double>(src.rope).inv_freq();  // [d/2], scaling applied
  plan.basis = dmatrix::Zero(gd, gd);
  int rope_col = 0;             // next rope pair
  int nope_col = opt.rope_dim;  // next nope column
  for (int a = 0; a < blocks; ++a) {
    const std::vector<int>& re = block_re[static_cast<std::size_t>(a)];
    const dmatrix& vectors = block_vectors[static_cast<std::size_t>(a)];
    const Eigen::Index n = static_cast<Eigen::Index>(re.size());
    const int k = keep[static_cast<std::size_t>(a)];
    int kept = 0;  // rope pairs of this block so far
    for (Eigen::Index e = 0; e < n; ++e) {
      const bool rope_pair = is_rope[static_cast<std::size_t>(a)][static_cast<std::size_t>(e)] != 0;
      const int col_re = rope_pair ? rope_col : nope_col;
      const int col_im = rope_pair ? rope_col + pairs : nope_col + 1;
      for (Eigen::Index r = 0; r < n; ++r) {
        plan.basis(re[static_cast<std::size_t>(r)], col_re) = vectors(r, e);
        plan.basis(re[static_cast<std::size_t>(r)] + half, col_im) = vectors(r, e);
      }
      if (rope_pair) {
        const int fi = a * fold + static_cast<int>((long(kept) * fold) / k);
        ++kept;
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
