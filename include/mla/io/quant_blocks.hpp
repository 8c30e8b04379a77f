// mla::io ggml types: the type table (block size, bytes per block), dequantisation of ggml blocks into float, as
// stored in GGUF files, and the Q8_0 quantiser the GGUF writer uses (quantize_q8_0).
//
// Layouts (all little-endian; "half" is IEEE binary16; ggml-org/ggml src/ggml-common.h and
// src/ggml-quants.c, formats.md §3.3). Blocks run along ne[0], the fastest axis.
//   Q4_0  32 el, 18 B: d half | qs[16]            y[j] = (lo(qs[j]) - 8) d, y[j+16] = (hi(qs[j]) - 8) d
//   Q4_1  32 el, 20 B: d, m half | qs[16]         y[j] = lo(qs[j]) d + m,   y[j+16] = hi(qs[j]) d + m
//   Q5_0  32 el, 22 B: d | qh u32 | qs[16]        5th bit of y[j] is qh bit j, of y[j+16] bit j+16; -16
//   Q5_1  32 el, 24 B: d, m | qh u32 | qs[16]     as Q5_0 without the -16, plus m
//   Q8_0  32 el, 34 B: d | qs int8[32]            y[j] = qs[j] d
//   Q8_1  32 el, 36 B: d, s half | qs int8[32]    y[j] = qs[j] d (s = d * sum(qs) is a dot helper)
//   Q2_K 256 el, 84 B: scales[16] | qs[64] | d, dmin half
//   Q3_K 256 el,110 B: hmask[32] | qs[64] | scales[12] (16 x 6 bit) | d half
//   Q4_K 256 el,144 B: d, dmin half | scales[12] (8 x (6-bit scale, 6-bit min)) | qs[128]
//   Q5_K 256 el,176 B: d, dmin half | scales[12] | qh[32] | qs[128]
//   Q6_K 256 el,210 B: ql[128] | qh[64] | scales int8[16] | d half
//   Q8_K 256 el,292 B: d float | qs int8[256] | bsums int16[16]
//   MXFP4 32 el, 17 B: e (E8M0) | qs[16]          y[j] = 2 E2M1[lo(qs[j])] 2^(e-128), y[j+16] with hi
// The K-quant formulas are spelled out next to each function below. Operations are evaluated in the
// same order as ggml's reference dequantisers, so results match them bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/io/dtype.hpp"
#include "mla/io/mapped_file.hpp"

namespace mla::io {

// ggml_type ids as written in GGUF tensor infos. Ids 4, 5 (Q4_2, Q4_3), 31-33 and 36-38 (repacked
// layouts) were removed from ggml and are rejected as unknown.
enum class ggml_type : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

struct ggml_type_traits {
  ggml_type type;
  const char* name;
  std::uint32_t block_size;  // elements per block
  std::uint32_t type_size;   // bytes per block
  bool dequantizable;        // dequantize_row() supports it
};

namespace detail {
inline constexpr ggml_type_traits ggml_type_table[] = {
    {ggml_type::F32, "F32", 1, 4, true},
    {ggml_type::F16, "F16", 1, 2, true},
    {ggml_type::Q4_0, "Q4_0", 32, 18, true},
    {ggml_type::Q4_1, "Q4_1", 32, 20, true},
    {ggml_type::Q5_0, "Q5_0", 32, 22, true},
    {ggml_type::Q5_1, "Q5_1", 32, 24, true},
    {ggml_type::Q8_0, "Q8_0", 32, 34, true},
    // ggml's block_q8_1 is 2 halves + 32 int8 = 36 bytes (older Python tables say 40: float d, s).
    {ggml_type::Q8_1, "Q8_1", 32, 36, true},
    {ggml_type::Q2_K, "Q2_K", 256, 84, true},
    {ggml_type::Q3_K, "Q3_K", 256, 110, true},
    {ggml_type::Q4_K, "Q4_K", 256, 144, true},
    {ggml_type::Q5_K, "Q5_K", 256, 176, true},
    {ggml_type::Q6_K, "Q6_K", 256, 210, true},
    {ggml_type::Q8_K, "Q8_K", 256, 292, true},
    {ggml_type::IQ2_XXS, "IQ2_XXS", 256, 66, false},
    {ggml_type::IQ2_XS, "IQ2_XS", 256, 74, false},
    {ggml_type::IQ3_XXS, "IQ3_XXS", 256, 98, false},
    {ggml_type::IQ1_S, "IQ1_S", 256, 50, false},
    {ggml_type::IQ4_NL, "IQ4_NL", 32, 18, false},
    {ggml_type::IQ3_S, "IQ3_S", 256, 110, false},
    {ggml_type::IQ2_S, "IQ2_S", 256, 82, false},
    {ggml_type::IQ4_XS, "IQ4_XS", 256, 136, false},
    {ggml_type::I8, "I8", 1, 1, false},
    {ggml_type::I16, "I16", 1, 2, false},
    {ggml_type::I32, "I32", 1, 4, false},
    {ggml_type::I64, "I64", 1, 8, false},
    {ggml_type::F64, "F64", 1, 8, true},
    {ggml_type::IQ1_M, "IQ1_M", 256, 56, false},
    {ggml_type::BF16, "BF16", 1, 2, true},
    {ggml_type::TQ1_0, "TQ1_0", 256, 54, false},
    {ggml_type::TQ2_0, "TQ2_0", 256, 66, false},
    {ggml_type::MXFP4, "MXFP4", 32, 17, true},
    {ggml_type::NVFP4, "NVFP4", 64, 36, false},
    {ggml_type::Q1_0, "Q1_0", 128, 18, false},
};
}  // namespace detail

// The traits of ggml type id `id`, or nullptr when the id is unknown (or a removed type).
inline const ggml_type_traits* find_ggml_type(std::uint32_t id) {
  for (const auto& t : detail::ggml_type_table) {
    if (static_cast<std::uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

inline const ggml_type_traits& ggml_traits(ggml_type t) {
  const ggml_type_traits* p = find_ggml_type(static_cast<std::uint32_t>(t));
  if (p == nullptr) mla::detail::throw_error("unknown ggml type id ", static_cast<std::uint32_t>(t));
  return *p;
}

// "Q4_K", or "unknown(99)".
inline std::string ggml_type_name(ggml_type t) {
  const ggml_type_traits* p = find_ggml_type(static_cast<std::uint32_t>(t));
  return p ? std::string(p->name) : "unknown(" + std::to_string(static_cast<std::uint32_t>(t)) + ")";
}

// Bytes of `n` elements of type t; false when n is not a whole number of blocks or on overflow.
inline bool ggml_nbytes(ggml_type t, std::uint64_t n, std::uint64_t& nbytes) {
  const ggml_type_traits* p = find_ggml_type(static_cast<std::uint32_t>(t));
  if (p == nullptr || n % p->block_size != 0) return false;
  const std::uint64_t blocks = n / p->block_size;
  if (blocks > std::numeric_limits<std::uint64_t>::max() / p->type_size) return false;
  nbytes = blocks * p->type_size;
  return true;
}

inline bool can_dequantize(ggml_type t) {
  const ggml_type_traits* p = find_ggml_type(static_cast<std::uint32_t>(t));
  return p != nullptr && p->dequantizable;
}

namespace detail {

inline float load_half(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_float(h);
}
inline float load_f32(const std::uint8_t* p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}

inline void dequant_q4_0(const std::uint8_t* b, float* y) {
  const float d = load_half(b);
  const std::uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

inline void dequant_q4_1(const std::uint8_t* b, float* y) {
  const float d = load_half(b);
  const float m = load_half(b + 2);
  const std::uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// Q5_0 / Q5_1: the fifth bit of element j (j < 16) is bit j of qh, of element j + 16 bit j + 16.
inline void dequant_q5(const std::uint8_t* b, float* y, bool has_min) {
  const float d = load_half(b);
  const float m = has_min ? load_half(b + 2) : 0.0f;
  const std::uint8_t* p = b + (has_min ? 4 : 2);
  std::uint32_t qh;
  std::memcpy(&qh, p, 4);
  const std::uint8_t* qs = p + 4;
  const int offset = has_min ? 0 : 16;
  for (int j = 0; j < 16; ++j) {
    const int x0 = static_cast<int>((qs[j] & 0x0F) | (((qh >> j) & 1u) << 4)) - offset;
    const int x1 = static_cast<int>((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - offset;
    if (has_min) {
      y[j] = static_cast<float>(x0) * d + m;
      y[j + 16] = static_cast<float>(x1) * d + m;
    } else {
      y[j] = static_cast<float>(x0) * d;
      y[j + 16] = static_cast<float>(x1) * d;
    }
  }
}

// Q8_0 (d at 0, qs at 2) and Q8_1 (d at 0, s at 2, qs at 4).
inline void dequant_q8(const std::uint8_t* b, float* y, std::size_t qs_offset) {
  const float d = load_half(b);
  const std::uint8_t* qs = b + qs_offset;
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(qs[j])) * d;
}

// Q2_K: 16 sub-blocks of 16. scales[i]: low nibble = scale, high nibble = min (4 bits each).
// Element 128h + 32j + 16k + l (h < 2, j < 4, k < 2, l < 16) uses scales[8h + 2j + k] and the 2 bits
// at shift 2j of qs[32h + 16k + l]:  y = d * sc * q - dmin * mn.
inline void dequant_q2_k(const std::uint8_t* b, float* y) {
  const std::uint8_t* scales = b;
  const std::uint8_t* qs = b + 16;
  const float d = load_half(b + 80);
  const float dmin = load_half(b + 82);
  for (int h = 0; h < 2; ++h) {
    const std::uint8_t* q = qs + 32 * h;
    for (int j = 0; j < 4; ++j) {
      for (int k = 0; k < 2; ++k) {
        const std::uint8_t sc = scales[8 * h + 2 * j + k];
        const float dl = d * static_cast<float>(sc & 0x0F);
        const float ml = dmin * static_cast<float>(sc >> 4);
        float* out = y + 128 * h + 32 * j + 16 * k;
        for (int l = 0; l < 16; ++l) {
          out[l] = dl * static_cast<float>((q[16 * k + l] >> (2 * j)) & 3) - ml;
        }
      }
    }
  }
}

// Q3_K: 16 sub-blocks of 16 with signed 6-bit scales (stored + 32). Scale i: low 4 bits are
// scales[i] & 15 (i < 8) or scales[i - 8] >> 4 (i >= 8); high 2 bits are bits 2(i/4)..2(i/4)+1 of
// scales[8 + i % 4]. Element 128h + 32j + 16k + l: low 2 bits from qs[32h + 16k + l] at shift 2j,
// high bit from hmask[16k + l] bit 4h + j; q = low - (high ? 0 : 4) in [-4, 3].
inline void dequant_q3_k(const std::uint8_t* b, float* y) {
  const std::uint8_t* hmask = b;
  const std::uint8_t* qs = b + 32;
  const std::uint8_t* sc = b + 96;
  const float d = load_half(b + 108);
  int scale[16];
  for (int i = 0; i < 16; ++i) {
    const int lo = i < 8 ? (sc[i] & 0x0F) : (sc[i - 8] >> 4);
    const int hi = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
    scale[i] = (lo | (hi << 4)) - 32;
  }
  for (int h = 0; h < 2; ++h) {
    const std::uint8_t* q = qs + 32 * h;
    for (int j = 0; j < 4; ++j) {
      const std::uint8_t mask = static_cast<std::uint8_t>(1u << (4 * h + j));
      for (int k = 0; k < 2; ++k) {
        const float dl = d * static_cast<float>(scale[8 * h + 2 * j + k]);
        float* out = y + 128 * h + 32 * j + 16 * k;
        for (int l = 0; l < 16; ++l) {
          const int lo = (q[16 * k + l] >> (2 * j)) & 3;
          const int v = lo - ((hmask[16 * k + l] & mask) ? 0 : 4);
          out[l] = dl * static_cast<float>(v);
        }
      }
    }
  }
}

// The 8 (scale, min) pairs of Q4_K / Q5_K, 6 bits each, packed in 12 bytes s[0..11]:
//   j < 4:  scale = s[j] & 63,                           min = s[j + 4] & 63
//   j >= 4: scale = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4, min = (s[j + 4] >> 4) | (s[j] >> 6) << 4
inline void k4_scale_min(int j, const std::uint8_t* s, int& scale, int& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_K: 8 sub-blocks of 32. Sub-blocks 2p and 2p+1 (p < 4) share qs[32p .. 32p+31]: low nibbles
// are sub-block 2p, high nibbles sub-block 2p+1. y = (d * scale) * q - dmin * min.
inline void dequant_q4_k(const std::uint8_t* b, float* y) {
  const float d = load_half(b);
  const float dmin = load_half(b + 2);
  const std::uint8_t* s = b + 4;
  const std::uint8_t* qs = b + 16;
  for (int p = 0; p < 4; ++p) {
    int sc0, m0, sc1, m1;
    k4_scale_min(2 * p, s, sc0, m0);
    k4_scale_min(2 * p + 1, s, sc1, m1);
    const float d0 = d * static_cast<float>(sc0), mm0 = dmin * static_cast<float>(m0);
    const float d1 = d * static_cast<float>(sc1), mm1 = dmin * static_cast<float>(m1);
    const std::uint8_t* q = qs + 32 * p;
    for (int l = 0; l < 32; ++l) {
      y[64 * p + l] = d0 * static_cast<float>(q[l] & 0x0F) - mm0;
      y[64 * p + 32 + l] = d1 * static_cast<float>(q[l] >> 4) - mm1;
    }
  }
}

// Q5_K: as Q4_K, plus a fifth bit: element 64p + l takes bit 2p of qh[l], element 64p + 32 + l
// bit 2p + 1 of qh[l].
inline void dequant_q5_k(const std::uint8_t* b, float* y) {
  const float d = load_half(b);
  const float dmin = load_half(b + 2);
  const std::uint8_t* s = b + 4;
  const std::uint8_t* qh = b + 16;
  const std::uint8_t* qs = b + 48;
  for (int p = 0; p < 4; ++p) {
    int sc0, m0, sc1, m1;
    k4_scale_min(2 * p, s, sc0, m0);
    k4_scale_min(2 * p + 1, s, sc1, m1);
    const float d0 = d * static_cast<float>(sc0), mm0 = dmin * static_cast<float>(m0);
    const float d1 = d * static_cast<float>(sc1), mm1 = dmin * static_cast<float>(m1);
    const std::uint8_t* q = qs + 32 * p;
    for (int l = 0; l < 32; ++l) {
      const int lo = (q[l] & 0x0F) | (((qh[l] >> (2 * p)) & 1) << 4);
      const int hi = (q[l] >> 4) | (((qh[l] >> (2 * p + 1)) & 1) << 4);
      y[64 * p + l] = d0 * static_cast<float>(lo) - mm0;
      y[64 * p + 32 + l] = d1 * static_cast<float>(hi) - mm1;
    }
  }
}

// Q6_K: 16 sub-blocks of 16 with int8 scales; q = (4 low bits | 2 high bits << 4) - 32.
// For half h (128 elements), with L = ql + 64h, H = qh + 32h, S = scales + 8h, l < 32, i = l / 16:
//   y[128h +      l] = d * S[i]     * ((L[l]      & 15) | ((H[l] >> 0) & 3) << 4) - 32)
//   y[128h + 32 + l] = d * S[i + 2] * ((L[l + 32] & 15) | ((H[l] >> 2) & 3) << 4) - 32)
//   y[128h + 64 + l] = d * S[i + 4] * ((L[l]      >> 4) | ((H[l] >> 4) & 3) << 4) - 32)
//   y[128h + 96 + l] = d * S[i + 6] * ((L[l + 32] >> 4) | ((H[l] >> 6) & 3) << 4) - 32)
inline void dequant_q6_k(const std::uint8_t* b, float* y) {
  const std::uint8_t* ql = b;
  const std::uint8_t* qh = b + 128;
  const std::uint8_t* scales = b + 192;
  const float d = load_half(b + 208);
  for (int h = 0; h < 2; ++h) {
    const std::uint8_t* L = ql + 64 * h;
    const std::uint8_t* H = qh + 32 * h;
    const std::uint8_t* S = scales + 8 * h;
    float* out = y + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int i = l / 16;
      const int q1 = ((L[l] & 0x0F) | (((H[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((L[l + 32] & 0x0F) | (((H[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((L[l] >> 4) | (((H[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)) - 32;
      auto sc = [&](int k) { return static_cast<float>(static_cast<std::int8_t>(S[k])); };
      out[l] = d * sc(i) * static_cast<float>(q1);
      out[l + 32] = d * sc(i + 2) * static_cast<float>(q2);
      out[l + 64] = d * sc(i + 4) * static_cast<float>(q3);
      out[l + 96] = d * sc(i + 6) * static_cast<float>(q4);
    }
  }
}

inline void dequant_q8_k(const std::uint8_t* b, float* y) {
  const float d = load_f32(b);
  for (int j = 0; j < 256; ++j) y[j] = d * static_cast<float>(static_cast<std::int8_t>(b[4 + j]));
}

// ggml MXFP4: the scale byte first, then 16 bytes; low nibble of qs[j] is element j, high nibble
// element j + 16 (not the HF/gpt-oss order, see mxfp4.hpp). ggml's table is twice E2M1 as int8 (so
// nibble 8 is +0, where the HF table has -0) with scale d = 2^(e-128). e = 255 gives NaN (OCP MX)
// where ggml would compute 2^127; no quantiser writes 255.
inline constexpr float ggml_mxfp4_kvalues[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
inline void dequant_mxfp4_ggml(const std::uint8_t* b, float* y) {
  const float d = e8m0_to_float(b[0]) * 0.5f;  // exact: 2^-128 is still a float subnormal
  const std::uint8_t* qs = b + 1;
  for (int j = 0; j < 16; ++j) {
    y[j] = ggml_mxfp4_kvalues[qs[j] & 0x0F] * d;
    y[j + 16] = ggml_mxfp4_kvalues[qs[j] >> 4] * d;
  }
}

}  // namespace detail

// Dequantises `n` elements of type t from `src` (exactly ggml_nbytes(t, n) bytes) into dst[0..n).
// Throws naming the type when it is not supported or the sizes disagree.
inline void dequantize_row(ggml_type t, byte_span src, float* dst, std::size_t n) {
  const ggml_type_traits* tr = find_ggml_type(static_cast<std::uint32_t>(t));
  check(tr != nullptr, "dequantize: unknown ggml type id ", static_cast<std::uint32_t>(t));
  check(tr->dequantizable, "dequantize: ggml type ", tr->name,
        " is not supported (supported: F32, "
        "F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, MXFP4)");
  std::uint64_t expected = 0;
  check(ggml_nbytes(t, n, expected), "dequantize ", tr->name, ": ", n, " elements are not a whole number of ",
        tr->block_size, "-element blocks");
  check(src.size == expected, "dequantize ", tr->name, ": ", n, " elements need ", expected, " bytes, got ", src.size);
  const std::uint8_t* p = src.data;
  const std::size_t blocks = n / tr->block_size;
  const std::size_t bs = tr->block_size;
  const std::size_t ts = tr->type_size;
  switch (t) {
    case ggml_type::F32:
      if (n > 0) std::memcpy(dst, p, n * 4);
      return;
    case ggml_type::F16:
      to_float(dtype::F16, src, dst, n);
      return;
    case ggml_type::BF16:
      to_float(dtype::BF16, src, dst, n);
      return;
    case ggml_type::F64:
      to_float(dtype::F64, src, dst, n);
      return;
    default:
      break;
  }
  for (std::size_t i = 0; i < blocks; ++i) {
    const std::uint8_t* b = p + i * ts;
    float* y = dst + i * bs;
    switch (t) {
      case ggml_type::Q4_0:
        detail::dequant_q4_0(b, y);
        break;
      case ggml_type::Q4_1:
        detail::dequant_q4_1(b, y);
        break;
      case ggml_type::Q5_0:
        detail::dequant_q5(b, y, false);
        break;
      case ggml_type::Q5_1:
        detail::dequant_q5(b, y, true);
        break;
      case ggml_type::Q8_0:
        detail::dequant_q8(b, y, 2);
        break;
      case ggml_type::Q8_1:
        detail::dequant_q8(b, y, 4);
        break;
      case ggml_type::Q2_K:
        detail::dequant_q2_k(b, y);
        break;
      case ggml_type::Q3_K:
        detail::dequant_q3_k(b, y);
        break;
      case ggml_type::Q4_K:
        detail::dequant_q4_k(b, y);
        break;
      case ggml_type::Q5_K:
        detail::dequant_q5_k(b, y);
        break;
      case ggml_type::Q6_K:
        detail::dequant_q6_k(b, y);
        break;
      case ggml_type::Q8_K:
        detail::dequant_q8_k(b, y);
        break;
      case ggml_type::MXFP4:
        detail::dequant_mxfp4_ggml(b, y);
        break;
      default:
        mla::detail::throw_error("dequantize: ggml type ", tr->name, " is not supported");
    }
  }
}

// Quantises `n` floats (a multiple of 32) into Q8_0 blocks at dst (n / 32 * 34 bytes), by ggml's reference rule:
// per block d = amax / 127 (amax = max |x|), q[j] = round-half-away(x[j] / d) (0 when amax is 0); the block stores
// d as half. Dequantised, an element is off by at most d/2 plus 127 |d - half(d)| (the rounding of d itself).
inline void quantize_q8_0(const float* x, std::uint8_t* dst, std::size_t n) {
  check(n % 32 == 0, "quantize Q8_0: ", n, " elements are not a whole number of 32-element blocks");
  for (std::size_t b = 0; b < n / 32; ++b) {
    const float* v = x + b * 32;
    std::uint8_t* out = dst + b * 34;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
    check(std::isfinite(amax), "quantize Q8_0: block ", b, " holds a non-finite value");
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const std::uint16_t h = float_to_f16(d);
    std::memcpy(out, &h, 2);
    for (int j = 0; j < 32; ++j) {
      const long q = std::lround(v[j] * id);
      out[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::max(-127L, std::min(127L, q))));
    }
  }
}

inline std::vector<float> dequantize(ggml_type t, byte_span src, std::size_t n) {
  std::vector<float> out(n);
  dequantize_row(t, src, out.data(), n);
  return out;
}

}  // namespace mla::io
