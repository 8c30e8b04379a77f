// mla::util model summary: one line on what a loaded model's attention is, for the tools (mla-eval prints it):
// GQA or MLA (how many layers of each), the latent ranks summarised, the RoPE widths, the sliding windows, and
// the KV cache per token (elements and float32 bytes, summed over layers).
//
//   "MLA in 30 of 30 layers (latent rank 160, d_R 32), 9 heads x 64; KV cache 5760 elements = 23040 bytes per
//    token (float32)"
#pragma once

#include <algorithm>
#include <map>
#include <string>

#include "mla/model/model_config.hpp"

namespace mla::util {

namespace summary_detail {
// "160" for one value, "96..224 (mean 160)" for several.
inline std::string spread(const std::map<int, int>& counts) {
  if (counts.empty()) return "";
  if (counts.size() == 1) return std::to_string(counts.begin()->first);
  long sum = 0, n = 0;
  for (const auto& [v, c] : counts) sum += long(v) * c, n += c;
  return std::to_string(counts.begin()->first) + ".." + std::to_string(counts.rbegin()->first) + " (mean " +
         std::to_string((sum + n / 2) / n) + ")";
}
}  // namespace summary_detail

inline std::string attention_summary(const model::model_config& c) {
  int mla = 0, sliding = 0, window = 0;
  std::map<int, int> ranks, rope_dims;
  long elements = 0;
  for (int l = 0; l < c.n_layers; ++l) {
    const model::layer_config& lc = c.layers[static_cast<std::size_t>(l)];
    elements += c.kv_elements_per_token(l);
    if (lc.sliding_window > 0) ++sliding, window = std::max(window, lc.sliding_window);
    if (lc.attention != model::attention_kind::mla) continue;
    ++mla;
    ++ranks[lc.latent_rank];
    ++rope_dims[lc.rope_dim];
  }
  const int gqa = c.n_layers - mla;
  std::string s;
  if (mla > 0) {
    s = "MLA in " + std::to_string(mla) + " of " + std::to_string(c.n_layers) + " layers (latent rank " +
        summary_detail::spread(ranks) + ", d_R " + summary_detail::spread(rope_dims) + ")";
    if (gqa > 0) s += ", GQA in " + std::to_string(gqa) + " (" + std::to_string(c.n_kv_heads) + " KV heads)";
    s += ", " + std::to_string(c.n_heads) + " heads x " + std::to_string(c.head_dim);
  } else {
    s = "GQA in all " + std::to_string(c.n_layers) + " layers, " + std::to_string(c.n_heads) + " heads / " +
        std::to_string(c.n_kv_heads) + " KV heads x " + std::to_string(c.head_dim);
  }
  if (sliding > 0) s += ", " + std::to_string(sliding) + " layers with a " + std::to_string(window) + "-token window";
  s += "; KV cache " + std::to_string(elements) + " elements = " + std::to_string(elements * 4) +
       " bytes per token (float32, all layers)";
  return s;
}

}  // namespace mla::util
