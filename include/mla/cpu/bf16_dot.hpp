// mla::cpu scores of a bf16 cache with AVX512-BF16 dot products (vdpbf16ps), where the CPU has them.
//
// vdpbf16ps takes two vectors of 32 bf16 and adds to each of 16 float lanes the sum of one pair of products:
//   acc[l] += a[2l] * b[2l] + a[2l + 1] * b[2l + 1]
// (products exact, the sum rounded to nearest even; denormals flushed). The decode kernels vectorise scores
// over heads (decode_common.hpp): a cached element is broadcast against 16 heads. Here a *pair* of cached
// elements (k_2p, k_2p+1), one 32-bit word of the row as stored, is broadcast against the heads' query pairs
// qt2[p][h] = (bf16(q_h,2p), bf16(q_h,2p+1)), so one instruction does the 32 multiply-adds that took two
// float FMAs, and the cached row is read as stored, with no conversion to float.
//
// The value sum pairs two tokens the same way: the weights of tokens 2k and 2k + 1 as one bf16 word broadcast
// against their two value rows interleaved (tile_pv_bf16).
//
// The price is the query and the softmax weights in bf16 (8 significant bits, as in the GPU kernels that read
// bf16 caches): a score moves by about 2^-9 |q| |k| / sqrt(width) against the float query, and each weight by
// up to 2^-9 of itself; the row sum adds the rounded weights, so the output stays a convex combination of
// the values. Accumulation is in float.
//
// The code is compiled for AVX512-BF16 by a target attribute, whatever the build's -march, and chosen at
// run time (cpu_has_avx512_bf16): one binary runs on CPUs with and without it. Not x86 or not GCC/Clang:
// never chosen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "mla/core/error.hpp"
#include "mla/cpu/decode_common.hpp"
#include "mla/cpu/element.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MLA_CPU_BF16_DOT 1
#include <immintrin.h>
#else
#define MLA_CPU_BF16_DOT 0
#endif

namespace mla::cpu {

// Whether this CPU (and OS) runs AVX512-BF16 instructions; detected once.
inline bool cpu_has_avx512_bf16() {
#if MLA_CPU_BF16_DOT
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  return yes;
#else
  return false;
#endif
}

namespace detail {

// Two bf16 as one 32-bit word, the first in the low half (the order of two consecutive bf16 in memory).
inline std::uint32_t bf16_pair(float lo, float hi) {
  return static_cast<std::uint32_t>(to_bf16(lo).bits) | (static_cast<std::uint32_t>(to_bf16(hi).bits) << 16);
}

#if MLA_CPU_BF16_DOT
// acc[t][v] += sum over n pairs p of row r[t]'s pair p . q[p][v * 16 ...] (q rows ldq apart).
template <int TB, int HV>
[[gnu::target("avx512f,avx512bf16"), gnu::always_inline]] inline void score_pairs_bf16(__m512 (&acc)[TB][HV],
                                                                                       const float* q,
                                                                                       std::ptrdiff_t ldq,
                                                                                       const bf16* const* r, int n) {
  for (int p = 0; p < n; ++p) {
    const float* qp = q + static_cast<std::ptrdiff_t>(p) * ldq;
    __m512i qv[HV];
    for (int v = 0; v < HV; ++v) qv[v] = _mm512_loadu_si512(qp + v * 16);
    for (int t = 0; t < TB; ++t) {
      std::uint32_t word;
      std::memcpy(&word, r[t] + 2 * p, sizeof word);
      const __m512i x = _mm512_set1_epi32(static_cast<int>(word));
      for (int v = 0; v < HV; ++v) acc[t][v] = _mm512_dpbf16_ps(acc[t][v], (__m512bh)qv[v], (__m512bh)x);
    }
  }
}

// Scores of TB tokens x HV head vectors: s[t][h] = sum_p rows[t] pair p . qt2[p][h] over `pairs` pairs, then
// over pairs_b more from rows_b[t] against qt2[pairs + p] (the k_pe part: the rest of the row, or a tensor
// of its own). qt2 [pairs + pairs_b][ldq] holds bf16 pairs as 32-bit words, in float storage (read by
// vector loads, written by memcpy). Rows are read a word at a time: 2 * pairs (2 * pairs_b) elements each.
// Not inlined, like score_block (decode_common.hpp), and the only way into code of another target.
template <int TB, int HV>
[[gnu::target("avx512f,avx512bf16"), gnu::noinline]] void score_block_bf16(const float* qt2, std::ptrdiff_t ldq,
                                                                           const bf16* const* rows, int pairs,
                                                                           const bf16* const* rows_b, int pairs_b,
                                                                           float* s, std::ptrdiff_t lds) {
  __m512 acc[TB][HV];
  for (int t = 0; t < TB; ++t)
    for (int v = 0; v < HV; ++v) acc[t][v] = _mm512_setzero_ps();
  score_pairs_bf16<TB, HV>(acc, qt2, ldq, rows, pairs);
  score_pairs_bf16<TB, HV>(acc, qt2 + static_cast<std::ptrdiff_t>(pairs) * ldq, ldq, rows_b, pairs_b);
  for (int t = 0; t < TB; ++t)
    for (int v = 0; v < HV; ++v) _mm512_storeu_ps(s + t * lds + v * 16, acc[t][v]);
}

// Weighted value sum of one tile for HB heads with bf16 weights and values:
//   o[h * ldo + j] += sum_k (p[2k][h] v[2k][j] + p[2k+1][h] v[2k+1][j]),  k < pairs, j < vw
// pw [pairs][ldp] holds the weight pairs (p[2k][h], p[2k+1][h]) as 32-bit words (float storage); v [2 * pairs]
// value rows (a missing odd row points to zeros). Per 32 channels, two rows are interleaved word by word
// (vpunpcklwd / vpunpckhwd, within 128-bit lanes: the low half gets channels 8L + 0..3, the high half 8L + 4..7
// of lane L) and each half meets every head's broadcast weight pair; the accumulators are put back in channel
// order (vpermt2ps) when added to o. A tail under 32 channels is read by masked loads.
template <int HB>
[[gnu::target("avx512f,avx512bw,avx512bf16")]] void tile_pv_bf16(const float* pw, std::ptrdiff_t ldp,
                                                                 const bf16* const* v, int pairs, float* o,
                                                                 std::ptrdiff_t ldo, int vw) {
  // Channel c of 16 (L = c / 8, i = c % 8) sits in lane 4L + i of the low accumulator (i < 4) or 4L + i - 4
  // of the high one (index + 16).
  const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  for (int j = 0; j < vw; j += 32) {
    const int w = vw - j < 32 ? vw - j : 32;
    const __mmask32 load_mask = w == 32 ? ~__mmask32(0) : (__mmask32(1) << w) - 1;
    __m512 lo[HB], hi[HB];
    for (int h = 0; h < HB; ++h) lo[h] = _mm512_setzero_ps(), hi[h] = _mm512_setzero_ps();
    for (int k = 0; k < pairs; ++k) {
      const __m512i a = _mm512_maskz_loadu_epi16(load_mask, v[2 * k] + j);
      const __m512i b = _mm512_maskz_loadu_epi16(load_mask, v[2 * k + 1] + j);
      const __m512i ab_lo = _mm512_unpacklo_epi16(a, b), ab_hi = _mm512_unpackhi_epi16(a, b);
      const float* pk = pw + static_cast<std::ptrdiff_t>(k) * ldp;
      for (int h = 0; h < HB; ++h) {
        std::uint32_t word;
        std::memcpy(&word, pk + h, sizeof word);
        const __m512i x = _mm512_set1_epi32(static_cast<int>(word));
        lo[h] = _mm512_dpbf16_ps(lo[h], (__m512bh)ab_lo, (__m512bh)x);
        hi[h] = _mm512_dpbf16_ps(hi[h], (__m512bh)ab_hi, (__m512bh)x);
      }
    }
    const __mmask16 m0 = w >= 16 ? __mmask16(0xffff) : __mmask16((1u << w) - 1);
    const __mmask16 m1 = w >= 32 ? __mmask16(0xffff) : w <= 16 ? __mmask16(0) : __mmask16((1u << (w - 16)) - 1);
    for (int h = 0; h < HB; ++h) {
      float* oh = o + h * ldo + j;
      const __m512 r0 = _mm512_permutex2var_ps(lo[h], first, hi[h]);
      const __m512 r1 = _mm512_permutex2var_ps(lo[h], second, hi[h]);
      _mm512_mask_storeu_ps(oh, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, oh), r0));
      if (m1) _mm512_mask_storeu_ps(oh + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, oh + 16), r1));
    }
  }
}
#endif

// score_block_bf16 over a whole tile (tile_tokens rows; rows past the valid ones point to zeros), hp padded
// heads, the blocks of tile_scores; pf.step() after each block. Only called where cpu_has_avx512_bf16().
inline void tile_scores_bf16(const float* qt2, int hp, const bf16* const* rows, int pairs, const bf16* const* rows_b,
                             int pairs_b, float* s, row_prefetcher& pf) {
#if MLA_CPU_BF16_DOT
  for_score_blocks(hp, [&](auto tb, auto hv, int v0, int t0) {
    score_block_bf16<decltype(tb)::value, decltype(hv)::value>(qt2 + v0 * head_lanes, hp, rows + t0, pairs, rows_b + t0,
                                                               pairs_b, s + t0 * hp + v0 * head_lanes, hp);
    pf.step();
  });
#else
  (void)qt2, (void)hp, (void)rows, (void)pairs, (void)rows_b, (void)pairs_b, (void)s, (void)pf;
  check(false, "mla::cpu::detail::tile_scores_bf16: not compiled for this target");
#endif
}

// Weight pairs of a tile: pw[k][h] = (p[2k][h], p[2k+1][h]) as bf16 in one word, k < ceil(n / 2), h < nh, from
// the weights s [tile_tokens][hp] (already rounded to bf16: tile_softmax<.., true>); a missing p[n] is 0.
inline void weight_pairs(const float* s, int hp, int nh, int n, float* pw) {
  for (int k = 0; 2 * k < n; ++k)
    for (int h = 0; h < nh; ++h) {
      std::uint32_t a, b = 0;
      std::memcpy(&a, s + 2 * k * hp + h, sizeof a);
      if (2 * k + 1 < n) std::memcpy(&b, s + (2 * k + 1) * hp + h, sizeof b);
      const std::uint32_t word = (a >> 16) | (b & 0xffff0000u);
      std::memcpy(pw + static_cast<std::ptrdiff_t>(k) * hp + h, &word, sizeof word);
    }
}

// tile_pv_bf16 for nh heads in the blocks of for_head_blocks: o [nh][ldo] += the tile's weighted values.
inline void tile_pv_bf16_heads(const float* pw, int hp, int nh, const bf16* const* v, int pairs, float* o,
                               std::ptrdiff_t ldo, int vw) {
#if MLA_CPU_BF16_DOT
  for_head_blocks(
      nh, [&](int h0, auto hb) { tile_pv_bf16<decltype(hb)::value>(pw + h0, hp, v, pairs, o + h0 * ldo, ldo, vw); });
#else
  (void)pw, (void)hp, (void)nh, (void)v, (void)pairs, (void)o, (void)ldo, (void)vw;
  check(false, "mla::cpu::detail::tile_pv_bf16_heads: not compiled for this target");
#endif
}

// attend_tile (decode_common.hpp) for bf16 rows read in pairs: one tile of tile_tokens keys (rows past n
// point to zeros; `pairs` pairs from keys[t], then pairs_b from keys_b[t]) against the nh heads of qt2
// [pairs + pairs_b][padded_heads(nh)], the online softmax with the weights rounded to bf16, and the value sum
// over values[t] (vw wide, rows past n point to zeros). weights: scratch for [tile_tokens / 2][hp] words.
template <int VW = 0>
inline void attend_tile_bf16(const float* qt2, int nh, const bf16* const* keys, int pairs, const bf16* const* keys_b,
                             int pairs_b, const bf16* const* values, int vw, int n, float* s, float* tmp, float* m,
                             float* d, float* o, std::ptrdiff_t ldo, float* weights, row_prefetcher& pf) {
  const int hp = padded_heads(nh);
  tile_scores_bf16(qt2, hp, keys, pairs, keys_b, pairs_b, s, pf);
  tile_softmax<VW, true>(s, hp, nh, n, m, d, o, ldo, vw, tmp);
  weight_pairs(s, hp, nh, n, weights);
  tile_pv_bf16_heads(weights, hp, nh, values, (n + 1) / 2, o, ldo, vw);
}

}  // namespace detail
}  // namespace mla::cpu
