// Perplexity by the protocol the MLA-conversion papers use (GPTQ/TransMLA convention, formats.md §5 A):
// the text is tokenized once; the token stream is cut into non-overlapping windows of `context` tokens;
// the tail shorter than a window is dropped (unless it is the only data and allow_partial is set); each
// window is evaluated from a fresh context; logits at positions 0..context-2 predict tokens 1..context-1;
// perplexity = exp(mean negative log-likelihood over all predicted tokens).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <functional>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/model/decoder.hpp"

namespace mla::eval {

struct perplexity_options {
  int context = 2048;      // window length in tokens
  long max_tokens = 0;     // 0: all; otherwise use at most this many tokens of the stream
  int logits_chunk = 256;  // rows of logits materialised at once ([chunk, vocab] floats)
};

struct perplexity_progress {
  long windows_done = 0;
  long windows_total = 0;
  long tokens_scored = 0;
  double seconds = 0;
  double running_perplexity = 0;  // over the windows done so far
};

struct perplexity_result {
  double perplexity = 0;
  double mean_nll = 0;
  long tokens_scored = 0;     // predicted tokens (windows * (context - 1))
  long tokens_evaluated = 0;  // tokens fed to the model
  long windows = 0;
  double seconds = 0;
  std::size_t kv_bytes_per_window = 0;  // KV-cache bytes the model allocated for one full window
};

// Negative log-likelihood of targets[i] under logits row i, summed, computed in double.
template <class T>
double sum_nll(const ref::matrix<T>& logits, const int* targets) {
  double total = 0;
  for (Eigen::Index r = 0; r < logits.rows(); ++r) {
    const double m = static_cast<double>(logits.row(r).maxCoeff());
    double z = 0;
    for (Eigen::Index v = 0; v < logits.cols(); ++v) z += std::exp(static_cast<double>(logits(r, v)) - m);
    total += m + std::log(z) - static_cast<double>(logits(r, targets[r]));
  }
  return total;
}

template <class T>
perplexity_result perplexity(const model::decoder<T>& model, const std::vector<int>& tokens,
                             const perplexity_options& opt,
                             const std::function<void(const perplexity_progress&)>& on_progress = {}) {
  check(opt.context >= 2, "mla::eval::perplexity: context must be >= 2 tokens, got ", opt.context);
  check(opt.logits_chunk > 0, "mla::eval::perplexity: logits_chunk must be > 0, got ", opt.logits_chunk);
  const long usable = opt.max_tokens > 0 ? std::min<long>(opt.max_tokens, static_cast<long>(tokens.size()))
                                         : static_cast<long>(tokens.size());
  const long windows = usable / opt.context;
  check(windows > 0, "mla::eval::perplexity: ", usable, " tokens are fewer than one window of ", opt.context,
        " (lower --ctx)");
  const auto start = std::chrono::steady_clock::now();
  perplexity_result r;
  double nll = 0;
  for (long w = 0; w < windows; ++w) {
    const std::vector<int> window(tokens.begin() + w * opt.context, tokens.begin() + (w + 1) * opt.context);
    auto s = model.new_session();
    const ref::matrix<T> h = model.hidden_states(s, window);  // [context, hidden]
    if (w == 0) r.kv_bytes_per_window = s.kv_bytes();
    const Eigen::Index predicted = opt.context - 1;
    for (Eigen::Index r0 = 0; r0 < predicted; r0 += opt.logits_chunk) {
      const Eigen::Index rows = std::min<Eigen::Index>(opt.logits_chunk, predicted - r0);
      const ref::matrix<T> logits = model.logits(h.middleRows(r0, rows));
      nll += sum_nll(logits, window.data() + r0 + 1);
    }
    r.tokens_scored += predicted;
    r.tokens_evaluated += opt.context;
    if (on_progress) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      on_progress({w + 1, windows, r.tokens_scored, secs, std::exp(nll / static_cast<double>(r.tokens_scored))});
    }
  }
  r.windows = windows;
  r.mean_nll = nll / static_cast<double>(r.tokens_scored);
  r.perplexity = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace mla::eval
