#include "mla/tokenizer/byte_level.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <random>
#include <set>
#include <string>

#include "tokenizer_test_support.hpp"

using mla::tok::byte_to_char;
using mla::tok::char_to_byte;

BOOST_AUTO_TEST_SUITE(byte_level)

BOOST_AUTO_TEST_CASE(printable_bytes_map_to_themselves_and_the_rest_follow_u0100) {
  std::set<char32_t> image;
  char32_t next = 0x100;
  for (unsigned b = 0; b < 256; ++b) {
    const char32_t c = byte_to_char(static_cast<std::uint8_t>(b));
    image.insert(c);
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    BOOST_TEST_CONTEXT("byte " << b) {
      if (printable) {
        BOOST_TEST(static_cast<unsigned>(c) == b);
      } else {
        BOOST_TEST(static_cast<unsigned>(c) == static_cast<unsigned>(next));
        ++next;
      }
      BOOST_TEST(char_to_byte(c) == static_cast<int>(b));
    }
  }
  BOOST_TEST(image.size() == 256u);
  BOOST_TEST(static_cast<unsigned>(next) == 0x144u);  // 68 remapped bytes
}

BOOST_AUTO_TEST_CASE(well_known_symbols) {
  BOOST_TEST(static_cast<unsigned>(byte_to_char(' ')) == 0x120u);   // Ġ
  BOOST_TEST(static_cast<unsigned>(byte_to_char('\n')) == 0x10Au);  // Ċ
  BOOST_TEST(static_cast<unsigned>(byte_to_char('\t')) == 0x109u);  // ĉ
  BOOST_TEST(static_cast<unsigned>(byte_to_char(0x00)) == 0x100u);
  BOOST_TEST(static_cast<unsigned>(byte_to_char(0x7F)) == 0x121u);
  BOOST_TEST(static_cast<unsigned>(byte_to_char(0xA0)) == 0x142u);  // ł
  BOOST_TEST(static_cast<unsigned>(byte_to_char(0xAD)) == 0x143u);  // Ń
  BOOST_TEST(mla::tok::to_byte_level("Hello world\n") == "Hello\xC4\xA0world\xC4\x8A");
  // "é" is C3 A9: both bytes are printable Latin-1, so it becomes "Ã©".
  BOOST_TEST(mla::tok::to_byte_level("\xC3\xA9") == "\xC3\x83\xC2\xA9");
}

BOOST_AUTO_TEST_CASE(code_points_outside_the_image_have_no_byte) {
  for (const char32_t c : {char32_t{0x20}, char32_t{0x7F}, char32_t{0xA0}, char32_t{0xAD}, char32_t{0x144},
                           char32_t{0x4E2D}, char32_t{0x110000}}) {
    BOOST_TEST(char_to_byte(c) == -1);
  }
  tok_test::expect_error([] { (void)mla::tok::from_byte_level("ab cd"); }, {"U+0020", "byte offset 2", "byte map"});
  tok_test::expect_error([] { (void)mla::tok::from_byte_level("ab\xC3"); }, {"byte offset 2"});
  std::string out;
  BOOST_TEST(!mla::tok::try_append_from_byte_level(out, "x y"));
}

BOOST_AUTO_TEST_CASE(round_trip_of_random_arbitrary_bytes) {
  const std::uint64_t seed = tok_test::test_seed();
  BOOST_TEST_MESSAGE("seed " << seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    for (int round = 0; round < 2000; ++round) {
      std::string bytes(gen() % 64, '\0');
      for (char& c : bytes) c = static_cast<char>(gen());
      const std::string text = mla::tok::to_byte_level(bytes);
      BOOST_TEST(mla::tok::find_invalid_utf8(text) == std::string::npos);
      BOOST_TEST(mla::tok::from_byte_level(text) == bytes);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
