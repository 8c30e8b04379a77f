// Dequantisation of ggml blocks. Expected values come from the block formulas in formats.md §3.3
// and ggml's layouts, written out by hand here (explicit bytes), from test-side packers that place
// chosen integer codes into the layout, and from test-side quantisers (Q8_0, Q4_0, Q4_1). The file
// gguf_test.cpp additionally compares against llama.cpp's own Python dequantisers (gguf-py).
#include "mla/io/quant_blocks.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "expect_error.hpp"
#include "io_test_support.hpp"

using namespace mla::io;
using mla_test::bytes;
using mla_test::span;

namespace {

void put_half(bytes& b, std::size_t at, std::uint16_t h) {
  b[at] = static_cast<std::uint8_t>(h & 0xFF);
  b[at + 1] = static_cast<std::uint8_t>(h >> 8);
}

std::vector<float> deq(ggml_type t, const bytes& b, std::size_t n) { return dequantize(t, span(b), n); }

}  // namespace

BOOST_AUTO_TEST_SUITE(io_quant_blocks)

BOOST_AUTO_TEST_CASE(type_table) {
  // Sizes from the block structs: halves are 2 bytes.
  struct expect {
    ggml_type t;
    std::uint32_t block, size;
  };
  const expect table[] = {
      {ggml_type::F32, 1, 4},
      {ggml_type::F16, 1, 2},
      {ggml_type::BF16, 1, 2},
      {ggml_type::Q4_0, 32, 2 + 16},
      {ggml_type::Q4_1, 32, 2 + 2 + 16},
      {ggml_type::Q5_0, 32, 2 + 4 + 16},
      {ggml_type::Q5_1, 32, 2 + 2 + 4 + 16},
      {ggml_type::Q8_0, 32, 2 + 32},
      {ggml_type::Q8_1, 32, 2 + 2 + 32},
      {ggml_type::Q2_K, 256, 16 + 64 + 2 + 2},
      {ggml_type::Q3_K, 256, 32 + 64 + 12 + 2},
      {ggml_type::Q4_K, 256, 2 + 2 + 12 + 128},
      {ggml_type::Q5_K, 256, 2 + 2 + 12 + 32 + 128},
      {ggml_type::Q6_K, 256, 128 + 64 + 16 + 2},
      {ggml_type::Q8_K, 256, 4 + 256 + 32},
      {ggml_type::MXFP4, 32, 1 + 16},
      {ggml_type::I8, 1, 1},
      {ggml_type::F64, 1, 8},
  };
  for (const auto& e : table) {
    const auto& tr = ggml_traits(e.t);
    BOOST_TEST(tr.block_size == e.block, tr.name);
    BOOST_TEST(tr.type_size == e.size, tr.name);
  }
  BOOST_TEST(find_ggml_type(4) == nullptr);   // Q4_2, removed
  BOOST_TEST(find_ggml_type(31) == nullptr);  // Q4_0_4_4, removed
  BOOST_TEST(find_ggml_type(1000) == nullptr);
  BOOST_TEST(ggml_type_name(ggml_type::Q6_K) == "Q6_K");
  BOOST_TEST(ggml_type_name(static_cast<ggml_type>(99)) == "unknown(99)");
  std::uint64_t n = 0;
  BOOST_TEST(ggml_nbytes(ggml_type::Q4_K, 512, n));
  BOOST_TEST(n == 288u);
  BOOST_TEST(!ggml_nbytes(ggml_type::Q4_K, 100, n));
  BOOST_TEST(can_dequantize(ggml_type::Q5_K));
  BOOST_TEST(!can_dequantize(ggml_type::IQ2_XXS));
}

// ---- Hand-computed 32-element blocks --------------------------------------------------------------

BOOST_AUTO_TEST_CASE(q4_0_by_hand) {
  // d = 0.5 (0x3800); qs[j] = j | (15 - j) << 4 -> y[j] = (j - 8) / 2, y[j + 16] = (7 - j) / 2.
  bytes b = {0x00, 0x38, 0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5, 0x96,
             0x87, 0x78, 0x69, 0x5A, 0x4B, 0x3C, 0x2D, 0x1E, 0x0F};
  const auto y = deq(ggml_type::Q4_0, b, 32);
  BOOST_TEST(y[0] == -4.0f);
  BOOST_TEST(y[8] == 0.0f);
  BOOST_TEST(y[15] == 3.5f);
  BOOST_TEST(y[16] == 3.5f);
  BOOST_TEST(y[31] == -4.0f);
  for (int j = 0; j < 16; ++j) {
    BOOST_TEST(y[j] == static_cast<float>(j - 8) * 0.5f);
    BOOST_TEST(y[j + 16] == static_cast<float>(7 - j) * 0.5f);
  }
}

BOOST_AUTO_TEST_CASE(q4_1_by_hand) {
  // d = 0.25 (0x3400), m = -1 (0xBC00); y[j] = j / 4 - 1, y[j + 16] = (15 - j) / 4 - 1.
  bytes b = {0x00, 0x34, 0x00, 0xBC, 0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5,
             0x96, 0x87, 0x78, 0x69, 0x5A, 0x4B, 0x3C, 0x2D, 0x1E, 0x0F};
  const auto y = deq(ggml_type::Q4_1, b, 32);
  BOOST_TEST(y[0] == -1.0f);
  BOOST_TEST(y[15] == 2.75f);
  BOOST_TEST(y[16] == 2.75f);
  BOOST_TEST(y[31] == -1.0f);
  for (int j = 0; j < 16; ++j) BOOST_TEST(y[j] == static_cast<float>(j) * 0.25f - 1.0f);
}

BOOST_AUTO_TEST_CASE(q5_0_and_q5_1_by_hand) {
  // Q5_0: d = 1, qh = 0x80000001 (bits 0 and 31), qs = 0 except qs[3] = 0x5A.
  bytes b(22, 0);
  put_half(b, 0, 0x3C00);
  b[2] = 0x01;
  b[5] = 0x80;  // qh little-endian
  b[6 + 3] = 0x5A;
  auto y = deq(ggml_type::Q5_0, b, 32);
  BOOST_TEST(y[0] == 0.0f);  // 0 | 16 - 16
  BOOST_TEST(y[1] == -16.0f);
  BOOST_TEST(y[3] == -6.0f);    // 0xA - 16
  BOOST_TEST(y[19] == -11.0f);  // 0x5 - 16
  BOOST_TEST(y[16] == -16.0f);
  BOOST_TEST(y[31] == 0.0f);  // bit 31 -> element 31
  // Q5_1: d = 2, m = 0.5, qh = bit 16 (element 16), qs[0] = 0x21.
  bytes c(24, 0);
  put_half(c, 0, 0x4000);
  put_half(c, 2, 0x3800);
  c[4 + 2] = 0x01;  // qh bit 16
  c[8 + 0] = 0x21;
  y = deq(ggml_type::Q5_1, c, 32);
  BOOST_TEST(y[0] == 2.5f);    // 1 * 2 + 0.5
  BOOST_TEST(y[16] == 36.5f);  // (2 | 16) * 2 + 0.5
  BOOST_TEST(y[1] == 0.5f);
  BOOST_TEST(y[17] == 0.5f);
}

BOOST_AUTO_TEST_CASE(q8_0_and_q8_1_by_hand) {
  bytes b(34);
  put_half(b, 0, 0x3800);  // 0.5
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(j - 16));
  b[2 + 31] = 0x80;  // -128
  auto y = deq(ggml_type::Q8_0, b, 32);
  BOOST_TEST(y[0] == -8.0f);
  BOOST_TEST(y[16] == 0.0f);
  BOOST_TEST(y[30] == 7.0f);
  BOOST_TEST(y[31] == -64.0f);
  bytes c(36);
  put_half(c, 0, 0x3400);  // d = 0.25
  put_half(c, 2, 0x7BFF);  // s: ignored
  for (int j = 0; j < 32; ++j) c[4 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(3 * j - 50));
  y = deq(ggml_type::Q8_1, c, 32);
  for (int j = 0; j < 32; ++j) BOOST_TEST(y[j] == static_cast<float>(3 * j - 50) * 0.25f);
}

BOOST_AUTO_TEST_CASE(mxfp4_ggml_layout_by_hand) {
  // kvalues (formats.md §1.8): twice E2M1; d = 2^(e - 128). e = 128 -> d = 1.
  const float kvalues[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  for (int e : {128, 0, 200}) {
    bytes b(17);
    b[0] = static_cast<std::uint8_t>(e);
    for (int j = 0; j < 16; ++j) b[1 + j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
    const auto y = deq(ggml_type::MXFP4, b, 32);
    const float d = std::ldexp(1.0f, e - 128);
    for (int j = 0; j < 16; ++j) {
      BOOST_TEST(y[j] == kvalues[j] * d);            // low nibble: element j
      BOOST_TEST(y[j + 16] == kvalues[15 - j] * d);  // high nibble: element j + 16
    }
  }
}

// ---- K-quants: codes and scales chosen, packed by the test into ggml's layout --------------------

BOOST_AUTO_TEST_CASE(q2_k_packed) {
  // scales[i] = i | (15 - i) << 4 (scale i, min 15 - i); every qs byte = 0xE4 = codes 0,1,2,3 at
  // shifts 0,2,4,6. Element 128h + 32j + 16k + l -> code j, sub-block 8h + 2j + k.
  bytes b(84);
  for (int i = 0; i < 16; ++i) b[i] = static_cast<std::uint8_t>(i | ((15 - i) << 4));
  for (int i = 0; i < 64; ++i) b[16 + i] = 0xE4;
  put_half(b, 80, 0x3C00);  // d = 1
  put_half(b, 82, 0x3800);  // dmin = 0.5
  const auto y = deq(ggml_type::Q2_K, b, 256);
  BOOST_TEST(y[0] == -7.5f);    // scale 0, code 0, min 15 * 0.5
  BOOST_TEST(y[255] == 45.0f);  // sub-block 15: scale 15, code 3, min 0
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 2; ++k)
        for (int l = 0; l < 16; ++l) {
          const int sb = 8 * h + 2 * j + k;
          const float expected = static_cast<float>(sb * j) - 0.5f * static_cast<float>(15 - sb);
          BOOST_TEST_REQUIRE(y[128 * h + 32 * j + 16 * k + l] == expected);
        }
}

BOOST_AUTO_TEST_CASE(q3_k_packed) {
  // 16 six-bit scales s_i = i + 20 (effective i - 12). Packing (12 bytes): low nibble of s_i in
  // byte i (i < 8) or the high nibble of byte i - 8; high 2 bits at bits 2(i / 4) of byte 8 + i % 4.
  bytes b(110, 0);
  for (int i = 0; i < 16; ++i) {
    const int s = i + 20;
    if (i < 8)
      b[96 + i] |= static_cast<std::uint8_t>(s & 15);
    else
      b[96 + i - 8] |= static_cast<std::uint8_t>((s & 15) << 4);
    b[96 + 8 + i % 4] |= static_cast<std::uint8_t>(((s >> 4) & 3) << (2 * (i / 4)));
  }
  for (int i = 0; i < 32; ++i) b[i] = 0xFF;       // hmask: high bit set everywhere...
  b[0] = 0xFE;                                    // ...except element 0 (bit 0 of hmask[0]): code - 4
  b[17] = 0xDF;                                   // and bit 5 of hmask[17] -> h = 1, j = 1, k = 1, l = 1
  for (int i = 0; i < 64; ++i) b[32 + i] = 0xE4;  // low 2 bits: code j at shift 2j
  put_half(b, 108, 0x3800);                       // d = 0.5
  const auto y = deq(ggml_type::Q3_K, b, 256);
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 2; ++k)
        for (int l = 0; l < 16; ++l) {
          const int e = 128 * h + 32 * j + 16 * k + l;
          const int sb = 8 * h + 2 * j + k;
          int code = j;
          if (e == 0 || (h == 1 && j == 1 && k == 1 && l == 1)) code -= 4;
          BOOST_TEST_REQUIRE(y[e] == 0.5f * static_cast<float>(sb - 12) * static_cast<float>(code), "element " << e);
        }
  BOOST_TEST(y[0] == 24.0f);  // 0.5 * (0 - 12) * (0 - 4)
}

namespace {
// Q4_K / Q5_K (scale, min) packing, 6 bits each: j < 4 in the low 6 bits of bytes j and j + 4;
// j >= 4: low nibbles of byte j + 4 (scale) / its high nibble (min), top 2 bits in bits 6-7 of
// byte j - 4 (scale) and byte j (min).
void pack_k4_scales(std::uint8_t* s, const int* scale, const int* min) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] |= static_cast<std::uint8_t>(scale[j]);
      s[j + 4] |= static_cast<std::uint8_t>(min[j]);
    } else {
      s[j + 4] |= static_cast<std::uint8_t>((scale[j] & 15) | ((min[j] & 15) << 4));
      s[j - 4] |= static_cast<std::uint8_t>((scale[j] >> 4) << 6);
      s[j] |= static_cast<std::uint8_t>((min[j] >> 4) << 6);
    }
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(q4_k_packed) {
  int scale[8], min[8];
  for (int j = 0; j < 8; ++j) {
    scale[j] = 10 + 7 * j;  // 10 .. 59
    min[j] = 63 - 5 * j;    // 63 .. 28
  }
  bytes b(144);
  put_half(b, 0, 0x3C00);  // d = 1
  put_half(b, 2, 0x3400);  // dmin = 0.25
  pack_k4_scales(&b[4], scale, min);
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) b[16 + 32 * p + l] = static_cast<std::uint8_t>((l & 15) | ((15 - (l & 15)) << 4));
  const auto y = deq(ggml_type::Q4_K, b, 256);
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) {
      const float lo = static_cast<float>(scale[2 * p] * (l & 15)) - 0.25f * static_cast<float>(min[2 * p]);
      const float hi =
          static_cast<float>(scale[2 * p + 1] * (15 - (l & 15))) - 0.25f * static_cast<float>(min[2 * p + 1]);
      BOOST_TEST_REQUIRE(y[64 * p + l] == lo, "element " << 64 * p + l);
      BOOST_TEST_REQUIRE(y[64 * p + 32 + l] == hi, "element " << 64 * p + 32 + l);
    }
  BOOST_TEST(y[0] == -15.75f);  // 10 * 0 - 63 / 4
}

BOOST_AUTO_TEST_CASE(q5_k_packed) {
  int scale[8], min[8];
  for (int j = 0; j < 8; ++j) {
    scale[j] = 63 - 3 * j;
    min[j] = 4 * j + 1;
  }
  bytes b(176);
  put_half(b, 0, 0x3800);  // d = 0.5
  put_half(b, 2, 0x3C00);  // dmin = 1
  pack_k4_scales(&b[4], scale, min);
  // qh[l]: 0x55 for even l (bits 2p set: low half gets +16), 0xAA for odd l (bits 2p+1: high half).
  for (int l = 0; l < 32; ++l) b[16 + l] = (l % 2 == 0) ? 0x55 : 0xAA;
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) b[48 + 32 * p + l] = static_cast<std::uint8_t>((l & 15) | (((l + p) & 15) << 4));
  const auto y = deq(ggml_type::Q5_K, b, 256);
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) {
      const int qlo = (l & 15) + (l % 2 == 0 ? 16 : 0);
      const int qhi = ((l + p) & 15) + (l % 2 == 1 ? 16 : 0);
      BOOST_TEST_REQUIRE(y[64 * p + l] ==
                         0.5f * static_cast<float>(scale[2 * p] * qlo) - static_cast<float>(min[2 * p]));
      BOOST_TEST_REQUIRE(y[64 * p + 32 + l] ==
                         0.5f * static_cast<float>(scale[2 * p + 1] * qhi) - static_cast<float>(min[2 * p + 1]));
    }
}

BOOST_AUTO_TEST_CASE(q6_k_packed) {
  // Code q(e) = (7e + 3) % 64 for element e, int8 scale of sub-block e / 16 = e / 16 - 8, d = 0.5:
  // y[e] = 0.5 * (e / 16 - 8) * (q(e) - 32). Packing for half h, l < 32:
  //   ql[64h + l]      = lo4(q(128h + l))      | lo4(q(128h + 64 + l)) << 4
  //   ql[64h + 32 + l] = lo4(q(128h + 32 + l)) | lo4(q(128h + 96 + l)) << 4
  //   qh[32h + l]      = hi2(q(128h + l)) | hi2(q(+32)) << 2 | hi2(q(+64)) << 4 | hi2(q(+96)) << 6
  auto q = [](int e) { return (7 * e + 3) % 64; };
  bytes b(210, 0);
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const int e = 128 * h + l;
      b[64 * h + l] = static_cast<std::uint8_t>((q(e) & 15) | ((q(e + 64) & 15) << 4));
      b[64 * h + 32 + l] = static_cast<std::uint8_t>((q(e + 32) & 15) | ((q(e + 96) & 15) << 4));
      b[128 + 32 * h + l] = static_cast<std::uint8_t>((q(e) >> 4) | ((q(e + 32) >> 4) << 2) | ((q(e + 64) >> 4) << 4) |
                                                      ((q(e + 96) >> 4) << 6));
    }
  for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(i - 8));
  put_half(b, 208, 0x3800);
  const auto y = deq(ggml_type::Q6_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    BOOST_TEST_REQUIRE(y[e] == 0.5f * static_cast<float>(e / 16 - 8) * static_cast<float>(q(e) - 32), "element " << e);
  }
  BOOST_TEST(y[0] == 116.0f);  // 0.5 * -8 * (3 - 32)
}

BOOST_AUTO_TEST_CASE(q8_k_by_hand) {
  bytes b(292, 0);
  const float d = 0.125f;
  std::memcpy(b.data(), &d, 4);
  for (int j = 0; j < 256; ++j) b[4 + j] = static_cast<std::uint8_t>(j);  // int8: j - 256 for j >= 128
  const auto y = deq(ggml_type::Q8_K, b, 256);
  for (int j = 0; j < 256; ++j) BOOST_TEST_REQUIRE(y[j] == 0.125f * static_cast<float>(j < 128 ? j : j - 256));
}

// ---- Round trips through the reference quantisers of formats.md §3.3 ------------------------------

namespace {
std::uint16_t h(float x) { return float_to_f16(x); }

bytes quantize_q8_0(const std::vector<float>& x) {
  bytes out;
  for (std::size_t i = 0; i < x.size(); i += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i + j]));
    const float d = amax / 127, id = d != 0 ? 1 / d : 0;
    mla_test::put<std::uint16_t>(out, h(d));
    for (int j = 0; j < 32; ++j)
      out.push_back(static_cast<std::uint8_t>(static_cast<std::int8_t>(std::lround(x[i + j] * id))));
  }
  return out;
}
bytes quantize_q4_0(const std::vector<float>& x) {
  bytes out;
  for (std::size_t i = 0; i < x.size(); i += 32) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(x[i + j]) > amax) {
        amax = std::fabs(x[i + j]);
        max = x[i + j];
      }
    const float d = max / -8, id = d != 0 ? 1 / d : 0;
    mla_test::put<std::uint16_t>(out, h(d));
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<std::int8_t>(x[i + j] * id + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<std::int8_t>(x[i + 16 + j] * id + 8.5f)));
      out.push_back(static_cast<std::uint8_t>(q0 | (q1 << 4)));
    }
  }
  return out;
}
bytes quantize_q4_1(const std::vector<float>& x) {
  bytes out;
  for (std::size_t i = 0; i < x.size(); i += 32) {
    float mn = x[i], mx = x[i];
    for (int j = 0; j < 32; ++j) {
      mn = std::min(mn, x[i + j]);
      mx = std::max(mx, x[i + j]);
    }
    const float d = (mx - mn) / 15, id = d != 0 ? 1 / d : 0;
    mla_test::put<std::uint16_t>(out, h(d));
    mla_test::put<std::uint16_t>(out, h(mn));
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<std::int8_t>((x[i + j] - mn) * id + 0.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<std::int8_t>((x[i + 16 + j] - mn) * id + 0.5f)));
      out.push_back(static_cast<std::uint8_t>(q0 | (q1 << 4)));
    }
  }
  return out;
}
}  // namespace

BOOST_AUTO_TEST_CASE(quantise_dequantise_round_trips) {
  mla_test::rng r(42);
  std::vector<float> x(32 * 64);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = r.uniform(-3.0f, 3.0f) * (1.0f + static_cast<float>(i / 32 % 7));
  x[5] = 0;  // a zero block element; a whole zero block:
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f);

  const auto q8 = quantize_q8_0(x);
  const auto y8 = deq(ggml_type::Q8_0, q8, x.size());
  const auto q40 = quantize_q4_0(x);
  const auto y40 = deq(ggml_type::Q4_0, q40, x.size());
  const auto q41 = quantize_q4_1(x);
  const auto y41 = deq(ggml_type::Q4_1, q41, x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t blk = i / 32;
    const float d8 = f16_to_float(static_cast<std::uint16_t>(q8[34 * blk] | q8[34 * blk + 1] << 8));
    const float d40 = f16_to_float(static_cast<std::uint16_t>(q40[18 * blk] | q40[18 * blk + 1] << 8));
    const float d41 = f16_to_float(static_cast<std::uint16_t>(q41[20 * blk] | q41[20 * blk + 1] << 8));
    const float m41 = f16_to_float(static_cast<std::uint16_t>(q41[20 * blk + 2] | q41[20 * blk + 3] << 8));
    // Exact reconstruction from the stored codes.
    const auto c8 = static_cast<std::int8_t>(q8[34 * blk + 2 + i % 32]);
    BOOST_TEST_REQUIRE(y8[i] == static_cast<float>(c8) * d8);
    const std::uint8_t byte40 = q40[18 * blk + 2 + i % 16];
    const int c40 = (i % 32 < 16) ? (byte40 & 15) : (byte40 >> 4);
    BOOST_TEST_REQUIRE(y40[i] == static_cast<float>(c40 - 8) * d40);
    const std::uint8_t byte41 = q41[20 * blk + 4 + i % 16];
    const int c41 = (i % 32 < 16) ? (byte41 & 15) : (byte41 >> 4);
    BOOST_TEST_REQUIRE(y41[i] == static_cast<float>(c41) * d41 + m41);
    // Error bounded by the scale (plus the rounding of d and m to half precision).
    // Half rounding of d moves a code-q value by at most q * d * 2^-11; of m by |m| * 2^-11.
    const float slack = 1e-5f + std::fabs(x[i]) * 1e-3f;
    BOOST_TEST_REQUIRE(std::fabs(y8[i] - x[i]) <= 0.5f * std::fabs(d8) + slack, "Q8_0 element " << i);
    BOOST_TEST_REQUIRE(std::fabs(y40[i] - x[i]) <= 1.0f * std::fabs(d40) + slack, "Q4_0 element " << i);
    BOOST_TEST_REQUIRE(std::fabs(y41[i] - x[i]) <= 0.51f * std::fabs(d41) + std::fabs(m41) * 1e-3f + slack,
                       "Q4_1 element " << i);
  }
  for (std::size_t i = 64; i < 96; ++i) BOOST_TEST(y8[i] == 0.0f);
}

BOOST_AUTO_TEST_CASE(float_types_and_several_blocks) {
  const float f[3] = {1.0f, -0.5f, 3.0f};
  bytes b(12);
  std::memcpy(b.data(), f, 12);
  BOOST_TEST(deq(ggml_type::F32, b, 3) == (std::vector<float>{1.0f, -0.5f, 3.0f}), boost::test_tools::per_element());
  const bytes h16 = {0x00, 0x3C, 0x00, 0xC0};
  BOOST_TEST(deq(ggml_type::F16, h16, 2) == (std::vector<float>{1.0f, -2.0f}), boost::test_tools::per_element());
  const bytes bf = {0x80, 0x3F, 0x40, 0xC0};
  BOOST_TEST(deq(ggml_type::BF16, bf, 2) == (std::vector<float>{1.0f, -3.0f}), boost::test_tools::per_element());
  // Two Q8_0 blocks: the second block must use its own scale.
  bytes q(68, 0);
  put_half(q, 0, 0x3C00);
  put_half(q, 34, 0x4000);
  q[2] = 3;
  q[36] = 3;
  const auto y = deq(ggml_type::Q8_0, q, 64);
  BOOST_TEST(y[0] == 3.0f);
  BOOST_TEST(y[32] == 6.0f);
}

BOOST_AUTO_TEST_CASE(errors_name_the_type) {
  const bytes b(66, 0);
  mla::test::expect_error([&] { (void)deq(ggml_type::IQ2_XXS, b, 256); }, {"IQ2_XXS", "not supported"});
  mla::test::expect_error([&] { (void)deq(static_cast<ggml_type>(4), b, 32); }, {"unknown ggml type id 4"});
  mla::test::expect_error([&] { (void)deq(ggml_type::Q8_0, b, 40); }, {"Q8_0", "40 elements", "32-element blocks"});
  mla::test::expect_error([&] { (void)deq(ggml_type::Q8_0, b, 32); }, {"Q8_0", "need 34 bytes, got 66"});
  mla::test::expect_error([&] { (void)deq(ggml_type::I32, b, 16); }, {"I32", "not supported"});
}

BOOST_AUTO_TEST_SUITE_END()
