#include "mla/io/dtype.hpp"

#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "expect_error.hpp"

using namespace mla::io;

namespace {
bool same_bits(float a, float b) { return float_bits(a) == float_bits(b); }

// Independent decode of binary16 through std::ldexp (no bit tricks).
float f16_reference(std::uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
  float mag;
  if (exp == 0)
    mag = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31)
    mag = mant == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  else
    mag = std::ldexp(static_cast<float>(1024 + mant), exp - 25);
  return sign ? -mag : mag;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(io_dtype)

BOOST_AUTO_TEST_CASE(names_and_sizes) {
  BOOST_TEST(dtype_count == 22u);
  for (std::size_t i = 0; i < dtype_count; ++i) {
    const auto t = static_cast<dtype>(i);
    dtype back{};
    BOOST_TEST(parse_dtype(dtype_name(t), back));
    BOOST_TEST(static_cast<int>(back) == static_cast<int>(t));
  }
  BOOST_TEST(dtype_size(dtype::BF16) == 2u);
  BOOST_TEST(dtype_size(dtype::F16) == 2u);
  BOOST_TEST(dtype_size(dtype::I16) == 2u);
  BOOST_TEST(dtype_size(dtype::F32) == 4u);
  BOOST_TEST(dtype_size(dtype::I32) == 4u);
  BOOST_TEST(dtype_size(dtype::U32) == 4u);
  BOOST_TEST(dtype_size(dtype::U8) == 1u);
  BOOST_TEST(dtype_size(dtype::I8) == 1u);
  BOOST_TEST(dtype_size(dtype::BOOL) == 1u);
  BOOST_TEST(dtype_size(dtype::F8_E4M3) == 1u);
  BOOST_TEST(dtype_size(dtype::F64) == 8u);
  BOOST_TEST(dtype_size(dtype::I64) == 8u);
  BOOST_TEST(dtype_size(dtype::U64) == 8u);
  BOOST_TEST(dtype_size(dtype::C64) == 8u);
  BOOST_TEST(dtype_bits(dtype::F4) == 4u);
  BOOST_TEST(dtype_size(dtype::F4) == 0u);  // sub-byte
  BOOST_TEST(dtype_bits(dtype::F6_E2M3) == 6u);

  std::uint64_t n = 0;
  BOOST_TEST(dtype_nbytes(dtype::F4, 6, n));
  BOOST_TEST(n == 3u);
  BOOST_TEST(!dtype_nbytes(dtype::F4, 5, n));  // half a byte
  BOOST_TEST(dtype_nbytes(dtype::F6_E3M2, 4, n));
  BOOST_TEST(n == 3u);
  BOOST_TEST(!dtype_nbytes(dtype::F64, std::numeric_limits<std::uint64_t>::max() / 4, n));  // overflow

  mla::test::expect_error([] { (void)dtype_from_name("F12"); }, {"unknown dtype 'F12'", "BF16", "F8_E4M3"});
  BOOST_TEST(static_cast<int>(dtype_from_name("F8_E5M2")) == static_cast<int>(dtype::F8_E5M2));
}

BOOST_AUTO_TEST_CASE(f16_known_bit_patterns) {
  BOOST_TEST(f16_to_float(0x3C00) == 1.0f);
  BOOST_TEST(f16_to_float(0xC000) == -2.0f);
  BOOST_TEST(f16_to_float(0x7BFF) == 65504.0f);
  BOOST_TEST(f16_to_float(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
  BOOST_TEST(f16_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  BOOST_TEST(f16_to_float(0x03FF) == std::ldexp(1023.0f, -24));
  BOOST_TEST(f16_to_float(0x3555) == 0.333251953125f);
  BOOST_TEST(f16_to_float(0x7C00) == std::numeric_limits<float>::infinity());
  BOOST_TEST(f16_to_float(0xFC00) == -std::numeric_limits<float>::infinity());
  BOOST_TEST(std::isnan(f16_to_float(0x7E00)));
  BOOST_TEST(std::isnan(f16_to_float(0x7C01)));
  BOOST_TEST(std::signbit(f16_to_float(0x8000)));
  BOOST_TEST(f16_to_float(0x8000) == 0.0f);

  BOOST_TEST(float_to_f16(1.0f) == 0x3C00);
  BOOST_TEST(float_to_f16(65504.0f) == 0x7BFF);
  BOOST_TEST(float_to_f16(65519.99f) == 0x7BFF);
  BOOST_TEST(float_to_f16(65520.0f) == 0x7C00);  // tie with an odd mantissa: up to inf
  BOOST_TEST(float_to_f16(1e10f) == 0x7C00);
  BOOST_TEST(float_to_f16(-1e10f) == 0xFC00);
  BOOST_TEST(float_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
  BOOST_TEST(float_to_f16(std::ldexp(1.0f, -25)) == 0x0000);  // tie: to even (0)
  BOOST_TEST(float_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  BOOST_TEST(float_to_f16(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 ulp: tie to even 2
  BOOST_TEST(float_to_f16(std::ldexp(1.0f, -30)) == 0x0000);
  BOOST_TEST(float_to_f16(-std::ldexp(1.0f, -30)) == 0x8000);  // sign kept on underflow
  BOOST_TEST(float_to_f16(std::numeric_limits<float>::denorm_min()) == 0x0000);
  const std::uint16_t qnan = float_to_f16(std::numeric_limits<float>::quiet_NaN());
  BOOST_TEST(((qnan & 0x7C00) == 0x7C00 && (qnan & 0x03FF) != 0));
  // A float NaN whose payload lives only in the low bits must still come out NaN, not inf.
  const std::uint16_t low_nan = float_to_f16(bits_float(0xFF800001u));
  BOOST_TEST(((low_nan & 0x7E00) == 0x7E00 && (low_nan & 0x8000) != 0));
}

BOOST_AUTO_TEST_CASE(f16_all_patterns_decode_like_ldexp_and_round_trip) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto h16 = static_cast<std::uint16_t>(h);
    const float f = f16_to_float(h16);
    const float ref = f16_reference(h16);
    const bool nan = ((h >> 10) & 31) == 31 && (h & 1023) != 0;
    if (nan) {
      BOOST_TEST_REQUIRE(std::isnan(f));
      const std::uint16_t back = float_to_f16(f);
      BOOST_TEST_REQUIRE((back & 0x7E00) == 0x7E00);          // NaN, quiet
      BOOST_TEST_REQUIRE((back & 0x8000) == (h16 & 0x8000));  // sign kept
      BOOST_TEST_REQUIRE((back & 0x1FF) == (h16 & 0x1FF));    // payload kept
    } else {
      BOOST_TEST_REQUIRE(same_bits(f, ref), "pattern " << h << ": " << f << " vs " << ref);
      BOOST_TEST_REQUIRE(float_to_f16(f) == h16, "pattern " << h);
    }
  }
}

// Every midpoint between two adjacent finite halves (exact in float) must round to the even one,
// and one float ulp either side must round to the nearer one.
BOOST_AUTO_TEST_CASE(f16_rounds_to_nearest_even) {
  for (std::uint32_t h = 0; h < 0x7BFF; ++h) {
    for (std::uint32_t sign : {0u, 0x8000u}) {
      const auto lo = static_cast<std::uint16_t>(h | sign), hi = static_cast<std::uint16_t>((h + 1) | sign);
      const float a = f16_to_float(lo), b = f16_to_float(hi);
      const float mid = static_cast<float>((static_cast<double>(a) + static_cast<double>(b)) / 2);
      BOOST_TEST_REQUIRE(static_cast<double>(mid) == (static_cast<double>(a) + static_cast<double>(b)) / 2);
      const std::uint16_t even = (h % 2 == 0) ? lo : hi;
      BOOST_TEST_REQUIRE(float_to_f16(mid) == even, "midpoint after " << h);
      BOOST_TEST_REQUIRE(float_to_f16(std::nextafter(mid, a)) == lo, "below midpoint after " << h);
      BOOST_TEST_REQUIRE(float_to_f16(std::nextafter(mid, b)) == hi, "above midpoint after " << h);
    }
  }
}

BOOST_AUTO_TEST_CASE(bf16_known_patterns_and_rounding) {
  BOOST_TEST(bf16_to_float(0x3F80) == 1.0f);
  BOOST_TEST(bf16_to_float(0xC000) == -2.0f);
  BOOST_TEST(bf16_to_float(0x7F80) == std::numeric_limits<float>::infinity());
  BOOST_TEST(bf16_to_float(0xFF80) == -std::numeric_limits<float>::infinity());
  BOOST_TEST(std::isnan(bf16_to_float(0x7FC0)));
  BOOST_TEST(bf16_to_float(0x0001) == std::ldexp(1.0f, -133));   // smallest subnormal
  BOOST_TEST(bf16_to_float(0x7F7F) == std::ldexp(255.0f, 120));  // largest finite

  BOOST_TEST(float_to_bf16(1.0f) == 0x3F80);
  BOOST_TEST(float_to_bf16(bits_float(0x3F808000u)) == 0x3F80);            // tie, even stays
  BOOST_TEST(float_to_bf16(bits_float(0x3F818000u)) == 0x3F82);            // tie, odd goes up
  BOOST_TEST(float_to_bf16(bits_float(0x3F808001u)) == 0x3F81);            // above the tie
  BOOST_TEST(float_to_bf16(bits_float(0x3F807FFFu)) == 0x3F80);            // below the tie
  BOOST_TEST(float_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds to inf
  BOOST_TEST(float_to_bf16(-0.0f) == 0x8000);
  BOOST_TEST(float_to_bf16(bits_float(0x7F800001u)) == 0x7FC0);  // NaN forced quiet, not inf
  BOOST_TEST(float_to_bf16(bits_float(0xFF800001u)) == 0xFFC0);

  for (std::uint32_t b = 0; b < 65536; ++b) {
    const auto b16 = static_cast<std::uint16_t>(b);
    const float f = bf16_to_float(b16);
    BOOST_TEST_REQUIRE(float_bits(f) == (b << 16));
    if (std::isnan(f)) {
      BOOST_TEST_REQUIRE(std::isnan(bf16_to_float(float_to_bf16(f))));
    } else {
      BOOST_TEST_REQUIRE(float_to_bf16(f) == b16, "pattern " << b);
    }
  }
}

BOOST_AUTO_TEST_CASE(float8_formats) {
  // E4M3FN: bias 7, max 448, S.1111.111 NaN, no inf.
  BOOST_TEST(f8_e4m3_to_float(0x38) == 1.0f);
  BOOST_TEST(f8_e4m3_to_float(0x7E) == 448.0f);
  BOOST_TEST(f8_e4m3_to_float(0xFE) == -448.0f);
  BOOST_TEST(f8_e4m3_to_float(0x78) == 256.0f);  // exponent 15 is finite
  BOOST_TEST(f8_e4m3_to_float(0x01) == std::ldexp(1.0f, -9));
  BOOST_TEST(f8_e4m3_to_float(0x08) == std::ldexp(1.0f, -6));
  BOOST_TEST(std::isnan(f8_e4m3_to_float(0x7F)));
  BOOST_TEST(std::isnan(f8_e4m3_to_float(0xFF)));
  BOOST_TEST(std::signbit(f8_e4m3_to_float(0x80)));
  // E5M2: the top byte of a binary16.
  BOOST_TEST(f8_e5m2_to_float(0x3C) == 1.0f);
  BOOST_TEST(f8_e5m2_to_float(0x7B) == 57344.0f);
  BOOST_TEST(f8_e5m2_to_float(0x7C) == std::numeric_limits<float>::infinity());
  BOOST_TEST(std::isnan(f8_e5m2_to_float(0x7D)));
  BOOST_TEST(f8_e5m2_to_float(0x01) == std::ldexp(1.0f, -16));
  // FNUZ variants: 0x80 is the only NaN, bias one larger.
  BOOST_TEST(f8_e4m3fnuz_to_float(0x40) == 1.0f);
  BOOST_TEST(f8_e4m3fnuz_to_float(0x7F) == 240.0f);
  BOOST_TEST(f8_e4m3fnuz_to_float(0x01) == std::ldexp(1.0f, -10));
  BOOST_TEST(std::isnan(f8_e4m3fnuz_to_float(0x80)));
  BOOST_TEST(f8_e5m2fnuz_to_float(0x40) == 1.0f);
  BOOST_TEST(f8_e5m2fnuz_to_float(0x7F) == 57344.0f);
  BOOST_TEST(f8_e5m2fnuz_to_float(0x01) == std::ldexp(1.0f, -17));
  BOOST_TEST(std::isnan(f8_e5m2fnuz_to_float(0x80)));
  BOOST_TEST(f8_e5m2fnuz_to_float(0xC0) == -1.0f);
  // E8M0: 2^(v - 127) for every v, NaN at 255.
  for (int v = 0; v < 255; ++v) {
    BOOST_TEST_REQUIRE(e8m0_to_float(static_cast<std::uint8_t>(v)) == std::ldexp(1.0f, v - 127));
  }
  BOOST_TEST(e8m0_to_float(127) == 1.0f);
  BOOST_TEST(std::isnan(e8m0_to_float(255)));
}

BOOST_AUTO_TEST_CASE(buffer_conversion) {
  const std::uint16_t h[3] = {0x3C00, 0xC000, 0x0001};
  std::vector<float> out = to_float(dtype::F16, byte_span{reinterpret_cast<const std::uint8_t*>(h), 6});
  BOOST_TEST(out == (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24)}), boost::test_tools::per_element());
  const std::uint16_t b[2] = {0x3F80, 0x4040};
  out = to_float(dtype::BF16, byte_span{reinterpret_cast<const std::uint8_t*>(b), 4});
  BOOST_TEST(out == (std::vector<float>{1.0f, 3.0f}), boost::test_tools::per_element());
  const double d[2] = {0.1, -1e300};
  out = to_float(dtype::F64, byte_span{reinterpret_cast<const std::uint8_t*>(d), 16});
  BOOST_TEST(out[0] == 0.1f);
  BOOST_TEST(out[1] == -std::numeric_limits<float>::infinity());
  const float f[2] = {1.5f, -0.25f};
  out = to_float(dtype::F32, byte_span{reinterpret_cast<const std::uint8_t*>(f), 8});
  BOOST_TEST(out == (std::vector<float>{1.5f, -0.25f}), boost::test_tools::per_element());

  // Writers: float -> bytes.
  const float src[2] = {1.0f, -2.0f};
  const auto f16 = from_float(dtype::F16, src, 2);
  BOOST_TEST(f16 == (std::vector<std::uint8_t>{0x00, 0x3C, 0x00, 0xC0}), boost::test_tools::per_element());
  const auto bf = from_float(dtype::BF16, src, 2);
  BOOST_TEST(bf == (std::vector<std::uint8_t>{0x80, 0x3F, 0x00, 0xC0}), boost::test_tools::per_element());

  const std::int32_t ints[1] = {1};
  mla::test::expect_error(
      [&] {
        (void)to_float(dtype::I32, byte_span{reinterpret_cast<const std::uint8_t*>(ints), 4});
      },
      {"I32", "not a floating-point"});
  mla::test::expect_error(
      [&] {
        (void)to_float(dtype::F16, byte_span{reinterpret_cast<const std::uint8_t*>(h), 5});
      },
      {"5 bytes", "F16"});
  float one = 0;
  mla::test::expect_error(
      [&] {
        to_float(dtype::F32, byte_span{reinterpret_cast<const std::uint8_t*>(f), 8}, &one, 1);
      },
      {"8 bytes do not hold 1 elements of F32"});
  mla::test::expect_error([&] { (void)from_float(dtype::F8_E4M3, src, 2); }, {"F8_E4M3", "not supported"});
}

BOOST_AUTO_TEST_SUITE_END()
