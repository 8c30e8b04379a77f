// Next-token selection from logits: greedy, or temperature with top-k / top-p (nucleus) truncation.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"

namespace mla::model {

struct sampling_options {
  double temperature = 0.0;         // 0: greedy (argmax)
  int top_k = 0;                    // 0: no top-k truncation
  double top_p = 1.0;               // 1: no nucleus truncation
  double repetition_penalty = 1.0;  // > 1 lowers the logits of tokens already generated (CTRL-style)
};

class sampler {
 public:
  explicit sampler(sampling_options o, unsigned long long seed = 0) : o_(o), rng_(seed) {
    check(o_.temperature >= 0, "mla::model::sampler: temperature must be >= 0, got ", o_.temperature);
    check(o_.top_k >= 0, "mla::model::sampler: top_k must be >= 0, got ", o_.top_k);
    check(o_.top_p > 0 && o_.top_p <= 1, "mla::model::sampler: top_p must be in (0, 1], got ", o_.top_p);
    check(o_.repetition_penalty >= 1, "mla::model::sampler: repetition_penalty must be >= 1, got ",
          o_.repetition_penalty);
  }

  // logits [vocab]; `history` holds the tokens the penalty applies to.
  template <class T>
  int next(const ref::row_vector<T>& logits, const std::vector<int>& history = {}) {
    std::vector<double> l(static_cast<std::size_t>(logits.size()));
    for (Eigen::Index i = 0; i < logits.size(); ++i) l[static_cast<std::size_t>(i)] = static_cast<double>(logits[i]);
    if (o_.repetition_penalty > 1)
      for (int t : history)
        if (t >= 0 && static_cast<std::size_t>(t) < l.size())
          l[t] = l[t] > 0 ? l[t] / o_.repetition_penalty : l[t] * o_.repetition_penalty;
    if (o_.temperature == 0) return static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());

    std::vector<int> order(l.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
    std::size_t keep =
        o_.top_k > 0 ? std::min<std::size_t>(static_cast<std::size_t>(o_.top_k), order.size()) : order.size();
    std::vector<double> p(keep);
    double z = 0;
    for (std::size_t i = 0; i < keep; ++i) z += p[i] = std::exp((l[order[i]] - l[order[0]]) / o_.temperature);
    // Nucleus: the smallest prefix whose probability reaches top_p.
    double mass = 0;
    std::size_t nucleus = keep;
    for (std::size_t i = 0; i < keep; ++i) {
      mass += p[i] / z;
      if (mass >= o_.top_p) {
        nucleus = i + 1;
        break;
      }
    }
    std::discrete_distribution<std::size_t> pick(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(nucleus));
    return order[pick(rng_)];
  }

 private:
  sampling_options o_;
  std::mt19937_64 rng_;
};

}  // namespace mla::model
