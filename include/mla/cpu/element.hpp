// mla::cpu cache element types: float, and bf16 storage (the usual KV-cache dtype) read as float.
// The kernels always accumulate in float; a bf16 cache halves the bytes a decode step reads.
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

// The element types the CPU kernels accept for caches.
template <class T>
inline constexpr bool is_cache_element_v = std::is_same_v<T, float> || std::is_same_v<T, bf16>;

}  // namespace mla::cpu
