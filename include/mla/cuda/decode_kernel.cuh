// The decode attention kernel shared by mla_decode (absorbed MLA over the latent cache) and gqa_decode (the
// baseline), and the split-KV combine kernel. Host operators live in mla_decode.cuh / gqa_decode.cuh; the
// launch arithmetic in decode_plan.hpp; the page walk, split ranges and softmax merge in mla/core/*.hpp
// (MLA_HOST_DEVICE, tested on the CPU).
//
// One CTA = (row group x head block, split, sequence). Every query head of the block reads the same cached
// row per token ("MQA over a tile"):
//   MLA: key row = [c (latent_rank) | k_pe (rope_dim)], value row = c, queries [q̃ | q_pe]
//   GQA: key row = K[g] (head_dim), value row = V[g], queries q of the heads of group g
// Per tile of 32 tokens (64 for GQA; double-buffered with cp.async, zero-filled past the range):
//   S = Q K^T            [16 mt, 32]    mma over the key width, warps split (m-tile, token block, k-slice)
//   online softmax       exp2 with the scale folded, P rounded to Elem; row sums use the rounded P
//   O = alpha O + P V    [16 mt, value_width] fp32 in registers; warp w owns 16-channel pairs w, w+8, ...
// With one split the sinks enter the final normalisation; with several, each CTA writes an fp32 partial
// (out_j, lse_j) and split_combine_kernel merges them (softmax_merge.hpp).
#pragma once

#include <cuda_runtime.h>

#include <cub/warp/warp_reduce.cuh>
#include <cstddef>

#include "mla/core/paged_cache.hpp"
#include "mla/core/softmax_merge.hpp"
#include "mla/cuda/decode_plan.hpp"
#include "mla/cuda/warp_mma.cuh"

namespace mla::cuda::detail {

using mla::page_index;

template <class Elem>
struct decode_kernel_params {
  const Elem* q_a = nullptr;  // [batch, heads, q_a_width]: first query channels (MLA q̃, GQA q)
  const Elem* q_b = nullptr;  // [batch, heads, key_width - q_a_width]: the rest (MLA q_pe), or null
  int q_a_width = 0;
  const Elem* keys = nullptr;         // paged [num_pages, page_size, key_row_stride]
  std::ptrdiff_t key_row_stride = 0;  // elements per token in the key storage
  int key_width = 0;                  // key elements a head block reads per token
  const Elem* values = nullptr;       // paged values, or null: values are the first value_width of a key row
  std::ptrdiff_t value_row_stride = 0;
  int value_width = 0;
  mla::page_table_view pages;  // device pointers
  int heads = 0;               // query heads in all
  int heads_per_group = 0;     // query heads sharing a row group
  int heads_per_block = 0;
  int blocks_per_group = 0;
  int group_key_offset = 0;  // element offset of group g in a key row: g * group_key_offset
  int group_value_offset = 0;
  float scale_log2 = 0.0f;  // softmax_scale * log2(e)
  int window = 0;
  const float* sinks = nullptr;  // [heads] natural-log sink logits, or null
  int splits = 1;
  float* out = nullptr;       // [batch, heads, value_width]
  float* lse = nullptr;       // [batch, heads] or null
  float* part_out = nullptr;  // [batch, splits, heads, value_width] when splits > 1
  float* part_lse = nullptr;  // [batch, splits, heads]
};

struct max_op {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <class Elem, int MT, int NP, bool SeparateValues, int TN>
__global__ void __launch_bounds__(decode_threads) decode_kernel(const decode_kernel_params<Elem> p) {
  constexpr int HB = 16 * MT;                      // head rows of the CTA (padded); TN keys per tile
  constexpr int NB = TN / 16;                      // 16-token blocks of the score product
  constexpr int KS = decode_score_slices(MT, TN);  // k-slices of the score product
  constexpr int TPR = decode_threads / HB;         // softmax threads per head row
  constexpr int TPT = TN / TPR;                    // keys per softmax thread
  constexpr int LDS = TN + 4, LDP = TN + decode_row_pad;
  static_assert(KS >= 1 && KS * NB * MT == decode_warps, "decode_kernel: warps must cover (token block, m-tile)");
  static_assert(TPT >= 1 && TPR * TPT == TN, "decode_kernel: softmax threads must tile the token tile");
  constexpr float neg_inf = -HUGE_VALF;

  const int group = blockIdx.x / p.blocks_per_group;
  const int h0 = group * p.heads_per_group + (blockIdx.x % p.blocks_per_group) * p.heads_per_block;
  const int h_end = min(h0 + p.heads_per_block, (group + 1) * p.heads_per_group);
  const int split = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int W = p.key_width, V = p.value_width;
  const int ldk = W + decode_row_pad, ldv = V + decode_row_pad;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  Elem* const q_s = reinterpret_cast<Elem*>(smem_raw);  // [HB][ldk]
  Elem* const k_s = q_s + HB * ldk;                     // [2][TN][ldk]
  Elem* const v_s = k_s + 2 * TN * ldk;                 // [2][TN][ldv] (separate values only)
  float* const s_s = reinterpret_cast<float*>(SeparateValues ? v_s + 2 * TN * ldv : v_s);  // [KS * HB][LDS]
  Elem* const p_s = reinterpret_cast<Elem*>(s_s + KS * HB * LDS);                          // [HB][LDP]
  float* const m_s = reinterpret_cast<float*>(p_s + HB * LDP);                             // [HB] log2 domain
  float* const l_s = m_s + HB;
  float* const alpha_s = l_s + HB;

  const int len = p.pages.seq_lens[b];
  const mla::token_range r = mla::split_range(mla::decode_visible_range(len, p.window), p.splits, split, TN);

  // Queries, once: row i = head h0 + i (zero past h_end), [q_a | q_b].
  {
    const int chunks = W / 8, a_chunks = p.q_a_width / 8, b_width = W - p.q_a_width;
    for (int idx = tid; idx < HB * chunks; idx += decode_threads) {
      const int row = idx / chunks, c = idx % chunks, h = h0 + row;
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (h < h_end) {
        const std::ptrdiff_t bh = static_cast<std::ptrdiff_t>(b) * p.heads + h;
        v = c < a_chunks ? reinterpret_cast<const uint4*>(p.q_a + bh * p.q_a_width)[c]
                         : reinterpret_cast<const uint4*>(p.q_b + bh * b_width)[c - a_chunks];
      }
      *reinterpret_cast<uint4*>(q_s + row * ldk + c * 8) = v;
    }
    for (int i = tid; i < HB; i += decode_threads) m_s[i] = neg_inf, l_s[i] = 0.0f;
  }

  // Tile loader: TPK threads per token row, 16-byte cp.async each; one page lookup per thread and tile,
  // issued a tile ahead of its use (page_next) so that its latency hides behind a tile of compute. Rows past
  // the range are zero-filled (so that P = 0 never meets a NaN left in an unused slot).
  constexpr int TPK = decode_threads / TN;
  static_assert(TPK * TN == decode_threads, "decode_kernel: the loader maps threads to (token, chunk)");
  const int lj = tid / TPK, lu = tid % TPK;
  const int page_size = p.pages.page_size;
  const page_index* const table = p.pages.page_table + static_cast<std::ptrdiff_t>(b) * p.pages.pages_per_seq;
  auto page_of = [&](int t) -> page_index { return t < r.end ? table[t / page_size] : 0; };
  auto load_tile = [&](int t0, int stage, page_index page) {
    const int t = t0 + lj;
    const bool valid = t < r.end;
    const std::ptrdiff_t row = valid ? static_cast<std::ptrdiff_t>(page) * page_size + t % page_size : 0;
    {
      Elem* const dst = k_s + (stage * TN + lj) * ldk;
      const Elem* const src = p.keys + (valid ? row * p.key_row_stride + group * p.group_key_offset : 0);
      for (int c = lu; c < W / 8; c += TPK) cp_async_16(dst + c * 8, src + c * 8, valid);
    }
    if constexpr (SeparateValues) {
      Elem* const dst = v_s + (stage * TN + lj) * ldv;
      const Elem* const src = p.values + (valid ? row * p.value_row_stride + group * p.group_value_offset : 0);
      for (int c = lu; c < V / 8; c += TPK) cp_async_16(dst + c * 8, src + c * 8, valid);
    }
    cp_async_commit();
  };

  float acc[MT][NP][2][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int j = 0; j < NP; ++j)
#pragma unroll
      for (int n8 = 0; n8 < 2; ++n8)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[mt][j][n8][e] = 0.0f;

  const int g = lane >> 2, tq = lane & 3;
  const int ntiles = mla::ceil_div(r.size(), TN);
  page_index page_next = page_of(r.begin + lj);
  if (ntiles > 0) load_tile(r.begin, 0, page_next);
  page_next = page_of(r.begin + TN + lj);

  using warp_reduce = cub::WarpReduce<float, TPR>;
  __shared__ typename warp_reduce::TempStorage reduce_tmp[decode_threads / TPR];

  for (int it = 0; it < ntiles; ++it) {
    const int t0 = r.begin + it * TN, stage = it & 1;
    cp_async_wait_all();
    __syncthreads();  // tile `it` landed; the previous P V is done with the other stage, p_s and alpha_s
    if (it + 1 < ntiles) {
      load_tile(t0 + TN, stage ^ 1, page_next);
      page_next = page_of(t0 + 2 * TN + lj);
    }
    const Elem* const kt = k_s + stage * TN * ldk;
    const Elem* const vt = SeparateValues ? v_s + stage * TN * ldv : kt;
    const int ldvt = SeparateValues ? ldv : ldk;

    // Scores: warp -> (16-token block, m-tile, k-slice); partial sums per k-slice into s_s.
    {
      const int half = warp % NB, mt = (warp / NB) % MT, ks = warp / (NB * MT);
      const int ksteps = W / 16, per = mla::ceil_div(ksteps, KS);
      const int k_lo = ks * per, k_hi = min(ksteps, k_lo + per);
      float sacc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
      const Elem* const qa = q_s + (mt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ldk + (lane >> 4) * 8;
      const Elem* const kb = kt + (half * 16 + (lane & 7) + (lane >> 4) * 8) * ldk + ((lane >> 3) & 1) * 8;
      for (int kk = k_lo; kk < k_hi; ++kk) {
        unsigned a[4], bk[4];
        ldmatrix_x4(a, qa + kk * 16);
        ldmatrix_x4(bk, kb + kk * 16);
        mma_16816<Elem>(sacc[0], a, bk[0], bk[1]);
        mma_16816<Elem>(sacc[1], a, bk[2], bk[3]);
      }
      float* const sd = s_s + (ks * HB + mt * 16) * LDS + half * 16;
#pragma unroll
      for (int n8 = 0; n8 < 2; ++n8) {
        const int col = n8 * 8 + tq * 2;
        sd[g * LDS + col] = sacc[n8][0];
        sd[g * LDS + col + 1] = sacc[n8][1];
        sd[(g + 8) * LDS + col] = sacc[n8][2];
        sd[(g + 8) * LDS + col + 1] = sacc[n8][3];
      }
    }
    __syncthreads();

    // Online softmax: TPR consecutive threads per head row, keys col = j * TPR + sub.
    float alpha;  // this row's rescale factor exp2(m_old - m_new)
    {
      const int row = tid / TPR, sub = tid % TPR;
      const int valid = min(TN, r.end - t0);
      float v[TPT];
      float mx = neg_inf;
#pragma unroll
      for (int j = 0; j < TPT; ++j) {
        const int col = j * TPR + sub;
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < KS; ++k) s += s_s[(k * HB + row) * LDS + col];
        s = col < valid ? s * p.scale_log2 : neg_inf;
        v[j] = s;
        mx = fmaxf(mx, s);
      }
      const int leader = lane & ~(TPR - 1);
      mx = __shfl_sync(0xffffffffu, warp_reduce(reduce_tmp[tid / TPR]).Reduce(mx, max_op{}), leader);
      __syncwarp();  // reduce_tmp is reused below
      const float m_old = m_s[row];
      const float m_new = fmaxf(m_old, mx);  // finite: every tile holds at least one visible key
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < TPT; ++j) {
        const Elem e = from_float<Elem>(exp2f(v[j] - m_new));
        p_s[row * LDP + j * TPR + sub] = e;
        sum += to_float(e);
      }
      sum = __shfl_sync(0xffffffffu, warp_reduce(reduce_tmp[tid / TPR]).Sum(sum), leader);
      alpha = exp2f(m_old - m_new);  // 0 on the first tile (m_old = -inf)
      if (sub == 0) {
        alpha_s[row] = alpha;
        l_s[row] = l_s[row] * alpha + sum;
        m_s[row] = m_new;
      }
    }
    // Once the running maxima settle, every alpha is 1 and the rescale of the accumulators is skipped.
    const bool rescale = __syncthreads_or(alpha != 1.0f) != 0;

    // O = alpha O + P V over this warp's value pairs.
    {
#pragma unroll
      for (int mt = 0; mt < MT && rescale; ++mt) {
        const float a0 = alpha_s[mt * 16 + g], a1 = alpha_s[mt * 16 + g + 8];
#pragma unroll
        for (int j = 0; j < NP; ++j)
#pragma unroll
          for (int n8 = 0; n8 < 2; ++n8) {
            acc[mt][j][n8][0] *= a0;
            acc[mt][j][n8][1] *= a0;
            acc[mt][j][n8][2] *= a1;
            acc[mt][j][n8][3] *= a1;
          }
      }
#pragma unroll
      for (int kk = 0; kk < TN / 16; ++kk) {
        unsigned a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
          ldmatrix_x4(a[mt], p_s + (mt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDP + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int j = 0; j < NP; ++j) {
          const int pair = warp + j * decode_warps;
          if (pair * 16 < V) {
            unsigned bv[4];
            ldmatrix_x4_trans(bv,
                              vt + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ldvt + pair * 16 + (lane >> 4) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
              mma_16816<Elem>(acc[mt][j][0], a[mt], bv[0], bv[1]);
              mma_16816<Elem>(acc[mt][j][1], a[mt], bv[2], bv[3]);
            }
          }
        }
      }
    }
  }
  __syncthreads();  // final m_s, l_s (also when the range is empty)

  // Normalise and write: the final row with sinks (one split) or an fp32 partial (several).
  constexpr float ln2 = 0.693147180559945309f;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int row = mt * 16 + g + hr * 8, h = h0 + row;
      if (h >= h_end) continue;
      const float sink = p.splits == 1 && p.sinks != nullptr ? p.sinks[h] : neg_inf;
      const mla::softmax_final f = mla::softmax_finalize(mla::softmax_stats{m_s[row] * ln2, l_s[row]}, sink);
      const std::ptrdiff_t bh = static_cast<std::ptrdiff_t>(b) * p.heads + h;
      const std::ptrdiff_t prow = (static_cast<std::ptrdiff_t>(b) * p.splits + split) * p.heads + h;
      float* const dst = p.splits == 1 ? p.out + bh * V : p.part_out + prow * V;
#pragma unroll
      for (int j = 0; j < NP; ++j) {
        const int pair = warp + j * decode_warps;
        if (pair * 16 < V)
#pragma unroll
          for (int n8 = 0; n8 < 2; ++n8) {
            const int col = pair * 16 + n8 * 8 + tq * 2;
            *reinterpret_cast<float2*>(dst + col) =
                make_float2(acc[mt][j][n8][hr * 2] * f.out_scale, acc[mt][j][n8][hr * 2 + 1] * f.out_scale);
          }
      }
      if (warp == 0 && tq == 0) {
        if (p.splits == 1) {
          if (p.lse != nullptr) p.lse[bh] = f.lse;
        } else {
          p.part_lse[prow] = f.lse;
        }
      }
    }
}

// Merges the fp32 partials of every (sequence, head) row: grid = batch * heads, one row per CTA. (A template
// over the float type only so that several translation units can include this header.)
template <class Float>
__global__ void __launch_bounds__(128)
    split_combine_kernel(const Float* part_out, const Float* part_lse, int splits, int heads, int width,
                         const Float* sinks, Float* out, Float* lse) {
  __shared__ Float weights[decode_max_splits];
  __shared__ Float merged;
  const int row = blockIdx.x, b = row / heads, h = row % heads;
  const std::ptrdiff_t first = static_cast<std::ptrdiff_t>(b) * splits * heads + h;  // split 0 of the row
  if (threadIdx.x == 0)
    merged =
        mla::softmax_merge_weights(part_lse + first, heads, splits, sinks != nullptr ? sinks[h] : -HUGE_VALF, weights);
  __syncthreads();
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    Float a = 0.0f;
    for (int s = 0; s < splits; ++s)
      if (weights[s] != 0.0f) a += weights[s] * part_out[(first + static_cast<std::ptrdiff_t>(s) * heads) * width + i];
    out[static_cast<std::ptrdiff_t>(row) * width + i] = a;
  }
  if (threadIdx.x == 0 && lse != nullptr) lse[row] = merged;
}

}  // namespace mla::cuda::detail
