// mla::cpu::gqa_decode: grouped-query decode attention over paged K and V caches, the baseline that
// mla_decode is measured against. Same options, output and lse conventions as mla_decode.
//
// Query head h uses KV head g = h / (num_heads / num_kv_heads) (formats.md §1.4). Per sequence b and head h:
//   score(t) = softmax_scale * q[b,h] . K_t[g]          for visible keys t
//   p = softmax over [score(t), sink_h]      out[b,h] = sum_t p(t) V_t[g]   [head_dim]
//
// Each token tile's K and V rows (all KV heads of a token are contiguous) are loaded once and every KV
// group runs its query heads over its slice while it is in cache, so a step reads
// seq_len * 2 * num_kv_heads * head_dim * sizeof(Elem) bytes per sequence. A bf16 cache is read in bf16 pairs
// (bf16_dot.hpp) where the CPU has AVX512-BF16 and options.bf16_dot allows, as in mla_decode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "mla/core/error.hpp"
#include "mla/cpu/bf16_dot.hpp"
#include "mla/cpu/decode_common.hpp"
#include "mla/cpu/element.hpp"
#include "mla/core/paged_cache.hpp"

namespace mla::cpu {

// Arguments of one GQA decode step; Elem is the cache element type (float or bf16). Batch = pages.num_seqs.
template <class Elem>
struct gqa_decode_args {
  const float* q = nullptr;       // RoPE'd queries, [batch, num_heads, head_dim]
  const Elem* k_cache = nullptr;  // [pages.num_pages, pages.page_size, num_kv_heads, head_dim]
  const Elem* v_cache = nullptr;  // same layout as k_cache
  page_table_view pages;          // page table and lengths (>= 1 each), shared by K and V
  int num_heads = 0;              // query heads, a multiple of num_kv_heads
  int num_kv_heads = 0;
  int head_dim = 0;
  decode_options options;
  float* out = nullptr;  // [batch, num_heads, head_dim]
  float* lse = nullptr;  // [batch, num_heads], natural log, sinks included; may be null
};

// Whether gqa_decode over an Elem cache with this head_dim takes the AVX512-BF16 path (bf16_dot.hpp).
template <class Elem>
bool gqa_decode_uses_bf16_dot(const decode_options& opt, int head_dim) {
  return std::is_same_v<Elem, bf16> && opt.bf16_dot && head_dim % 2 == 0 && cpu_has_avx512_bf16();
}

template <class Elem>
void gqa_decode(const gqa_decode_args<Elem>& a) {
  static_assert(std::is_same_v<Elem, float> || std::is_same_v<Elem, bf16>,
                "mla::cpu::gqa_decode: Elem must be float or mla::cpu::bf16");
  constexpr const char* owner = "mla::cpu::gqa_decode";
  validate(a.pages, owner, 1);
  check(a.num_kv_heads > 0, owner, ": num_kv_heads must be > 0, found ", a.num_kv_heads);
  check(a.num_heads > 0 && a.num_heads % a.num_kv_heads == 0, owner, ": num_heads = ", a.num_heads,
        ", expected a positive multiple of num_kv_heads = ", a.num_kv_heads);
  check(a.head_dim > 0, owner, ": head_dim must be > 0, found ", a.head_dim);
  validate_options(a.options, a.num_heads, owner);
  const int batch = a.pages.num_seqs;
  if (batch == 0) return;
  check(a.q != nullptr, owner, ": q is null");
  check(a.k_cache != nullptr, owner, ": k_cache is null");
  check(a.v_cache != nullptr, owner, ": v_cache is null");
  check(a.out != nullptr, owner, ": out is null");

  const int heads = a.num_heads, kv_heads = a.num_kv_heads, dim = a.head_dim;
  const int group = heads / kv_heads;
  const std::ptrdiff_t row = static_cast<std::ptrdiff_t>(kv_heads) * dim;  // elements per token
  using namespace detail;
  const int hp = padded_heads(group);
  // Per-thread scratch: transposed scaled queries qt [kv_heads][dim][hp], attend_tile's scratch for one
  // group, a zero row for padding keys, bf16 staging for K and V [16][dim] each.
  const std::size_t qt_floats = align_up16(static_cast<std::size_t>(kv_heads) * dim * hp);
  const std::size_t attend_floats = align_up16(attend_scratch_floats(group));
  const std::size_t zero_floats = align_up16(static_cast<std::size_t>(dim));
  const std::size_t staging_floats = align_up16(value_staging_floats<Elem>(dim));
  const std::size_t pairs_floats = align_up16(static_cast<std::size_t>(tile_tokens / 2) * hp);  // bf16 weight pairs
  const std::size_t scratch = qt_floats + attend_floats + zero_floats + 2 * staging_floats + pairs_floats;
  const page_table_view pages = a.pages;
  const float scale = a.options.softmax_scale;
  // bf16 pairs: qt holds qt2 [kv_heads][dim / 2][hp] (32-bit words), rows are read as stored.
  const bool pairs = gqa_decode_uses_bf16_dot<Elem>(a.options, dim);

  auto item = [&](int b, token_range range, float* buf, float* o, float* m, float* d) {
    float* const qt = buf;
    float* const s = qt + qt_floats;
    float* const tmp = s + static_cast<std::size_t>(tile_tokens) * hp;
    float* const zeros = s + attend_floats;
    float* const k_staging = zeros + zero_floats;
    float* const v_staging = k_staging + staging_floats;
    float* const weights = v_staging + staging_floats;
    // qt[g][i][hh] = softmax_scale * q[b, g * group + hh, i] (zero for the padding heads hh >= group); with
    // bf16 pairs, qt2[g][p][hh] = the bf16 pair of elements 2p, 2p + 1 (the group's block is half as long).
    const float* qb = a.q + static_cast<std::ptrdiff_t>(b) * heads * dim;
    const auto q_scaled = [&](int g, int hh, int i) {
      return hh < group ? scale * qb[(static_cast<std::ptrdiff_t>(g) * group + hh) * dim + i] : 0.0f;
    };
    for (int g = 0; g < kv_heads; ++g)
      if (pairs) {
        for (int p = 0; p < dim / 2; ++p)
          for (int hh = 0; hh < hp; ++hh) {
            const std::uint32_t word = bf16_pair(q_scaled(g, hh, 2 * p), q_scaled(g, hh, 2 * p + 1));
            std::memcpy(qt + (static_cast<std::ptrdiff_t>(g) * dim / 2 + p) * hp + hh, &word, sizeof word);
          }
      } else {
        for (int i = 0; i < dim; ++i) {
          float* qi = qt + (static_cast<std::ptrdiff_t>(g) * dim + i) * hp;
          for (int hh = 0; hh < hp; ++hh) qi[hh] = q_scaled(g, hh, i);
        }
      }
    std::fill(zeros, zeros + dim, 0.0f);
    // Element offsets in K and V of the rows of the tile starting at t0 (n tokens).
    auto gather = [&](int t0, int n, std::ptrdiff_t* offsets) {
      int k = 0;
      for (int t = t0; t < t0 + n;) {
        const page_run run = page_run_at(pages, b, t, t0 + n);
        const std::ptrdiff_t base = (static_cast<std::ptrdiff_t>(run.page) * pages.page_size + run.slot_begin) * row;
        for (int c = 0; c < run.count; ++c) offsets[k++] = base + c * row;
        t += run.count;
      }
    };
    std::ptrdiff_t offsets[tile_tokens];
    std::ptrdiff_t next_offsets[tile_tokens];
    const Elem* k_rows[tile_tokens];
    const Elem* v_rows[tile_tokens];
    const float* keys[tile_tokens];
    const float* values[tile_tokens];
    row_prefetcher pf;
    const int pf_steps = kv_heads * score_block_count(hp);
    for (int t0 = range.begin; t0 < range.end; t0 += tile_tokens) {
      const int n = range.end - t0 < tile_tokens ? range.end - t0 : tile_tokens;
      gather(t0, n, offsets);
      // Prefetch the next tile's K and V rows during this one.
      pf.reset(static_cast<int>(row * static_cast<std::ptrdiff_t>(sizeof(Elem))));
      const int t1 = t0 + tile_tokens;
      const int n1 = range.end - t1 < tile_tokens ? range.end - t1 : tile_tokens;
      if (n1 > 0) {
        gather(t1, n1, next_offsets);
        for (int t = 0; t < n1; ++t) pf.add(a.k_cache + next_offsets[t]), pf.add(a.v_cache + next_offsets[t]);
      }
      pf.plan(pf_steps);
      for (int g = 0; g < kv_heads; ++g) {  // all groups while the tile's rows are hot
        for (int t = 0; t < n; ++t) {
          k_rows[t] = a.k_cache + offsets[t] + static_cast<std::ptrdiff_t>(g) * dim;
          v_rows[t] = a.v_cache + offsets[t] + static_cast<std::ptrdiff_t>(g) * dim;
        }
        const std::ptrdiff_t h0 = static_cast<std::ptrdiff_t>(g) * group;
        if constexpr (std::is_same_v<Elem, bf16>) {
          if (pairs) {
            const bf16* zero_row = reinterpret_cast<const bf16*>(zeros);  // dim floats of 0 bits
            const bf16* kp[tile_tokens];
            const bf16* vp[tile_tokens];
            for (int t = 0; t < tile_tokens; ++t)
              kp[t] = t < n ? k_rows[t] : zero_row, vp[t] = t < n ? v_rows[t] : zero_row;
            attend_tile_bf16(qt + static_cast<std::ptrdiff_t>(g) * dim / 2 * hp, group, kp, dim / 2, kp, 0, vp, dim, n,
                             s, tmp, m + h0, d + h0, o + h0 * dim, dim, weights, pf);
            continue;
          }
        }
        value_rows(k_rows, n, dim, k_staging, keys);
        for (int t = n; t < tile_tokens; ++t) keys[t] = zeros;
        value_rows(v_rows, n, dim, v_staging, values);
        attend_tile(qt + static_cast<std::ptrdiff_t>(g) * dim * hp, group, keys, dim, values, dim, n, s, tmp, m + h0,
                    d + h0, o + h0 * dim, dim, pf);
      }
    }
  };
  detail::run_split_decode(pages, heads, dim, a.options, scratch, a.out, a.lse, item);
}

}  // namespace mla::cpu
