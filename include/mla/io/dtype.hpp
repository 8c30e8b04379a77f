// mla::io::dtype: the safetensors element types, their names and sizes, and exact conversions
// between the 16- and 8-bit float formats and float.
//
// Conversions:
//   f16_to_float, bf16_to_float, f8_*_to_float, e8m0_to_float   exact (every value is a float)
//   float_to_f16, float_to_bf16                                  round to nearest, ties to even;
//                                                                NaN stays NaN (quiet), sign kept
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/io/mapped_file.hpp"

// Every io/ reader decodes little-endian bytes with memcpy into host integers.
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "mla/io assumes a little-endian host");
#endif

namespace mla::io {

// The safetensors dtype strings, in the order of the format's own enum (formats.md §4).
enum class dtype : std::uint8_t {
  BOOL,
  F4,  // 4-bit E2M1, two per byte (packing order not specified here; raw bytes only)
  F6_E2M3,
  F6_E3M2,
  U8,
  I8,
  F8_E5M2,
  F8_E4M3,  // E4M3FN: no infinities, S.1111.111 is NaN
  F8_E8M0,  // power-of-two scale, bias 127, 0xFF is NaN
  F8_E4M3FNUZ,
  F8_E5M2FNUZ,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  C64,
  F64,
  I64,
  U64,
};

inline constexpr std::size_t dtype_count = 22;

namespace detail {
struct dtype_info {
  dtype type;
  const char* name;
  unsigned bits;  // size of one element in bits
  bool is_float;  // convertible to float by to_float()
};
inline constexpr dtype_info dtype_table[dtype_count] = {
    {dtype::BOOL, "BOOL", 8, false},
    {dtype::F4, "F4", 4, false},
    {dtype::F6_E2M3, "F6_E2M3", 6, false},
    {dtype::F6_E3M2, "F6_E3M2", 6, false},
    {dtype::U8, "U8", 8, false},
    {dtype::I8, "I8", 8, false},
    {dtype::F8_E5M2, "F8_E5M2", 8, true},
    {dtype::F8_E4M3, "F8_E4M3", 8, true},
    {dtype::F8_E8M0, "F8_E8M0", 8, true},
    {dtype::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8, true},
    {dtype::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8, true},
    {dtype::I16, "I16", 16, false},
    {dtype::U16, "U16", 16, false},
    {dtype::F16, "F16", 16, true},
    {dtype::BF16, "BF16", 16, true},
    {dtype::I32, "I32", 32, false},
    {dtype::U32, "U32", 32, false},
    {dtype::F32, "F32", 32, true},
    {dtype::C64, "C64", 64, false},
    {dtype::F64, "F64", 64, true},
    {dtype::I64, "I64", 64, false},
    {dtype::U64, "U64", 64, false},
};
inline const dtype_info& info(dtype t) { return dtype_table[static_cast<std::size_t>(t)]; }
}  // namespace detail

inline const char* dtype_name(dtype t) { return detail::info(t).name; }
inline unsigned dtype_bits(dtype t) { return detail::info(t).bits; }
// Bytes per element; 0 for the sub-byte types (F4, F6_*), whose sizes only exist per tensor.
inline std::size_t dtype_size(dtype t) { return dtype_bits(t) % 8 == 0 ? dtype_bits(t) / 8 : 0; }
inline bool dtype_is_float(dtype t) { return detail::info(t).is_float; }

// Parses a safetensors dtype string; false when unknown.
inline bool parse_dtype(std::string_view name, dtype& out) {
  for (const auto& e : detail::dtype_table) {
    if (name == e.name) {
      out = e.type;
      return true;
    }
  }
  return false;
}
inline dtype dtype_from_name(std::string_view name) {
  dtype t{};
  if (!parse_dtype(name, t)) {
    std::string known;
    for (const auto& e : detail::dtype_table) known += std::string(known.empty() ? "" : ", ") + e.name;
    mla::detail::throw_error("unknown dtype '", name, "' (known: ", known, ")");
  }
  return t;
}

// Bytes taken by `numel` elements, false on overflow or when numel * bits is not a whole number of
// bytes (sub-byte types).
inline bool dtype_nbytes(dtype t, std::uint64_t numel, std::uint64_t& nbytes) {
  const std::uint64_t bits = dtype_bits(t);
  if (numel > std::numeric_limits<std::uint64_t>::max() / bits) return false;
  const std::uint64_t total_bits = numel * bits;
  if (total_bits % 8 != 0) return false;
  nbytes = total_bits / 8;
  return true;
}

// ---- Bit casts and 16-bit floats -------------------------------------------------------------------

inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// IEEE binary16 -> float, exact. Layout: sign 1, exponent 5 (bias 15), mantissa 10.
inline float f16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (mant << 13));  // inf / NaN, payload kept
  if (exp != 0) return bits_float(sign | ((exp + 127 - 15) << 23) | (mant << 13));
  if (mant == 0) return bits_float(sign);  // +-0
  // Subnormal: mant * 2^-24. Normalise: shift the leading 1 up to bit 10.
  std::uint32_t e = 127 - 15 + 1;
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return bits_float(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

// float -> IEEE binary16, round to nearest even. Overflow gives inf; NaN gives a quiet NaN that keeps
// the sign and the top 9 payload bits.
inline std::uint16_t float_to_f16(float f) {
  const std::uint32_t u = float_bits(f);
  const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) {
    if (a == 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
    return static_cast<std::uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  }
  // 65520 = 0x477FF000 is halfway between 65504 (max, odd mantissa) and 2^16: ties go up to inf.
  if (a >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
  const std::uint32_t e = a >> 23;
  if (e >= 113) {  // normal half: exponent 2^-14 .. 2^15
    std::uint32_t h = ((e - 112) << 10) | ((a >> 13) & 0x3FFu);
    const std::uint32_t rem = a & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry may move into the exponent
    return static_cast<std::uint16_t>(sign | h);
  }
  if (e < 102) return sign;  // below 2^-25: rounds to zero (2^-25 itself is a tie, to even 0)
  // Subnormal half: value = m * 2^-24 with m = mant24 * 2^(e - 126), shift = 126 - e in [14, 24].
  const std::uint32_t mant24 = (a & 0x7FFFFFu) | 0x800000u;
  const std::uint32_t shift = 126 - e;
  std::uint32_t m = mant24 >> shift;
  const std::uint32_t rem = mant24 & ((1u << shift) - 1);
  const std::uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (m & 1u))) ++m;  // m == 0x400 is the smallest normal: correct
  return static_cast<std::uint16_t>(sign | m);
}

// bfloat16 -> float, exact: the top 16 bits of a float.
inline float bf16_to_float(std::uint16_t b) { return bits_float(static_cast<std::uint32_t>(b) << 16); }

// float -> bfloat16, round to nearest even; NaN is forced quiet (as ggml and PyTorch do).
inline std::uint16_t float_to_bf16(float f) {
  const std::uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
  return static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// ---- 8-bit floats ----------------------------------------------------------------------------------

// E5M2: the top byte of an IEEE binary16 (bias 15, infinities and NaN).
inline float f8_e5m2_to_float(std::uint8_t v) { return f16_to_float(static_cast<std::uint16_t>(v << 8)); }

namespace detail {
// Generic sign/exponent/mantissa decode without inf; the caller handles NaN codes.
inline float f8_decode(std::uint8_t v, int mant_bits, int bias) {
  const int exp_bits = 7 - mant_bits;
  const int mant = v & ((1 << mant_bits) - 1);
  const int exp = (v >> mant_bits) & ((1 << exp_bits) - 1);
  float mag = exp == 0 ? static_cast<float>(mant) * std::ldexp(1.0f, 1 - bias - mant_bits)
                       : static_cast<float>(mant + (1 << mant_bits)) * std::ldexp(1.0f, exp - bias - mant_bits);
  return (v & 0x80) ? -mag : mag;
}
}  // namespace detail

// E4M3FN (torch.float8_e4m3fn, safetensors F8_E4M3): bias 7, no inf, 0x7F / 0xFF are NaN; max 448.
inline float f8_e4m3_to_float(std::uint8_t v) {
  if ((v & 0x7F) == 0x7F) return std::numeric_limits<float>::quiet_NaN();
  return detail::f8_decode(v, 3, 7);
}
// E4M3FNUZ: bias 8, no inf, no negative zero: 0x80 is the only NaN; max 240.
inline float f8_e4m3fnuz_to_float(std::uint8_t v) {
  if (v == 0x80) return std::numeric_limits<float>::quiet_NaN();
  return detail::f8_decode(v, 3, 8);
}
// E5M2FNUZ: bias 16, no inf, 0x80 is the only NaN; max 57344.
inline float f8_e5m2fnuz_to_float(std::uint8_t v) {
  if (v == 0x80) return std::numeric_limits<float>::quiet_NaN();
  return detail::f8_decode(v, 2, 16);
}
// E8M0 (OCP MX scale): 2^(v - 127); 0xFF is NaN. 2^-127 is a float subnormal, still exact.
// Built from bits: v in 1..254 is the float exponent field itself; v = 0 is the subnormal 2^22 * 2^-149.
inline float e8m0_to_float(std::uint8_t v) {
  if (v == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  if (v == 0) return bits_float(0x00400000u);
  return bits_float(static_cast<std::uint32_t>(v) << 23);
}

// ---- Buffers ---------------------------------------------------------------------------------------

// Converts `numel` little-endian elements of a float dtype at `src` to float. `src` must hold exactly
// numel * dtype_size(t) bytes. F64 is rounded to nearest float. Throws for non-float dtypes.
inline void to_float(dtype t, byte_span src, float* dst, std::size_t numel) {
  check(dtype_is_float(t), "to_float: dtype ", dtype_name(t), " is not a floating-point type");
  const std::size_t esize = dtype_size(t);
  check(numel <= src.size / esize && numel * esize == src.size, "to_float: ", src.size, " bytes do not hold ", numel,
        " elements of ", dtype_name(t));
  const std::uint8_t* p = src.data;
  auto u16 = [&](std::size_t i) {
    std::uint16_t v;
    std::memcpy(&v, p + 2 * i, 2);
    return v;
  };
  switch (t) {
    case dtype::F32:
      if (numel > 0) std::memcpy(dst, p, numel * 4);
      break;
    case dtype::F64:
      for (std::size_t i = 0; i < numel; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        dst[i] = static_cast<float>(d);
      }
      break;
    case dtype::F16:
      for (std::size_t i = 0; i < numel; ++i) dst[i] = f16_to_float(u16(i));
      break;
    case dtype::BF16:
      for (std::size_t i = 0; i < numel; ++i) dst[i] = bf16_to_float(u16(i));
      break;
    case dtype::F8_E5M2:
      for (std::size_t i = 0; i < numel; ++i) dst[i] = f8_e5m2_to_float(p[i]);
      break;
    case dtype::F8_E4M3:
      for (std::size_t i = 0; i < numel; ++i) dst[i] = f8_e4m3_to_float(p[i]);
      break;
    case dtype::F8_E4M3FNUZ:
      for (std::size_t i = 0; i < numel; ++i) dst[i] = f8_e4m3fnuz_to_float(p[i]);
      break;
    case dtype::F8_E5M2FNUZ:
      for (std::size_t i = 0; i < numel; ++i) dst[i] = f8_e5m2fnuz_to_float(p[i]);
      break;
    case dtype::F8_E8M0:
      for (std::size_t i = 0; i < numel; ++i) dst[i] = e8m0_to_float(p[i]);
      break;
    default:
      mla::detail::throw_error("to_float: dtype ", dtype_name(t), " is not supported");
  }
}

inline std::vector<float> to_float(dtype t, byte_span src) {
  check(dtype_is_float(t), "to_float: dtype ", dtype_name(t), " is not a floating-point type");
  const std::size_t esize = dtype_size(t);
  check(src.size % esize == 0, "to_float: ", src.size, " bytes are not a whole number of ", dtype_name(t), " elements");
  std::vector<float> out(src.size / esize);
  to_float(t, src, out.data(), out.size());
  return out;
}

// float -> F32 / F16 / BF16 bytes (little-endian), for writers.
inline std::vector<std::uint8_t> from_float(dtype t, const float* src, std::size_t numel) {
  std::vector<std::uint8_t> out;
  switch (t) {
    case dtype::F32:
      out.resize(numel * 4);
      if (numel > 0) std::memcpy(out.data(), src, numel * 4);
      break;
    case dtype::F16:
    case dtype::BF16:
      out.resize(numel * 2);
      for (std::size_t i = 0; i < numel; ++i) {
        const std::uint16_t v = t == dtype::F16 ? float_to_f16(src[i]) : float_to_bf16(src[i]);
        std::memcpy(out.data() + 2 * i, &v, 2);
      }
      break;
    default:
      mla::detail::throw_error("from_float: dtype ", dtype_name(t), " is not supported (F32, F16, BF16 are)");
  }
  return out;
}

}  // namespace mla::io
