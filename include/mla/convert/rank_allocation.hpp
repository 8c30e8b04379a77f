// mla::convert rank allocation: per-layer latent ranks r_l under one global KV budget
//   sum_l (r_l + d_R) <= budget   (cached elements per token, summed over the converted layers),
// with every r_l an admissible rank: one of the supported shapes (d + d_R, d_R, r) of
// mla/core/supported_shapes.hpp (or, when shapes are not enforced, a multiple of 32), at most the layer's
// full rank 2*g*d - d_R. Allocations never exceed the budget; what is left below it stays unused.
//
//   uniform:           the largest rank admissible in every layer with L*(r + d_R) <= budget.
//   spectrum_greedy:   CARE-style: every layer starts at the smallest admissible rank; then, repeatedly,
//                      the layer whose next admissible step retains the largest fraction of its own
//                      spectrum per added element, sum_{i in step} lambda_i / sum_i lambda_i, gets it.
//   objective_greedy:  this project's: the same greedy on the absolute reduction of each layer's weighted
//                      objective (the attention_aware eigenvalues, in attention-output units) times a
//                      per-layer weight (1 / E||h||^2 of the residual stream the output is added to), i.e.
//                      the marginal drop of the relative error the residual stream sees.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <limits>
#include <vector>

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/supported_shapes.hpp"

namespace mla::convert {

enum class rank_allocation { uniform, spectrum_greedy, objective_greedy };

inline const char* to_string(rank_allocation a) {
  switch (a) {
    case rank_allocation::uniform:
      return "uniform";
    case rank_allocation::spectrum_greedy:
      return "spectrum_greedy";
    case rank_allocation::objective_greedy:
      return "objective_greedy";
  }
  return "?";
}

struct rank_budget {
  long elements_per_token = 0;            // sum over converted layers of (r_l + d_R)
  int nope_dim = 0;                       // d (the target qk head is d + d_R)
  int rope_dim = 0;                       // d_R
  bool require_supported_shape = true;    // ranks must form supported mla_shapes
  int step = supported_latent_rank_step;  // rank grid when shapes are not enforced
};

// What the allocator knows of one layer.
struct layer_rank_info {
  Eigen::VectorXd spectrum;  // eigenvalues of the layer's objective, descending (>= 0)
  double weight = 1.0;       // objective_greedy: multiplies the absolute gains
  int max_rank = 0;          // full rank 2*g*d - d_R
};

// Admissible ranks, ascending, of a layer whose full rank is max_rank.
inline std::vector<int> admissible_ranks(const rank_budget& b, int max_rank) {
  std::vector<int> out;
  if (b.require_supported_shape) {
    for (const runtime_shape& s : supported_runtime_shapes())
      if (s.head_dim == b.nope_dim + b.rope_dim && s.rope_dim == b.rope_dim && s.latent_rank <= max_rank)
        out.push_back(s.latent_rank);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  } else {
    for (int r = b.step; r <= max_rank; r += b.step) out.push_back(r);
  }
  return out;
}

namespace detail {
inline double spectrum_sum(const Eigen::VectorXd& s, int from, int to) {
  double acc = 0;
  for (int i = std::max(from, 0); i < std::min<int>(to, static_cast<int>(s.size())); ++i) acc += std::max(0.0, s[i]);
  return acc;
}
}  // namespace detail

inline std::vector<int> allocate_ranks(const std::vector<layer_rank_info>& layers, const rank_budget& b,
                                       rank_allocation method) {
  const char* who = "mla::convert::allocate_ranks";
  check(!layers.empty(), who, ": no layers");
  check(b.rope_dim >= 0 && b.nope_dim > 0, who, ": nope_dim must be > 0 and rope_dim >= 0, found ", b.nope_dim, ", ",
        b.rope_dim);
  const std::size_t n = layers.size();
  std::vector<std::vector<int>> grid(n);
  for (std::size_t l = 0; l < n; ++l) {
    grid[l] = admissible_ranks(b, layers[l].max_rank);
    check(!grid[l].empty(), who, ": layer ", l, " has no admissible rank (full rank ", layers[l].max_rank, ", shape (",
          b.nope_dim + b.rope_dim, ", ", b.rope_dim, ", r)",
          b.require_supported_shape ? " must be in mla::supported_shapes" : "", ")");
  }
  auto cost = [&](int r) { return long(r) + b.rope_dim; };

  std::vector<int> ranks(n);
  if (method == rank_allocation::uniform) {
    // The largest rank admissible everywhere that fits.
    int best = -1;
    for (int r : grid[0]) {
      bool everywhere = true;
      for (std::size_t l = 1; l < n && everywhere; ++l)
        everywhere = std::find(grid[l].begin(), grid[l].end(), r) != grid[l].end();
      if (everywhere && long(n) * cost(r) <= b.elements_per_token) best = std::max(best, r);
    }
    check(best > 0, who, ": budget of ", b.elements_per_token, " elements per token cannot hold ", n,
          " layers at a common admissible rank (smallest needs ", long(n) * cost(grid[0].front()), ")");
    std::fill(ranks.begin(), ranks.end(), best);
    return ranks;
  }

  std::vector<std::size_t> idx(n, 0);
  long used = 0;
  for (std::size_t l = 0; l < n; ++l) {
    ranks[l] = grid[l][0];
    used += cost(ranks[l]);
  }
  check(used <= b.elements_per_token, who, ": budget of ", b.elements_per_token,
        " elements per token is below the smallest admissible allocation (", used, ")");
  std::vector<double> total(n);
  for (std::size_t l = 0; l < n; ++l) total[l] = detail::spectrum_sum(layers[l].spectrum, 0, layers[l].max_rank);
  for (;;) {
    double best_gain = -1;
    std::size_t best_l = n;
    for (std::size_t l = 0; l < n; ++l) {
      if (idx[l] + 1 >= grid[l].size()) continue;
      const int from = grid[l][idx[l]], to = grid[l][idx[l] + 1];
      if (used + (to - from) > b.elements_per_token) continue;
      double gain = detail::spectrum_sum(layers[l].spectrum, from, to);
      if (method == rank_allocation::spectrum_greedy)
        gain = total[l] > 0 ? gain / total[l] : 0.0;
      else
        gain *= layers[l].weight;
      gain /= double(to - from);
      if (gain > best_gain) {
        best_gain = gain;
        best_l = l;
      }
    }
    if (best_l == n) break;
    used += grid[best_l][idx[best_l] + 1] - grid[best_l][idx[best_l]];
    ++idx[best_l];
    ranks[best_l] = grid[best_l][idx[best_l]];
  }
  return ranks;
}

}  // namespace mla::convert
