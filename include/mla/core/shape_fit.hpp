// mla::fitting_shapes: which supported MLA shapes fit the KV-cache budget of a GQA layer (what mla-shapes lists).
//
// The GQA cache holds 2 * kv_heads * head_dim elements per token and layer; removing a fraction `reduction` of it
// leaves floor(elements * (1 - reduction)). An MLA cache holds latent_rank + rope_dim. For each head split
// (head_dim, rope_dim) of supported_shapes, the largest supported rank whose cache fits is kept. The counts are
// 64-bit: a source layer too large for that is refused rather than wrapped round.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"

namespace mla {

struct shape_fit {
  std::int64_t gqa_elements = 0;      // 2 * kv_heads * head_dim, per token and layer
  std::int64_t budget = 0;            // floor(gqa_elements * (1 - reduction))
  std::vector<runtime_shape> shapes;  // per head split, the largest rank that fits; list order; empty: none fits
};

// Throws mla::error naming --kv-heads / --head-dim / --reduction when an input is out of range, or when the GQA
// element count does not fit in 64 bits.
inline shape_fit fitting_shapes(std::int64_t kv_heads, std::int64_t head_dim, double reduction) {
  check(kv_heads > 0, "--kv-heads must be > 0, found ", kv_heads);
  check(head_dim > 0, "--head-dim must be > 0, found ", head_dim);
  check(reduction >= 0 && reduction <= 1, "--reduction must be in [0, 1], found ", reduction);
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  check(kv_heads <= max / 2 / head_dim, "--kv-heads ", kv_heads, " x --head-dim ", head_dim,
        ": the GQA cache, 2 x kv_heads x head_dim elements per token, does not fit in a 64-bit count");
  shape_fit fit;
  fit.gqa_elements = 2 * kv_heads * head_dim;
  // In double, as mla-shapes always did (exact for any count below 2^53).
  fit.budget = static_cast<std::int64_t>(static_cast<double>(fit.gqa_elements) * (1.0 - reduction));
  runtime_shape best{};
  auto flush = [&] {
    if (best.latent_rank > 0) fit.shapes.push_back(best);
    best = {};
  };
  for (const runtime_shape& s : supported_runtime_shapes()) {
    if (s.head_dim != best.head_dim || s.rope_dim != best.rope_dim) {
      flush();
      best.head_dim = s.head_dim, best.rope_dim = s.rope_dim;  // the group, with no rank yet
    }
    if (s.cached_elements_per_token() <= fit.budget) best = s;
  }
  flush();
  return fit;
}

}  // namespace mla
