// mla::cuda decode launch planning: tile sizes, head blocks, KV splits, shared memory and workspace of the
// CUDA decode kernels (mla_decode.cuh, gqa_decode.cuh). Plain C++17 with no CUDA include, so the CPU tests
// exercise exactly the arithmetic the host operators use before a launch.
//
// The kernel (decode_kernel.cuh) is "MQA over a token tile" on tensor cores: a CTA owns one sequence, one
// KV split and one block of up to 64 query heads that share each cached row; it walks its token range in
// tiles of 32 keys (64 for GQA's narrow rows: decode_plan::tile_tokens), computes scores S = Q K^T and the weighted sum
// O += P V with mma.m16n8k16 (bf16/fp16 in, fp32 accumulate), and keeps O in registers:
//   warps                 8 (256 threads)
//   m-tiles (mt)          16 query heads each, 1, 2 or 4 per CTA
//   value pairs per warp  16 output channels each; the value width is spread over the 8 warps, so a warp
//                         holds mt * pairs * 8 accumulators per thread (kept <= 128: no spills)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "mla/core/error.hpp"
#include "mla/core/host_device.hpp"
#include "mla/core/paged_cache.hpp"

namespace mla::cuda {

inline constexpr int decode_tile_tokens = 32;       // keys per tile for latent rows (two k16 steps of P V)
inline constexpr int decode_wide_tile_tokens = 64;  // keys per tile for narrow GQA rows (more bytes in flight)
inline constexpr int decode_warps = 8;              // warps per CTA
inline constexpr int decode_threads = 32 * decode_warps;
inline constexpr int decode_max_splits = 64;         // KV splits per sequence (the combine keeps their weights)
inline constexpr int decode_max_m_tiles = 4;         // 64 query heads per CTA
inline constexpr int decode_max_accumulators = 128;  // fp32 output accumulators per thread
inline constexpr int decode_row_pad = 8;             // elements added to every shared-memory row (ldmatrix banks)

// 16-channel value pairs a warp owns for a value width: ceil(value_width / 16 / 8), rounded up to one of
// the instantiated counts {1, 2, 4, 6}. 0 when the width is not supported (> 768 or not a multiple of 16).
constexpr int decode_pairs_per_warp(int value_width) {
  if (value_width <= 0 || value_width % 16 != 0) return 0;
  const int per = (value_width / 16 + decode_warps - 1) / decode_warps;
  return per <= 1 ? 1 : per <= 2 ? 2 : per <= 4 ? 4 : per <= 6 ? 6 : 0;
}

// m-tiles per CTA for `heads` query heads sharing a row: enough for all of them up to 4 (64 heads), fewer
// where the accumulators would pass decode_max_accumulators (4 m-tiles x 6 pairs = 192).
constexpr int decode_m_tiles(int heads, int pairs_per_warp, int max_m_tiles = decode_max_m_tiles) {
  int mt = heads > 32 ? 4 : heads > 16 ? 2 : 1;
  while (mt > max_m_tiles) mt /= 2;
  while (mt > 1 && mt * pairs_per_warp * 8 > decode_max_accumulators) mt /= 2;
  return mt;
}

// The score product S = Q K^T is split over the warps as (16-token block, m-tile, k-slice); the k-slices'
// partial sums meet in shared memory. 0 when the warps cannot cover the blocks and m-tiles.
MLA_HOST_DEVICE constexpr int decode_score_slices(int m_tiles, int tile_tokens) {
  const int items = (tile_tokens / 16) * m_tiles;
  return items <= decode_warps && decode_warps % items == 0 ? decode_warps / items : 0;
}

// Shared memory of one CTA, in bytes, for elements of elem_bytes:
//   q [16 mt][key_width + pad], two stages of keys [32][key_width + pad] (and of values [32][value_width + pad]
//   when they are a separate tensor), scores [64][32 + 4] fp32, probabilities [16 mt][32 + 8], row state 3 x
//   [16 mt] fp32.
constexpr std::size_t decode_smem_bytes(int m_tiles, int key_width, int value_width, bool separate_values,
                                        int elem_bytes, int tile_tokens = decode_tile_tokens) {
  const std::size_t hb = 16 * static_cast<std::size_t>(m_tiles), tn = static_cast<std::size_t>(tile_tokens);
  const std::size_t ldk = static_cast<std::size_t>(key_width) + decode_row_pad;
  const std::size_t ldv = static_cast<std::size_t>(value_width) + decode_row_pad;
  std::size_t bytes = (hb + 2 * tn) * ldk * elem_bytes;
  if (separate_values) bytes += 2 * tn * ldv * elem_bytes;
  bytes += decode_score_slices(m_tiles, tile_tokens) * hb * (tn + 4) * sizeof(float);  // score partials
  bytes += hb * (tn + 8) * elem_bytes;                                                 // probabilities
  bytes += 3 * hb * sizeof(float);                                                     // m, l, alpha
  return bytes;
}

// Everything a launch needs, decided on the host.
struct decode_plan {
  int m_tiles = 0;                       // 16-head m-tiles per CTA
  int tile_tokens = decode_tile_tokens;  // keys per tile
  int pairs_per_warp = 0;                // 16-channel value pairs per warp
  int heads_per_block = 0;               // query heads a CTA owns (<= 16 * m_tiles)
  int head_blocks = 0;                   // CTAs per (sequence, split) along the heads
  int num_splits = 0;                    // KV splits per sequence
  std::size_t smem_bytes = 0;
  std::size_t workspace_bytes = 0;  // fp32 partial outputs and lse when num_splits > 1
};

// Inputs of the planner (all host values).
struct decode_problem {
  int batch = 0;
  int heads_per_group = 0;  // query heads that share one cached row: all heads (MLA) or one KV group (GQA)
  int groups = 0;           // row groups: 1 (MLA) or num_kv_heads (GQA)
  int key_width = 0;        // elements of a key row: latent_rank + rope_dim (MLA) or head_dim (GQA)
  int value_width = 0;      // elements of a value row: latent_rank (MLA) or head_dim (GQA)
  bool separate_values = false;
  int elem_bytes = 2;
  int max_seq_len = 0;  // longest sequence of the batch
  int sliding_window = 0;
  int requested_splits = 0;              // 0: automatic
  int max_m_tiles = decode_max_m_tiles;  // cap on 16-head m-tiles per CTA (1, 2 or 4)
  int sm_count = 132;                    // multiprocessors of the device
  std::size_t max_smem = 227 * 1024;     // opt-in shared memory per block of the device
};

// CTAs of `smem_bytes` that one multiprocessor holds at once: by shared memory (228 KiB per SM, 1 KiB
// reserved per block), at most 2 (the kernels use 120 to 230 registers per thread at 256 threads).
inline int decode_ctas_per_sm(std::size_t smem_bytes) {
  const std::size_t by_smem = (228 * 1024) / (smem_bytes + 1024);
  return static_cast<int>(std::max<std::size_t>(1, std::min<std::size_t>(by_smem, 2)));
}

// Splits per sequence. A requested count is capped by tiles and decode_max_splits. Automatic: the count
// s in [1, min(tiles, visible / 256, decode_max_splits)] that minimises the modelled step time
//   rounds(s) * bytes_per_cta(s),  rounds = ceil(batch * ctas_per_split * s / (SMs * ctas_per_sm)),
//   bytes_per_cta = visible / s * row_bytes + (s > 1 ? heads_per_cta * value_width * 8 : 0)
// (cache bytes a CTA streams, plus its fp32 partial written and read back by the combine), the smallest s
// on ties. This avoids a last, mostly empty wave (batch 64 on 132 SMs: 2 splits fill 128 slots in one
// round, where 5 would need 3 rounds).
inline int decode_num_splits(const decode_problem& p, int ctas_per_split, int heads_per_cta, std::size_t smem_bytes,
                             int tile_tokens = decode_tile_tokens) {
  const int visible = mla::decode_visible_range(p.max_seq_len, p.sliding_window).size();
  const int tiles = std::max(1, mla::ceil_div(visible, tile_tokens));
  if (p.requested_splits > 0) return std::max(1, std::min({p.requested_splits, tiles, decode_max_splits}));
  const int most = std::max(1, std::min({tiles, visible / 256, decode_max_splits}));
  const double slots = static_cast<double>(p.sm_count) * decode_ctas_per_sm(smem_bytes);
  const double row_bytes = static_cast<double>(p.key_width + (p.separate_values ? p.value_width : 0)) * p.elem_bytes;
  const double ctas = std::max(1.0, static_cast<double>(p.batch) * ctas_per_split);
  int best = 1;
  double best_cost = 0;
  for (int s = 1; s <= most; ++s) {
    const double rounds = std::ceil(ctas * s / slots);
    const double per_cta = static_cast<double>(visible) / s * row_bytes +
                           (s > 1 ? static_cast<double>(heads_per_cta) * p.value_width * 8.0 : 0.0);
    const double cost = rounds * per_cta;
    if (s == 1 || cost < best_cost * (1.0 - 1e-9)) best = s, best_cost = cost;
  }
  return best;
}

// The plan, or an mla::error naming the value that cannot be run; `owner` prefixes the messages.
inline decode_plan make_decode_plan(const decode_problem& p, const char* owner) {
  check(p.batch >= 0, owner, ": batch must be >= 0, found ", p.batch);
  check(p.heads_per_group > 0, owner, ": query heads per cached row must be > 0, found ", p.heads_per_group);
  check(p.groups > 0, owner, ": groups must be > 0, found ", p.groups);
  check(p.key_width > 0 && p.key_width % 16 == 0, owner, ": key row width ", p.key_width,
        " is not supported: it must be a positive multiple of 16");
  check(p.value_width > 0 && p.value_width <= p.key_width + (p.separate_values ? 1 << 20 : 0), owner, ": value width ",
        p.value_width, " must be positive and (for a latent cache) at most the key width ", p.key_width);
  check(decode_pairs_per_warp(p.value_width) > 0, owner, ": value width ", p.value_width,
        " is not supported: it must be a multiple of 16 and at most 768");
  check(p.elem_bytes == 2, owner, ": the CUDA kernels take 2-byte elements (bf16, fp16), found ", p.elem_bytes);
  check(p.requested_splits >= 0, owner, ": num_splits must be >= 0 (0 = automatic), found ", p.requested_splits);
  check(p.sliding_window >= 0, owner, ": sliding_window must be >= 0, found ", p.sliding_window);
  check(p.max_seq_len >= 0, owner, ": max_seq_len must be >= 0, found ", p.max_seq_len);
  decode_plan plan;
  plan.pairs_per_warp = decode_pairs_per_warp(p.value_width);
  check(p.max_m_tiles == 1 || p.max_m_tiles == 2 || p.max_m_tiles == 4, owner,
        ": query heads per CTA must be 16, 32 or 64, found ", 16 * p.max_m_tiles);
  plan.m_tiles = decode_m_tiles(p.heads_per_group, plan.pairs_per_warp, p.max_m_tiles);
  // Narrow separate K and V rows (GQA) take 64-key tiles when the warps can cover them (<= 2 m-tiles).
  plan.tile_tokens = p.separate_values && decode_score_slices(plan.m_tiles, decode_wide_tile_tokens) > 0
                         ? decode_wide_tile_tokens
                         : decode_tile_tokens;
  auto smem = [&](int mt) {
    return decode_smem_bytes(mt, p.key_width, p.value_width, p.separate_values, p.elem_bytes, plan.tile_tokens);
  };
  while (plan.m_tiles > 1 && smem(plan.m_tiles) > p.max_smem) plan.m_tiles /= 2;
  plan.smem_bytes = smem(plan.m_tiles);
  check(plan.smem_bytes <= p.max_smem, owner, ": key width ", p.key_width, " needs ", plan.smem_bytes,
        " bytes of shared memory per block, the device allows ", p.max_smem);
  plan.heads_per_block = std::min(p.heads_per_group, 16 * plan.m_tiles);
  plan.head_blocks = p.groups * mla::ceil_div(p.heads_per_group, plan.heads_per_block);
  plan.num_splits = decode_num_splits(p, plan.head_blocks, plan.heads_per_block, plan.smem_bytes, plan.tile_tokens);
  const std::size_t rows = static_cast<std::size_t>(p.batch) * plan.num_splits * p.heads_per_group * p.groups;
  plan.workspace_bytes = plan.num_splits > 1 ? rows * (static_cast<std::size_t>(p.value_width) + 1) * sizeof(float) : 0;
  return plan;
}

}  // namespace mla::cuda
