// mla::cpu::mla_decode: absorbed MLA decode attention over a paged latent cache (formats.md §2.5).
//
// Per sequence b (one new token, at position seq_len[b] - 1, already in the cache) and head h:
//   score(t) = softmax_scale * (q̃[b,h] . c_t + q_pe[b,h] . k_pe_t)     for visible keys t
//   p = softmax over [score(t) for visible t, sink_h]                   (the sink is not scaled)
//   out[b,h] = sum_t p(t) c_t   [latent_rank]      lse[b,h] = ln(sum_t exp(score(t)) + exp(sink_h))
// The caller applies W_UV (and o_proj) to `out` afterwards. Visible keys: [max(0, len - window), len), all
// of [0, len) with window 0.
//
// Why it is fast: all heads share one latent row per token, so the kernel takes a tile of 16 rows and runs
// every head over it while it sits in L1/L2 (detail::attend_tile); the cache is read once per step,
// seq_len * (latent_rank + rope_dim) * sizeof(Elem) bytes per sequence. Long contexts are cut into KV splits
// (options.num_splits, automatic by default) that run in parallel over (sequence, split) and are merged by
// log-sum-exp. The work per key is 2 * heads * (2 * latent_rank + rope_dim) FLOPs, i.e. about
// 4 * heads / sizeof(Elem) FLOP per cached byte: with tens of heads a CPU runs out of FLOPs before memory
// bandwidth (bench/RESULTS.md), unlike the GQA baseline (about 2 * group / sizeof(Elem) FLOP per byte).
// So a bf16 cache is read in bf16 pairs by vdpbf16ps where the CPU has AVX512-BF16 (bf16_dot.hpp: twice
// the multiply-adds per instruction; queries and softmax weights in bf16), else converted to float.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/supported_shapes.hpp"
#include "mla/cpu/bf16_dot.hpp"
#include "mla/cpu/decode_common.hpp"
#include "mla/cpu/element.hpp"
#include "mla/core/paged_cache.hpp"

namespace mla::cpu {

// Arguments of one MLA decode step. Elem is the cache element type (float, bf16, or int8 with per-token
// scales); queries, outputs and all arithmetic are float. The batch size is pages.num_seqs.
template <class Elem>
struct mla_decode_args {
  const float* q_latent = nullptr;      // q̃ = W_UK^T q_nope per head, [batch, num_heads, latent_rank]
  const float* q_pe = nullptr;          // RoPE'd query part, [batch, num_heads, rope_dim]
  const Elem* cache = nullptr;          // [pages.num_pages, pages.page_size, latent_rank + rope_dim]: c then k_pe
  const Elem* rope_cache = nullptr;     // optional: k_pe apart, [num_pages, page_size, rope_dim]; then `cache`
                                        // holds c alone, [num_pages, page_size, latent_rank] (FlashInfer's ckv/kpe)
  const float* cache_scales = nullptr;  // int8 caches only: [num_pages, page_size, 2], per token the scales of
                                        // its c and its k_pe (element = int8 * scale; quantize_latent_row)
  page_table_view pages;                // page table and lengths (>= 1 each) of the batch
  int num_heads = 0;
  decode_options options;
  float* out = nullptr;  // [batch, num_heads, latent_rank]
  float* lse = nullptr;  // [batch, num_heads], natural log, sinks included; may be null
};

// Whether mla_decode over an Elem cache of these widths takes the AVX512-BF16 pairs path (bf16_dot.hpp):
// a bf16 cache, options.bf16_dot, a CPU that has the instructions, and even widths (pairs never straddle
// the c / k_pe boundary).
template <class Elem>
bool mla_decode_uses_bf16_dot(const decode_options& opt, int latent_rank, int rope_dim) {
  return std::is_same_v<Elem, bf16> && opt.bf16_dot && latent_rank % 2 == 0 && rope_dim % 2 == 0 &&
         cpu_has_avx512_bf16();
}

namespace detail {

// The kernel body, shared by every shape. Rank, Rope > 0 make the widths compile-time constants (then
// runtime_rank, runtime_rope must equal them): the inner loops of decode_common.hpp get constant trip counts
// and nothing else changes (same scratch layout, same operations in the same order, bit-identical results).
// Rank = Rope = 0: the widths are the runtime ones, one body per element type for every shape.
// The constants buy no speed (bench/cpu/mla_decode_width_bench.cpp, issue 27: within noise of the runtime
// body on the gpt-oss, SmolLM2 and DeepSeek-V3 shapes): each trip of the inner loops is already 8 to 16
// independent vector FMAs (scores: 4 or 8 tokens x 16 to 64 heads; value sum: 16 channels x 1 to 8 heads x
// 1 to 8 tokens) over tens to hundreds of trips, so a known count saves only loop overhead the FMAs hide.
// They would cost compile time: one body per supported shape made mla_cpu_tests 3.5x slower to build. So
// mla_decode runs the runtime body; the compile-time instantiation stays for that bench and for the test
// that keeps both bit-identical.
template <class Elem, int Rank = 0, int Rope = 0>
void mla_decode_impl(const mla_decode_args<Elem>& a, const int runtime_rank, const int runtime_rope) {
  static_assert(Rank >= 0 && Rope >= 0 && (Rank > 0) == (Rope > 0),
                "mla::cpu::mla_decode_impl: Rank and Rope are both compile-time (> 0) or both runtime (0)");
  constexpr int KW = Rank > 0 ? Rank + Rope : 0;  // key width, 0: runtime
  const int rank = width_or<Rank>(runtime_rank);
  const int rope = width_or<Rope>(runtime_rope);
  const int width = rank + rope;               // key row: c [rank] then k_pe [rope]
  const bool split = a.rope_cache != nullptr;  // k_pe in its own tensor
  const int row_width = split ? rank : width;  // elements per token in `cache`
  constexpr const char* owner = "mla::cpu::mla_decode";
  check(rank == runtime_rank && rope == runtime_rope, owner, ": compile-time widths (", Rank, ", ", Rope,
        ") called with runtime widths (", runtime_rank, ", ", runtime_rope, ")");

  validate(a.pages, owner, 1);
  check(a.num_heads > 0, owner, ": num_heads must be > 0, found ", a.num_heads);
  validate_options(a.options, a.num_heads, owner);
  const int batch = a.pages.num_seqs;
  if (batch == 0) return;
  check(a.q_latent != nullptr, owner, ": q_latent is null");
  check(a.q_pe != nullptr, owner, ": q_pe is null");
  check(a.cache != nullptr, owner, ": cache is null");
  check(a.out != nullptr, owner, ": out is null");
  constexpr bool int8 = std::is_same_v<Elem, std::int8_t>;
  check(!int8 || a.cache_scales != nullptr, owner, ": cache_scales is null (an int8 cache needs its scales)");

  const int heads = a.num_heads;
  const int hp = padded_heads(heads);
  // Per-thread scratch: transposed scaled queries qt [width][hp], attend_tile's scratch, a zero row for
  // the padding keys of a partial tile, bf16 staging [16][width], and bf16 weight pairs [8][hp].
  const std::size_t qt_floats = align_up16(static_cast<std::size_t>(width) * hp);
  const std::size_t attend_floats = align_up16(attend_scratch_floats(heads));
  const std::size_t zero_floats = align_up16(static_cast<std::size_t>(width));
  // Split caches are staged as whole rows [c | k_pe] (float), like a bf16 cache.
  const std::size_t staging_floats =
      split ? static_cast<std::size_t>(tile_tokens) * width : value_staging_floats<Elem>(width);
  const std::size_t staging_aligned = align_up16(staging_floats);
  const std::size_t pairs_floats = align_up16(static_cast<std::size_t>(tile_tokens / 2) * hp);  // bf16 weight pairs
  const std::size_t scratch = qt_floats + attend_floats + zero_floats + staging_aligned + pairs_floats;
  const page_table_view pages = a.pages;
  const float scale = a.options.softmax_scale;
  // bf16 pairs (bf16_dot.hpp): qt holds qt2 [width / 2][hp] (32-bit words), rows are read as stored.
  const bool pairs = mla_decode_uses_bf16_dot<Elem>(a.options, rank, rope);

  auto item = [&](int b, token_range range, float* buf, float* o, float* m, float* d) {
    float* const qt = buf;
    float* const s = qt + qt_floats;
    float* const tmp = s + static_cast<std::size_t>(tile_tokens) * hp;
    float* const zeros = s + attend_floats;
    float* const staging = zeros + zero_floats;
    float* const weights = staging + staging_aligned;
    // qt[i][h] = softmax_scale * [q̃_h | q_pe_h][i], so a score is one dot product with the cached row;
    // with bf16 pairs, qt2[p][h] = the bf16 pair of elements 2p, 2p + 1.
    const auto q_scaled = [&](int h, int i) {
      const std::ptrdiff_t bh = static_cast<std::ptrdiff_t>(b) * heads + h;
      return h >= heads ? 0.0f : scale * (i < rank ? a.q_latent[bh * rank + i] : a.q_pe[bh * rope + (i - rank)]);
    };
    if (pairs) {
      for (int p = 0; p < width / 2; ++p)
        for (int h = 0; h < hp; ++h) {
          const std::uint32_t word = bf16_pair(q_scaled(h, 2 * p), q_scaled(h, 2 * p + 1));
          std::memcpy(qt + static_cast<std::ptrdiff_t>(p) * hp + h, &word, sizeof word);
        }
    } else {
      for (int i = 0; i < width; ++i) {
        float* qi = qt + static_cast<std::ptrdiff_t>(i) * hp;
        for (int h = 0; h < hp; ++h) qi[h] = q_scaled(h, i);
      }
    }
    std::fill(zeros, zeros + width, 0.0f);
    // Row pointers of the tile starting at t0 (n tokens), one page run at a time.
    // (rope_rows, when not null, gets the k_pe rows of a split cache.)
    auto gather = [&](int t0, int n, const Elem** rows, const Elem** rope_rows) {
      int k = 0;
      for (int t = t0; t < t0 + n;) {
        const page_run run = page_run_at(pages, b, t, t0 + n);
        const std::ptrdiff_t slot = static_cast<std::ptrdiff_t>(run.page) * pages.page_size + run.slot_begin;
        const Elem* base = a.cache + slot * row_width;
        for (int c = 0; c < run.count; ++c, ++k) {
          rows[k] = base + static_cast<std::ptrdiff_t>(c) * row_width;
          if (rope_rows != nullptr) rope_rows[k] = a.rope_cache + (slot + c) * rope;
        }
        t += run.count;
      }
    };
    const Elem* rows[tile_tokens];
    const Elem* rope_rows[tile_tokens];
    const Elem* next_rows[tile_tokens];
    const float* keys[tile_tokens];
    row_prefetcher pf;
    const int pf_steps = score_block_count(hp);
    for (int t0 = range.begin; t0 < range.end; t0 += tile_tokens) {
      const int n = range.end - t0 < tile_tokens ? range.end - t0 : tile_tokens;
      gather(t0, n, rows, split ? rope_rows : nullptr);
      // Prefetch the next tile during this one's scores.
      pf.reset(static_cast<int>(row_width * sizeof(Elem)));
      const int t1 = t0 + tile_tokens;
      const int n1 = range.end - t1 < tile_tokens ? range.end - t1 : tile_tokens;
      if (n1 > 0) {
        gather(t1, n1, next_rows, nullptr);
        for (int t = 0; t < n1; ++t) pf.add(next_rows[t]);
      }
      pf.plan(pf_steps);
      if constexpr (std::is_same_v<Elem, bf16>) {
        if (pairs) {
          // Keys and values as stored: c from the row, k_pe after it or from its own tensor; the padding
          // keys read the zero row. Weights rounded to bf16 and paired by tokens for the value sum.
          const bf16* c_rows[tile_tokens];
          const bf16* pe_rows[tile_tokens];
          const bf16* zero_row = reinterpret_cast<const bf16*>(zeros);  // width floats of 0 bits
          for (int t = 0; t < tile_tokens; ++t) {
            c_rows[t] = t < n ? rows[t] : zero_row;
            pe_rows[t] = t >= n ? zero_row : split ? rope_rows[t] : rows[t] + rank;
          }
          attend_tile_bf16<Rank>(qt, heads, c_rows, rank / 2, pe_rows, rope / 2, c_rows, rank, n, s, tmp, m, d, o, rank,
                                 weights, pf);
          continue;
        }
      }
      // Float views of the rows (bf16 and int8 are converted once, into staging): the keys are the whole
      // rows, the values their first `rank` elements.
      if constexpr (int8) {
        for (int t = 0; t < n; ++t) {
          const std::ptrdiff_t slot = (rows[t] - a.cache) / row_width;
          const float sc = a.cache_scales[2 * slot], spe = a.cache_scales[2 * slot + 1];
          const std::int8_t* pe = split ? rope_rows[t] : rows[t] + rank;
          float* row = staging + static_cast<std::ptrdiff_t>(t) * width;
          for (int j = 0; j < width_or<Rank>(rank); ++j) row[j] = static_cast<float>(rows[t][j]) * sc;
          for (int j = 0; j < width_or<Rope>(rope); ++j) row[rank + j] = static_cast<float>(pe[j]) * spe;
          keys[t] = row;
        }
      } else if (split) {
        for (int t = 0; t < n; ++t) {
          float* row = staging + static_cast<std::ptrdiff_t>(t) * width;
          for (int j = 0; j < width_or<Rank>(rank); ++j) row[j] = to_float(rows[t][j]);
          for (int j = 0; j < width_or<Rope>(rope); ++j) row[rank + j] = to_float(rope_rows[t][j]);
          keys[t] = row;
        }
      } else {
        value_rows<KW>(rows, n, width, staging, keys);
      }
      for (int t = n; t < tile_tokens; ++t) keys[t] = zeros;
      attend_tile<KW, Rank>(qt, heads, keys, width, keys, rank, n, s, tmp, m, d, o, rank, pf);
    }
  };
  run_split_decode(pages, heads, rank, a.options, scratch, a.out, a.lse, item);
}

}  // namespace detail

// The decode step for a compile-time shape (cache rows of Shape::cached_elements_per_token elements).
// Throws mla::error on inconsistent arguments. Runs the runtime-width body (see mla_decode_impl for why).
template <class Shape, class Elem>
void mla_decode(const mla_decode_args<Elem>& a) {
  static_assert(is_mla_shape_v<Shape>, "mla::cpu::mla_decode: Shape must be an mla::mla_shape");
  static_assert(is_cache_element_v<Elem>, "mla::cpu::mla_decode: Elem must be float, mla::cpu::bf16 or std::int8_t");
  detail::mla_decode_impl(a, Shape::latent_rank, Shape::rope_dim);
}

// The shapes the runtime entry below reaches: every supported shape (each adds only a call to the shared
// kernel body, so the whole list compiles quickly).
using mla_decode_shapes = supported_shapes;

// Runtime entry: the kernel for `shape`, found in `list` by mla::dispatch_shape. Throws mla::error for a
// shape that is not in the list.
template <class Elem, class... Shapes>
void mla_decode_dispatch(std::tuple<Shapes...> list, runtime_shape shape, const mla_decode_args<Elem>& args) {
  dispatch_shape(list, shape, [&](auto s) { mla_decode<decltype(s)>(args); });
}

template <class Elem>
void mla_decode_dispatch(runtime_shape shape, const mla_decode_args<Elem>& args) {
  mla_decode_dispatch(mla_decode_shapes{}, shape, args);
}

}  // namespace mla::cpu
