#include "mla/io/mxfp4.hpp"

#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "expect_error.hpp"
#include "io_test_support.hpp"
#include "mla/io/quant_blocks.hpp"

using namespace mla::io;
using mla_test::bytes;
using mla_test::span;

namespace {
// formats.md §1.8, typed in from the notes (openai/gpt-oss weights.py FP4_VALUES).
const float kLut[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                        -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
}  // namespace

BOOST_AUTO_TEST_SUITE(io_mxfp4)

BOOST_AUTO_TEST_CASE(every_nibble_with_scale_extremes) {
  // Byte b holds nibbles (2b) % 16 (low) and (2b + 1) % 16 (high): element e carries nibble e % 16.
  bytes block(16);
  for (int b = 0; b < 16; ++b) block[b] = static_cast<std::uint8_t>(((2 * b) % 16) | (((2 * b + 1) % 16) << 4));
  for (int s : {127, 0, 1, 126, 128, 253, 254}) {
    float out[32];
    dequantize_mxfp4_block(block.data(), static_cast<std::uint8_t>(s), out);
    for (int e = 0; e < 32; ++e) {
      const float expected = std::ldexp(kLut[e % 16], s - 127);  // exact, or inf past FLT_MAX
      BOOST_TEST_REQUIRE(float_bits(out[e]) == float_bits(expected), "scale " << s << " element " << e);
    }
  }
  float out[32];
  dequantize_mxfp4_block(block.data(), 127, out);  // scale 1.0: the table itself
  for (int e = 0; e < 16; ++e) BOOST_TEST(out[e] == kLut[e]);
  BOOST_TEST(std::signbit(out[8]));              // nibble 8 is -0
  dequantize_mxfp4_block(block.data(), 0, out);  // 2^-127: subnormal results, still exact
  BOOST_TEST(out[1] == std::ldexp(1.0f, -128));
  BOOST_TEST(out[7] == std::ldexp(6.0f, -127));
  dequantize_mxfp4_block(block.data(), 254, out);  // 2^127: 0.5 and 1 stay finite, 6 overflows
  BOOST_TEST(out[1] == std::ldexp(1.0f, 126));
  BOOST_TEST(out[2] == std::ldexp(1.0f, 127));
  BOOST_TEST(out[7] == std::numeric_limits<float>::infinity());
  BOOST_TEST(out[15] == -std::numeric_limits<float>::infinity());
  dequantize_mxfp4_block(block.data(), 255, out);  // E8M0 NaN
  for (float v : out) BOOST_TEST(std::isnan(v));
}

BOOST_AUTO_TEST_CASE(low_nibble_is_the_even_element) {
  bytes block(16, 0);
  block[0] = 0x21;   // low nibble 1 (0.5) -> element 0, high nibble 2 (1.0) -> element 1
  block[15] = 0xF7;  // element 30 = 6, element 31 = -6
  float out[32];
  dequantize_mxfp4_block(block.data(), 128, out);  // scale 2
  BOOST_TEST(out[0] == 1.0f);
  BOOST_TEST(out[1] == 2.0f);
  BOOST_TEST(out[30] == 12.0f);
  BOOST_TEST(out[31] == -12.0f);
}

BOOST_AUTO_TEST_CASE(whole_tensor_with_shapes) {
  // blocks [E=2, rows=3, G=2, 16], scales [2, 3, 2] -> [2, 3, 64].
  mla_test::rng r(7);
  const bytes blocks = r.random_bytes(2 * 3 * 2 * 16);
  bytes scales(2 * 3 * 2);
  for (auto& s : scales) s = static_cast<std::uint8_t>(120 + r.below(15));
  const std::vector<std::int64_t> bshape{2, 3, 2, 16}, sshape{2, 3, 2};
  BOOST_TEST(mxfp4_dequantized_shape(bshape, sshape, "w") == (std::vector<std::int64_t>{2, 3, 64}),
             boost::test_tools::per_element());
  const auto w = dequantize_mxfp4(bshape, span(blocks), sshape, span(scales), "w");
  BOOST_TEST_REQUIRE(w.size() == 2u * 3 * 64);
  // W[e, r, 32g + 2b] = LUT[blk[e, r, g, b] & 15] * 2^(scale[e, r, g] - 127), +1 with >> 4.
  for (int e = 0; e < 2; ++e)
    for (int row = 0; row < 3; ++row)
      for (int g = 0; g < 2; ++g)
        for (int b = 0; b < 16; ++b) {
          const std::uint8_t byte = blocks[((e * 3 + row) * 2 + g) * 16 + b];
          const int s = scales[(e * 3 + row) * 2 + g];
          const std::size_t base = (static_cast<std::size_t>(e) * 3 + row) * 64 + 32 * g + 2 * b;
          BOOST_TEST_REQUIRE(w[base] == std::ldexp(kLut[byte & 15], s - 127));
          BOOST_TEST_REQUIRE(w[base + 1] == std::ldexp(kLut[byte >> 4], s - 127));
        }
}

BOOST_AUTO_TEST_CASE(agrees_with_the_ggml_layout_after_reshuffling) {
  // ggml stores [e, qs[16]] with element j in the low nibble of qs[j] and j + 16 in the high nibble;
  // the same 32 values must come out of both dequantisers.
  mla_test::rng r(11);
  for (int trial = 0; trial < 50; ++trial) {
    const bytes hf = r.random_bytes(16);
    const std::uint8_t scale = static_cast<std::uint8_t>(r.below(255));
    int nib[32];
    for (int b = 0; b < 16; ++b) {
      nib[2 * b] = hf[b] & 15;
      nib[2 * b + 1] = hf[b] >> 4;
    }
    bytes gg(17);
    gg[0] = scale;
    for (int j = 0; j < 16; ++j) gg[1 + j] = static_cast<std::uint8_t>(nib[j] | (nib[j + 16] << 4));
    float a[32];
    dequantize_mxfp4_block(hf.data(), scale, a);
    const auto b = dequantize(ggml_type::MXFP4, span(gg), 32);
    // Equal values; only the sign of zero differs (HF's table has -0 at nibble 8, ggml's int8 +0).
    for (int i = 0; i < 32; ++i) {
      BOOST_TEST_REQUIRE(a[i] == b[i]);
      if (a[i] != 0) BOOST_TEST_REQUIRE(float_bits(a[i]) == float_bits(b[i]));
      if (nib[i] == 8) BOOST_TEST_REQUIRE((std::signbit(a[i]) && !std::signbit(b[i])));
    }
  }
}

BOOST_AUTO_TEST_CASE(shape_and_size_errors_name_the_tensor) {
  const bytes blocks(2 * 16), scales(2);
  mla::test::expect_error(
      [&] {
        (void)mxfp4_dequantized_shape({2, 15}, {2}, "experts.down_proj");
      },
      {"experts.down_proj", "[2, 15]", "[..., G, 16]"});
  mla::test::expect_error([&] { (void)mxfp4_dequantized_shape({1, 2, 16}, {2}, "x"); }, {"'x'", "rank 2"});
  mla::test::expect_error(
      [&] {
        (void)mxfp4_dequantized_shape({1, 2, 16}, {1, 3}, "x");
      },
      {"scales shape [1, 3] does not match blocks shape [1, 2, 16]", "expected [1, 2]"});
  mla::test::expect_error(
      [&] {
        (void)dequantize_mxfp4({3, 16}, span(blocks), {3}, span(bytes(3)), "y");
      },
      {"'y'", "blocks hold 32 bytes, shape needs 48"});
  mla::test::expect_error(
      [&] {
        (void)dequantize_mxfp4({2, 16}, span(blocks), {2}, span(bytes(1)), "y");
      },
      {"scales hold 1 bytes, shape needs 2"});
  float out[64];
  mla::test::expect_error([&] { dequantize_mxfp4_row(span(blocks), span(scales), out, 63); }, {"room for 63"});
}

BOOST_AUTO_TEST_SUITE_END()
