// mla::cpu decode machinery shared by the MLA and GQA decode kernels:
//   decode_options          softmax scale, sliding window, sinks, number of KV splits, threads
//   detail::attend_tile     one token tile x a group of heads: scores, online softmax, weighted value sum
//   detail::run_split_decode  the (sequence, split) work loop over OpenMP threads, the split-KV partials
//                           and their log-sum-exp merge (softmax_merge.hpp), sinks, output and lse
//
// Both kernels are "MQA over a token tile": a group of query heads shares one key row and one value row per
// token (all heads for MLA, the heads of one KV group for GQA), so every cached row is read from memory once
// per step and reused for the whole group while it is in L1/L2. Scores are vectorised over heads (each
// cached element is broadcast against 16 heads), the weighted value sum over value channels; neither
// transposes the cached rows.
//
// OpenMP is optional: without -fopenmp the pragmas vanish (they are spelled through MLA_CPU_OMP so that
// -Wunknown-pragmas stays quiet) and the kernels run on the calling thread.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "mla/core/error.hpp"
#include "mla/cpu/element.hpp"
#include "mla/core/paged_cache.hpp"
#include "mla/core/softmax_merge.hpp"

#if defined(_OPENMP)
#define MLA_CPU_PRAGMA(x) _Pragma(#x)
#define MLA_CPU_OMP(x) MLA_CPU_PRAGMA(omp x)
#else
#define MLA_CPU_OMP(x)
#endif

namespace mla::cpu {

// Options shared by mla_decode and gqa_decode.
struct decode_options {
  float softmax_scale = 0.0f;    // multiplies q.k (not the sinks); must be finite and > 0
  int sliding_window = 0;        // 0: full causal; w > 0: key k visible from query q iff q - w < k <= q
  const float* sinks = nullptr;  // [num_heads] sink logits (unscaled), or null for none
  int num_splits = 0;            // KV splits per sequence, merged by log-sum-exp; 0: automatic
  int num_threads = 0;           // OpenMP threads; 0: the OpenMP default (ignored without OpenMP)
  bool bf16_dot = true;          // MLA over a bf16 cache: scores by AVX512-BF16 dot products (queries rounded
                                 // to bf16, bf16_dot.hpp) where the CPU has them; false: float queries always
};

// Threads a decode call would use with these options.
inline int decode_threads(const decode_options& opt) {
#if defined(_OPENMP)
  return opt.num_threads > 0 ? opt.num_threads : omp_get_max_threads();
#else
  (void)opt;
  return 1;
#endif
}

// The split count used when decode_options::num_splits is 0: enough (sequence, split) items to keep
// `threads` busy with dynamic scheduling (about 4 per thread), but no split shorter than 256 keys, where
// the partial write and merge would cost more than the parallelism gains. 1 with a single thread.
inline int auto_num_splits(int batch, int max_visible_keys, int threads) {
  if (threads <= 1 || batch <= 0) return 1;
  const int wanted = ceil_div(4 * threads, batch);
  const int longest = std::max(1, max_visible_keys / 256);
  return std::max(1, std::min({wanted, longest, 64}));
}

// Checks the options for a call with `heads` query heads; `owner` prefixes the messages.
inline void validate_options(const decode_options& opt, int heads, const char* owner) {
  check(std::isfinite(opt.softmax_scale) && opt.softmax_scale > 0.0f, owner,
        ": options.softmax_scale must be finite and > 0, found ", opt.softmax_scale);
  check(opt.sliding_window >= 0, owner, ": options.sliding_window must be >= 0 (0 = full causal), found ",
        opt.sliding_window);
  check(opt.num_splits >= 0, owner, ": options.num_splits must be >= 0 (0 = automatic), found ", opt.num_splits);
  check(opt.num_threads >= 0, owner, ": options.num_threads must be >= 0 (0 = OpenMP default), found ",
        opt.num_threads);
  if (opt.sinks != nullptr)
    for (int h = 0; h < heads; ++h)
      check(!std::isnan(opt.sinks[h]) && opt.sinks[h] != HUGE_VALF, owner, ": options.sinks[", h,
            "] must be finite or -inf, found ", opt.sinks[h]);
}

namespace detail {
inline constexpr int tile_tokens = 16;  // keys per tile
}  // namespace detail

// The KV splits per sequence a decode call with these options runs (options.num_splits, or the automatic
// count), capped at the longest visible range's tile count: more would only add empty splits.
inline int decode_split_count(const page_table_view& pages, const decode_options& opt) {
  int longest = 0;
  for (int b = 0; b < pages.num_seqs; ++b)
    longest = std::max(longest, decode_visible_range(pages.seq_lens[b], opt.sliding_window).size());
  return std::min(opt.num_splits == 0 ? auto_num_splits(pages.num_seqs, longest, decode_threads(opt)) : opt.num_splits,
                  std::max(1, ceil_div(longest, detail::tile_tokens)));
}

namespace detail {

// Rounds a float count up to 16 (64 bytes) so carved sub-buffers stay cache-line aligned.
constexpr std::size_t align_up16(std::size_t n) { return (n + 15) / 16 * 16; }

// e^x without a libm call, so loops over it vectorise. x = n ln2 + r with |r| <= ln2/2 (Cody-Waite), e^r by
// its degree-7 Taylor polynomial (truncation < 6e-9 relative), times 2^n put in the exponent bits.
// Relative error a few float ulps; 0 below -87.3 (and for -inf); NaN stays NaN. Only called with x <= ~0.
inline float exp_approx(float x) {
  const float lo = -87.33654f, hi = 88.0f;
  const float xc = !(x >= lo) ? lo : (x > hi ? hi : x);  // NaN takes the lo path here
  const float shifter = 12582912.0f;                     // 1.5 * 2^23: adding it rounds to an integer
  const float n = (xc * 1.44269504088896341f + shifter) - shifter;
  float r = xc - n * 0.693359375f;  // ln 2 high part (exact product)
  r = r - n * -2.12194440e-4f;      // ln 2 low part
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) * (1 << 23);
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  const float y = p * two_n;
  return x != x ? x : (x < lo ? 0.0f : y);
}

// ---- Tile kernels ------------------------------------------------------------------------------------
//
// A tile is tile_tokens keys that a group of nh query heads attends to together. Scores are vectorised over
// heads: the queries are stored transposed and scaled, qt [kw][hp] (hp = nh rounded up to head_lanes, the
// padding heads zero), and every cached element rows[t][i] is one broadcast multiplied into a vector of 16
// heads. So the cached rows are read in their stored order and never transposed, and one row element
// feeds all heads of the group while it is in a register. The weighted value sum is vectorised over the
// value channels with the weights broadcast.
//
// Widths: every helper takes the key width kw and the value width vw as runtime ints, and has a template
// twin parameter (KW, VW) that, when > 0, replaces the runtime value by a constant (the caller passes the
// same number as both); 0 keeps the runtime width. The body is the same, so the operations and their order
// are too: the results are bit-identical, only the trip counts become known to the compiler.

// The width a helper loops over: the compile-time one when given, else the runtime one.
template <int W>
constexpr int width_or(int runtime) {
  return W > 0 ? W : runtime;
}

inline constexpr int head_lanes = 16;  // heads per score vector (one AVX-512 register of floats)

inline int padded_heads(int nh) { return ceil_div(nh, head_lanes) * head_lanes; }

// Scores of TB tokens x HV head vectors: s[t][h] = sum_i rows[t][i] * qt[i][h], t < TB, h < HV * 16.
// TB * HV accumulator vectors stay in registers (8 to 16: enough independent FMA chains, few spills).
// Not inlined: inside the kernel's tile loop GCC 12 kept the TB row pointers of the <8, 1> block (<= 16
// heads) in vector registers and moved one into a GPR per FMA; on its own the block keeps them in GPRs:
// MLA decode 5-12 % faster for 8 to 16 heads, neutral for 64 (bench/cpu/mla_decode_width_bench.cpp), GQA
// decode (groups of 3 and 8 heads) 3-11 % faster. A call per block of 4 or 8 tokens costs nothing next to
// its kw iterations.
template <int TB, int HV, int KW = 0>
[[gnu::noinline]] inline void score_block(const float* qt, std::ptrdiff_t ldq, const float* const* rows, int runtime_kw,
                                          float* s, std::ptrdiff_t lds) {
  const int kw = width_or<KW>(runtime_kw);
  float acc[TB][HV][head_lanes] = {};
  const float* r[TB];
  for (int t = 0; t < TB; ++t) r[t] = rows[t];
  for (int i = 0; i < kw; ++i) {
    const float* qi = qt + static_cast<std::ptrdiff_t>(i) * ldq;
    for (int t = 0; t < TB; ++t) {
      const float x = r[t][i];
      for (int v = 0; v < HV; ++v) {
        MLA_CPU_OMP(simd)
        for (int l = 0; l < head_lanes; ++l) acc[t][v][l] += x * qi[v * head_lanes + l];
      }
    }
  }
  for (int t = 0; t < TB; ++t)
    for (int v = 0; v < HV; ++v)
      for (int l = 0; l < head_lanes; ++l) s[t * lds + v * head_lanes + l] = acc[t][v][l];
}

// Software prefetch of the next tile's rows, spread over the work on the current tile: the next tile
// streams in while this one computes.
class row_prefetcher {
 public:
  void reset(int row_bytes) {
    count_ = row_ = offset_ = 0;
    row_bytes_ = row_bytes;
  }
  void add(const void* row) {
    if (count_ < max_rows) rows_[count_++] = static_cast<const char*>(row);
  }
  // Issue the queued lines in `steps` equal portions, one per step() call.
  void plan(int steps) { per_step_ = ceil_div(count_ * ceil_div(row_bytes_, line), steps > 0 ? steps : 1); }
  void step() {
    for (int k = per_step_; k > 0 && row_ < count_; --k) {
#if defined(__GNUC__) || defined(__clang__)
      __builtin_prefetch(rows_[row_] + offset_, 0, 3);
#endif
      offset_ += line;
      if (offset_ >= row_bytes_) offset_ = 0, ++row_;
    }
  }

 private:
  static constexpr int line = 64;
  static constexpr int max_rows = 2 * tile_tokens;  // K and V rows of a GQA tile
  const char* rows_[max_rows] = {};
  int count_ = 0, row_bytes_ = 0, row_ = 0, offset_ = 0, per_step_ = 0;
};

// Calls block(TB, HV, v0, t0) (TB, HV as std::integral_constant) for the score blocks that cover a tile of
// tile_tokens tokens x hp padded heads: head vectors in groups of up to 4 from vector v0, TB tokens from t0.
// 1 vector: blocks of 8 tokens, else of 4 (8 to 16 accumulator vectors each).
template <class F>
inline void for_score_blocks(int hp, F&& block) {
  using one = std::integral_constant<int, 1>;
  using four = std::integral_constant<int, 4>;
  using eight = std::integral_constant<int, 8>;
  const int nv = hp / head_lanes;
  for (int v0 = 0; v0 < nv; v0 += 4) switch (nv - v0 < 4 ? nv - v0 : 4) {
      case 1:
        for (int t0 = 0; t0 < tile_tokens; t0 += 8) block(eight{}, one{}, v0, t0);
        break;
      case 2:
        for (int t0 = 0; t0 < tile_tokens; t0 += 4) block(four{}, std::integral_constant<int, 2>{}, v0, t0);
        break;
      case 3:
        for (int t0 = 0; t0 < tile_tokens; t0 += 4) block(four{}, std::integral_constant<int, 3>{}, v0, t0);
        break;
      default:
        for (int t0 = 0; t0 < tile_tokens; t0 += 4) block(four{}, four{}, v0, t0);
        break;
    }
}

// Score blocks per tile for hp padded heads (the number of blocks for_score_blocks visits).
inline int score_block_count(int hp) {
  int calls = 0;
  for_score_blocks(hp, [&](auto, auto, int, int) { ++calls; });
  return calls;
}

// s[t][h] = sum_i rows[t][i] * qt[i][h] for the whole tile (t < tile_tokens; rows past the valid ones point
// to zeros), h < hp. pf.step() after each block.
template <int KW = 0>
inline void tile_scores(const float* qt, int hp, const float* const* rows, int kw, float* s, row_prefetcher& pf) {
  for_score_blocks(hp, [&](auto tb, auto hv, int v0, int t0) {
    score_block<decltype(tb)::value, decltype(hv)::value, KW>(qt + v0 * head_lanes, hp, rows + t0, kw,
                                                              s + t0 * hp + v0 * head_lanes, hp);
    pf.step();
  });
}

// Independent accumulator sets tile_pv keeps for HB heads so that at least 8 FMA chains are in flight
// (FMA latency 4 x 2 ports): a single head would otherwise run one dependent chain.
template <int HB>
inline constexpr int accumulator_ways = (8 + HB - 1) / HB;

// Weighted value sum of one tile for HB heads: o[h * ldo + j] += sum_{t < n} p[t * ldp + h] * v[t][j],
// j < vw. Each 16-wide slice of a value row is loaded once and used for all HB heads.
template <int HB, int VW = 0>
inline void tile_pv(const float* p, std::ptrdiff_t ldp, const float* const* v, int n, float* o, std::ptrdiff_t ldo,
                    int runtime_vw) {
  const int vw = width_or<VW>(runtime_vw);
  constexpr int lanes = 16;
  constexpr int ways = accumulator_ways<HB>;  // consecutive tokens go to different accumulator sets
  int j = 0;
  for (; j + lanes <= vw; j += lanes) {
    float acc[ways][HB][lanes] = {};
    int t = 0;
    for (; t + ways <= n; t += ways)
      for (int w = 0; w < ways; ++w) {
        const float* vt = v[t + w] + j;
        for (int h = 0; h < HB; ++h) {
          const float ph = p[(t + w) * ldp + h];
          MLA_CPU_OMP(simd)
          for (int l = 0; l < lanes; ++l) acc[w][h][l] += ph * vt[l];
        }
      }
    for (; t < n; ++t) {
      const float* vt = v[t] + j;
      for (int h = 0; h < HB; ++h) {
        const float ph = p[t * ldp + h];
        for (int l = 0; l < lanes; ++l) acc[0][h][l] += ph * vt[l];
      }
    }
    for (int h = 0; h < HB; ++h)
      for (int l = 0; l < lanes; ++l) {
        float a = o[h * ldo + j + l];
        for (int w = 0; w < ways; ++w) a += acc[w][h][l];
        o[h * ldo + j + l] = a;
      }
  }
  for (; j < vw; ++j)  // tail of a width that is not a multiple of 16
    for (int h = 0; h < HB; ++h) {
      float a = o[h * ldo + j];
      for (int t = 0; t < n; ++t) a += p[t * ldp + h] * v[t][j];
      o[h * ldo + j] = a;
    }
}

// Calls f(h0, std::integral_constant<int, HB>) over heads [0, heads) in ceil(heads / 8) blocks of nearly
// equal size HB <= 8 (9 heads: 5 + 4, not 8 + 1), so no block is left with a sliver of heads.
template <class F>
inline void for_head_blocks(int heads, F&& f) {
  const int blocks = ceil_div(heads, 8);
  const int base = heads / blocks, bigger = heads % blocks;  // `bigger` blocks get base + 1 heads
  int h = 0;
  for (int k = 0; k < blocks; ++k) {
    switch (base + (k < bigger ? 1 : 0)) {
      case 1:
        f(h, std::integral_constant<int, 1>{}), h += 1;
        break;
      case 2:
        f(h, std::integral_constant<int, 2>{}), h += 2;
        break;
      case 3:
        f(h, std::integral_constant<int, 3>{}), h += 3;
        break;
      case 4:
        f(h, std::integral_constant<int, 4>{}), h += 4;
        break;
      case 5:
        f(h, std::integral_constant<int, 5>{}), h += 5;
        break;
      case 6:
        f(h, std::integral_constant<int, 6>{}), h += 6;
        break;
      case 7:
        f(h, std::integral_constant<int, 7>{}), h += 7;
        break;
      default:
        f(h, std::integral_constant<int, 8>{}), h += 8;
        break;
    }
  }
}

// Online-softmax step over one tile, vectorised over heads: s [tile_tokens][lds] holds scores (first n
// tokens valid, nh heads) and becomes the weights p = exp(s - m_new); m, d [nh] advance; rows of
// o [nh][ldo] are rescaled where m grew. tmp: scratch for 2 * nh floats. RoundBf16: the weights are rounded
// to bf16 (for a bf16 value sum) before they are added to d, so that d sums the weights the values get.
template <int VW = 0, bool RoundBf16 = false>
inline void tile_softmax(float* s, std::ptrdiff_t lds, int nh, int n, float* m, float* d, float* o, std::ptrdiff_t ldo,
                         int runtime_vw, float* tmp) {
  const int vw = width_or<VW>(runtime_vw);
  float* const mt = tmp;        // new running max [nh]
  float* const sum = tmp + nh;  // sum of this tile's weights [nh]
  for (int h = 0; h < nh; ++h) mt[h] = m[h], sum[h] = 0.0f;
  for (int t = 0; t < n; ++t) {
    const float* st = s + t * lds;
    MLA_CPU_OMP(simd)
    for (int h = 0; h < nh; ++h) mt[h] = st[h] > mt[h] ? st[h] : mt[h];
  }
  for (int t = 0; t < n; ++t) {
    float* st = s + t * lds;
    MLA_CPU_OMP(simd)
    for (int h = 0; h < nh; ++h) {
      const float p = exp_approx(st[h] - mt[h]);
      st[h] = RoundBf16 ? round_to_bf16(p) : p;
      sum[h] += st[h];
    }
  }
  MLA_CPU_OMP(simd)
  for (int h = 0; h < nh; ++h) {
    const float alpha = exp_approx(m[h] - mt[h]);  // 0 on the first tile (m = -inf), where o and d are 0
    d[h] = d[h] * alpha + sum[h];
    m[h] = mt[h];
    sum[h] = alpha;  // keep alpha for the rescale below
  }
  for (int h = 0; h < nh; ++h) {
    const float alpha = sum[h];
    if (alpha == 1.0f) continue;
    float* oh = o + h * ldo;
    MLA_CPU_OMP(simd)
    for (int j = 0; j < vw; ++j) oh[j] *= alpha;
  }
}

// One tile of scores s [tile_tokens][padded_heads(nh)] (first n tokens valid) against nh heads that share
// its values: the online-softmax step, then the weighted value sum. values [n] value rows (vw used), tmp
// [2 * nh] scratch, m, d [nh] and o [nh][ldo] the online state. VW > 0: vw as a compile-time constant.
template <int VW = 0>
inline void attend_scores(float* s, int nh, const float* const* values, int vw, int n, float* tmp, float* m, float* d,
                          float* o, std::ptrdiff_t ldo) {
  const int hp = padded_heads(nh);
  tile_softmax<VW>(s, hp, nh, n, m, d, o, ldo, vw, tmp);
  for_head_blocks(
      nh, [&](int h0, auto hb) { tile_pv<decltype(hb)::value, VW>(s + h0, hp, values, n, o + h0 * ldo, ldo, vw); });
}

// One tile against nh heads that share its keys and values.
//   qt [kw][padded_heads(nh)] scaled transposed queries, keys [tile_tokens] key rows (kw used; rows past n
//   point to zeros), values [n] value rows (vw used), s [tile_tokens][padded_heads(nh)] and tmp [2 * nh]
//   scratch, m, d [nh] and o [nh][ldo] the online state. pf spreads the next tile's prefetches.
//   KW, VW > 0: kw, vw as compile-time constants (equal to the runtime ones).
template <int KW = 0, int VW = 0>
inline void attend_tile(const float* qt, int nh, const float* const* keys, int kw, const float* const* values, int vw,
                        int n, float* s, float* tmp, float* m, float* d, float* o, std::ptrdiff_t ldo,
                        row_prefetcher& pf) {
  tile_scores<KW>(qt, padded_heads(nh), keys, kw, s, pf);
  attend_scores<VW>(s, nh, values, vw, n, tmp, m, d, o, ldo);
}

// Scratch floats attend_tile needs for nh heads (s and tmp).
inline std::size_t attend_scratch_floats(int nh) {
  return static_cast<std::size_t>(tile_tokens) * padded_heads(nh) + align_up16(2 * static_cast<std::size_t>(nh));
}

// Float views of n value rows (first vw elements each): the rows themselves for a float cache, else
// converted copies in buf [tile_tokens][vw] (VW > 0: vw as a compile-time constant).
template <int VW = 0>
inline void value_rows(const float* const* rows, int n, int, float*, const float** out) {
  for (int t = 0; t < n; ++t) out[t] = rows[t];
}
template <int VW = 0>
inline void value_rows(const bf16* const* rows, int n, int runtime_vw, float* buf, const float** out) {
  const int vw = width_or<VW>(runtime_vw);
  for (int t = 0; t < n; ++t) {
    float* b = buf + static_cast<std::ptrdiff_t>(t) * vw;
    const bf16* r = rows[t];
    for (int j = 0; j < vw; ++j) b[j] = to_float(r[j]);
    out[t] = b;
  }
}

// Floats needed to stage value rows of width vw (none for a float cache).
template <class Elem>
constexpr std::size_t value_staging_floats(int vw) {
  return std::is_same_v<Elem, float> ? 0 : static_cast<std::size_t>(tile_tokens) * vw;
}

// A 64-byte aligned, uninitialised float buffer.
class float_buffer {
 public:
  explicit float_buffer(std::size_t n) : raw_(new float[n + 16]) {
    const auto addr = reinterpret_cast<std::uintptr_t>(raw_.get());
    data_ = raw_.get() + ((64 - addr % 64) % 64) / sizeof(float);
  }
  float* data() { return data_; }

 private:
  std::unique_ptr<float[]> raw_;
  float* data_ = nullptr;
};

// The (sequence, split) driver. For every sequence b and split s of its visible keys it calls
//   item(b, range, scratch, o, m, d)
// with `scratch` (item_scratch floats, per thread), and the online state o [heads][value_dim] = 0,
// m [heads] = -inf, d [heads] = 0 to accumulate into (item is not called for an empty range). It then
// writes out [batch, heads, value_dim] and lse [batch, heads] (null: not written), adding the sinks:
// directly with one split, or through fp32 partials [batch, splits, heads, value_dim] merged by
// softmax_merge. Items run in parallel (dynamic schedule: ragged lengths make items uneven).
template <class Item>
void run_split_decode(const page_table_view& pages, int heads, int value_dim, const decode_options& opt,
                      std::size_t item_scratch, float* out, float* lse, Item&& item) {
  const int batch = pages.num_seqs;
  if (batch == 0) return;
  const int threads = decode_threads(opt);
  const int splits = decode_split_count(pages, opt);
  const std::ptrdiff_t hv = static_cast<std::ptrdiff_t>(heads) * value_dim;
  const std::size_t per_thread =
      align_up16(item_scratch) + align_up16(static_cast<std::size_t>(hv)) + 2 * align_up16(heads) + align_up16(splits);
  float_buffer scratch(per_thread * threads);
  const std::size_t partial_rows = splits > 1 ? static_cast<std::size_t>(batch) * splits * heads : 0;
  float_buffer part_out(partial_rows * value_dim);
  float_buffer part_lse(partial_rows);
  const float none = neg_inf_f();
  const int items = batch * splits;
  const int rows = batch * heads;

  MLA_CPU_OMP(parallel num_threads(threads)) {
#if defined(_OPENMP)
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    float* const mine = scratch.data() + per_thread * tid;
    float* const item_buf = mine;
    float* const o = item_buf + align_up16(item_scratch);
    float* const m = o + align_up16(static_cast<std::size_t>(hv));
    float* const d = m + align_up16(heads);
    float* const weights = d + align_up16(heads);

    MLA_CPU_OMP(for schedule(dynamic, 1))
    for (int it = 0; it < items; ++it) {
      const int b = it / splits, s = it % splits;
      const token_range range =
          split_range(decode_visible_range(pages.seq_lens[b], opt.sliding_window), splits, s, tile_tokens);
      std::fill(o, o + hv, 0.0f);
      std::fill(m, m + heads, none);
      std::fill(d, d + heads, 0.0f);
      if (!range.empty()) item(b, range, item_buf, o, m, d);
      for (int h = 0; h < heads; ++h) {
        const float sink = splits == 1 && opt.sinks != nullptr ? opt.sinks[h] : none;
        const softmax_final f = softmax_finalize(softmax_stats{m[h], d[h]}, sink);
        const std::ptrdiff_t row = splits == 1 ? static_cast<std::ptrdiff_t>(b) * heads + h
                                               : (static_cast<std::ptrdiff_t>(b) * splits + s) * heads + h;
        float* dst = (splits == 1 ? out : part_out.data()) + row * value_dim;
        const float* src = o + static_cast<std::ptrdiff_t>(h) * value_dim;
        MLA_CPU_OMP(simd)
        for (int j = 0; j < value_dim; ++j) dst[j] = src[j] * f.out_scale;
        if (splits == 1) {
          if (lse != nullptr) lse[row] = f.lse;
        } else {
          part_lse.data()[row] = f.lse;
        }
      }
    }

    if (splits > 1) {
      // (the implicit barrier of the loop above makes every partial visible here)
      MLA_CPU_OMP(for schedule(static))
      for (int r = 0; r < rows; ++r) {
        const int b = r / heads, h = r % heads;
        const std::ptrdiff_t first = static_cast<std::ptrdiff_t>(b) * splits * heads + h;
        const float l = softmax_merge(part_out.data() + first * value_dim, hv, part_lse.data() + first, heads, splits,
                                      value_dim, opt.sinks != nullptr ? opt.sinks[h] : none, weights,
                                      out + static_cast<std::ptrdiff_t>(r) * value_dim);
        if (lse != nullptr) lse[r] = l;
      }
    }
  }
}

}  // namespace detail
}  // namespace mla::cpu
