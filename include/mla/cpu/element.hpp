// mla::cpu cache element types: float, bf16 storage (the usual KV-cache dtype) read as float, and int8 with
// a float scale per token and row part (MLA latent caches: llama.cpp's q8_0 idea with one block per part).
// The kernels always accumulate in float; a bf16 cache halves the bytes a decode step reads, int8 quarters them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace mla::cpu {

// bfloat16 storage: the upper 16 bits of an IEEE float. Arithmetic is done after to_float().
struct bf16 {
  std::uint16_t bits = 0;
};

// Round-to-nearest-even float -> bf16; NaN stays NaN.
inline bf16 to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  bf16 r;
  if (std::isnan(x)) {
    r.bits = static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
    return r;
  }
  u += 0x7fffu + ((u >> 16) & 1u);
  r.bits = static_cast<std::uint16_t>(u >> 16);
  return r;
}

// x rounded to the nearest bf16 (ties to even), as a float: to_float(to_bf16(x)) for finite x, written so
// that loops over it vectorise (no NaN branch).
inline float round_to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  float r;
  std::memcpy(&r, &u, sizeof r);
  return r;
}

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) {
  const std::uint32_t u = static_cast<std::uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// int8 quantisation of n values with one scale: scale = max |x| / 127 and q = round(x / scale) (ties away from
// zero), so x ~ q * scale with |error| <= scale / 2; all zeros give scale 0. Returns the scale.
inline float quantize_q8(const float* x, int n, std::int8_t* q) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  const float scale = amax / 127.0f;
  const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
  for (int i = 0; i < n; ++i)
    q[i] = static_cast<std::int8_t>(std::lround(std::fmin(127.0f, std::fmax(-127.0f, x[i] * inv))));
  return scale;
}

// One MLA cache row [c (rank) | k_pe (rope)] quantised part by part: out [rank + rope] int8, scales [2] = the
// scales of c and of k_pe (the RoPE key's magnitude has nothing to do with the latent's).
inline void quantize_latent_row(const float* row, int rank, int rope, std::int8_t* out, float* scales) {
  scales[0] = quantize_q8(row, rank, out);
  scales[1] = quantize_q8(row + rank, rope, out + rank);
}

// The element types the CPU kernels accept for caches (int8: MLA only, with its scales).
template <class T>
inline constexpr bool is_cache_element_v =
    std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, std::int8_t>;

}  // namespace mla::cpu
