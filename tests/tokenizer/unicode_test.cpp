#include "mla/tokenizer/unicode.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "tokenizer_test_support.hpp"

#ifdef MLA_TOKENIZER_HAVE_ICU
#include <unicode/uchar.h>
#include <unicode/uversion.h>
#endif

namespace {
using mla::tok::char_class;
using mla::tok::classify;
using mla::tok::decode_utf8;
using mla::tok::utf8_status;

// Reference validator written from the Unicode standard's table of well-formed byte sequences
// (Table 3-7), independent of decode_utf8's decode-then-check structure.
std::size_t reference_find_invalid(std::string_view s) {
  std::size_t i = 0;
  const auto in = [&](std::size_t k, unsigned lo, unsigned hi) {
    if (k >= s.size()) return false;
    const auto b = static_cast<unsigned char>(s[k]);
    return b >= lo && b <= hi;
  };
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    if (b <= 0x7F)
      n = 1;
    else if (b >= 0xC2 && b <= 0xDF)
      n = in(i + 1, 0x80, 0xBF) ? 2 : 0;
    else if (b == 0xE0)
      n = in(i + 1, 0xA0, 0xBF) && in(i + 2, 0x80, 0xBF) ? 3 : 0;
    else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
      n = in(i + 1, 0x80, 0xBF) && in(i + 2, 0x80, 0xBF) ? 3 : 0;
    else if (b == 0xED)
      n = in(i + 1, 0x80, 0x9F) && in(i + 2, 0x80, 0xBF) ? 3 : 0;
    else if (b == 0xF0)
      n = in(i + 1, 0x90, 0xBF) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
    else if (b >= 0xF1 && b <= 0xF3)
      n = in(i + 1, 0x80, 0xBF) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
    else if (b == 0xF4)
      n = in(i + 1, 0x80, 0x8F) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

utf8_status status_of(std::string_view bytes) { return decode_utf8(bytes, 0).status; }
}  // namespace

BOOST_AUTO_TEST_SUITE(unicode)

BOOST_AUTO_TEST_CASE(decodes_each_sequence_length_at_its_boundaries) {
  const struct {
    std::string bytes;
    char32_t cp;
  } cases[] = {
      {"A", U'A'},
      {"\x7F", 0x7F},
      {"\xC2\x80", 0x80},
      {"\xC3\xA9", 0xE9},
      {"\xDF\xBF", 0x7FF},
      {"\xE0\xA0\x80", 0x800},
      {"\xE2\x82\xAC", 0x20AC},
      {"\xED\x9F\xBF", 0xD7FF},
      {"\xEE\x80\x80", 0xE000},
      {"\xEF\xBF\xBF", 0xFFFF},
      {"\xF0\x90\x80\x80", 0x10000},
      {"\xF0\x9F\x98\x80", 0x1F600},
      {"\xF4\x8F\xBF\xBF", 0x10FFFF},
  };
  for (const auto& c : cases) {
    const auto d = decode_utf8(c.bytes, 0);
    BOOST_TEST(d.status == utf8_status::ok);
    BOOST_TEST(static_cast<std::uint32_t>(d.cp) == static_cast<std::uint32_t>(c.cp));
    BOOST_TEST(d.length == c.bytes.size());
    BOOST_TEST(mla::tok::encode_utf8(c.cp) == c.bytes);
  }
}

BOOST_AUTO_TEST_CASE(rejects_each_kind_of_invalid_sequence) {
  BOOST_TEST(status_of("\x80") == utf8_status::unexpected_continuation);
  BOOST_TEST(status_of("\xBF") == utf8_status::unexpected_continuation);
  BOOST_TEST(status_of("\xC0\x80") == utf8_status::invalid_lead);
  BOOST_TEST(status_of("\xC1\xBF") == utf8_status::invalid_lead);
  BOOST_TEST(status_of("\xF5\x80\x80\x80") == utf8_status::invalid_lead);
  BOOST_TEST(status_of("\xFF") == utf8_status::invalid_lead);
  BOOST_TEST(status_of("\xE2\x82") == utf8_status::truncated);
  BOOST_TEST(status_of("\xF0\x9F\x98") == utf8_status::truncated);
  BOOST_TEST(status_of("\xC3") == utf8_status::truncated);
  BOOST_TEST(status_of("\xE2\x28\xA1") == utf8_status::bad_continuation);
  BOOST_TEST(status_of("\xC3\xC3") == utf8_status::bad_continuation);
  BOOST_TEST(status_of("\xE0\x80\x80") == utf8_status::overlong);
  BOOST_TEST(status_of("\xE0\x9F\xBF") == utf8_status::overlong);
  BOOST_TEST(status_of("\xF0\x8F\xBF\xBF") == utf8_status::overlong);
  BOOST_TEST(status_of("\xED\xA0\x80") == utf8_status::surrogate);
  BOOST_TEST(status_of("\xED\xBF\xBF") == utf8_status::surrogate);
  BOOST_TEST(status_of("\xF4\x90\x80\x80") == utf8_status::too_large);
}

BOOST_AUTO_TEST_CASE(validate_names_the_offset_the_reason_and_the_bytes) {
  BOOST_CHECK_NO_THROW(mla::tok::validate_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80", "text"));
  tok_test::expect_error([] { mla::tok::validate_utf8("abc\xED\xA0\x80z", "my input"); },
                         {"my input", "byte offset 3", "surrogate", "0xED 0xA0 0x80"});
  tok_test::expect_error([] { mla::tok::validate_utf8("ok\xE2\x82", "t"); },
                         {"byte offset 2", "truncated", "0xE2 0x82"});
  tok_test::expect_error([] { mla::tok::validate_utf8(std::string("\x00\x80", 2), "t"); },
                         {"byte offset 1", "continuation"});
}

BOOST_AUTO_TEST_CASE(encode_then_decode_every_scalar_value) {
  std::string all;
  std::size_t count = 0;
  for (char32_t cp = 0; cp <= mla::tok::max_code_point; ++cp) {
    if (!mla::tok::is_scalar_value(cp)) continue;
    mla::tok::append_utf8(all, cp);
    ++count;
  }
  BOOST_TEST(count == 0x110000u - 0x800u);
  BOOST_TEST(mla::tok::find_invalid_utf8(all) == std::string_view::npos);
  std::size_t i = 0;
  char32_t expected = 0;
  bool all_equal = true;
  while (i < all.size()) {
    if (expected == 0xD800) expected = 0xE000;
    const auto d = decode_utf8(all, i);
    all_equal = all_equal && d.status == utf8_status::ok && d.cp == expected;
    i += d.length == 0 ? 1 : d.length;
    ++expected;
  }
  BOOST_TEST(all_equal);
  BOOST_TEST(static_cast<std::uint32_t>(expected) == 0x110000u);
}

BOOST_AUTO_TEST_CASE(append_rejects_non_scalar_values) {
  std::string out;
  tok_test::expect_error([&] { mla::tok::append_utf8(out, 0xD800); }, {"U+D800", "scalar"});
  tok_test::expect_error([&] { mla::tok::append_utf8(out, 0x110000); }, {"U+110000"});
  BOOST_TEST(out.empty());
}

BOOST_AUTO_TEST_CASE(validator_agrees_with_the_standard_table_on_random_bytes) {
  const std::uint64_t seed = tok_test::test_seed();
  BOOST_TEST_MESSAGE("seed " << seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    // Biased towards lead and continuation bytes so that most strings are near-valid.
    const unsigned char interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                         0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    std::size_t valid = 0;
    for (int round = 0; round < 20000; ++round) {
      std::string s(std::uniform_int_distribution<std::size_t>(0, 12)(gen), '\0');
      for (char& c : s) {
        c = static_cast<char>(gen() % 3 == 0 ? static_cast<unsigned char>(gen())
                                             : interesting[gen() % sizeof(interesting)]);
      }
      const std::size_t expected = reference_find_invalid(s);
      BOOST_TEST(mla::tok::find_invalid_utf8(s) == expected);
      valid += expected == std::string_view::npos;
    }
    BOOST_TEST(valid > 100u);  // the generator reaches both outcomes
  }
}

BOOST_AUTO_TEST_CASE(classes_of_representative_code_points) {
  const struct {
    char32_t cp;
    char_class cls;
  } cases[] = {
      {U'a', char_class::letter},       {U'Z', char_class::letter},       {0xE9, char_class::letter},
      {0x4E2D, char_class::letter},     {0x05D0, char_class::letter},     {0x0645, char_class::letter},
      {0x02B0, char_class::letter},     {0x1D518, char_class::letter},    {U'0', char_class::number},
      {0xB2, char_class::number},       {0xBD, char_class::number},       {0x0660, char_class::number},
      {0x2167, char_class::number},     {0xFF11, char_class::number},     {0x1D7D8, char_class::number},
      {U' ', char_class::whitespace},   {U'\t', char_class::whitespace},  {U'\n', char_class::whitespace},
      {0x0B, char_class::whitespace},   {0x0C, char_class::whitespace},   {U'\r', char_class::whitespace},
      {0x85, char_class::whitespace},   {0xA0, char_class::whitespace},   {0x1680, char_class::whitespace},
      {0x2000, char_class::whitespace}, {0x200A, char_class::whitespace}, {0x2028, char_class::whitespace},
      {0x2029, char_class::whitespace}, {0x202F, char_class::whitespace}, {0x205F, char_class::whitespace},
      {0x3000, char_class::whitespace}, {0x1C, char_class::other},        {0x1F, char_class::other},
      {0x200B, char_class::other},      {0x180E, char_class::other},      {0xFEFF, char_class::other},
      {0x0301, char_class::other},      {U'\'', char_class::other},       {U'_', char_class::other},
      {0x1F600, char_class::other},     {0xE000, char_class::other},      {0x10FFFF, char_class::other},
      {0x110000, char_class::other},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT("U+" << std::hex << static_cast<std::uint32_t>(c.cp)) {
      BOOST_TEST(mla::tok::char_class_name(classify(c.cp)) == mla::tok::char_class_name(c.cls));
    }
  }
  int whitespace = 0;
  for (char32_t cp = 0; cp <= mla::tok::max_code_point; ++cp) whitespace += mla::tok::is_whitespace(cp);
  BOOST_TEST(whitespace == 25);  // the White_Space property
}

BOOST_AUTO_TEST_CASE(ascii_fast_path_agrees_with_the_table) {
  for (char32_t cp = 0; cp < 0x80; ++cp) {
    BOOST_TEST_CONTEXT("U+" << std::hex << static_cast<std::uint32_t>(cp)) {
      BOOST_TEST(static_cast<int>(classify(cp)) == static_cast<int>(mla::tok::detail::table_class(cp)));
    }
  }
  const auto& runs = mla::tok::detail::class_runs;
  BOOST_TEST((runs[0] >> 2) == 0u);
  bool increasing = true;
  for (std::size_t i = 1; i < std::size(runs); ++i) {
    increasing = increasing && (runs[i] >> 2) > (runs[i - 1] >> 2) && (runs[i] & 3) != (runs[i - 1] & 3);
  }
  BOOST_TEST(increasing);
}

// The embedded class table against ICU, code point by code point. Skipped (and reported as skipped) when the
// tests were built without ICU or against an ICU of another Unicode version.
struct icu_has_table_unicode {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
#ifdef MLA_TOKENIZER_HAVE_ICU
    return mla::test::skip_unless(std::string_view(U_UNICODE_VERSION) == mla::tok::unicode_version,
                                  std::string("ICU has Unicode ") + U_UNICODE_VERSION + ", the class table " +
                                      std::string(mla::tok::unicode_version) + ": no comparison");
#else
    return mla::test::skip_unless(false, "built without ICU (libicu-dev): Unicode class table not checked");
#endif
  }
};

BOOST_AUTO_TEST_CASE(table_matches_icu_for_every_code_point, *boost::unit_test::precondition(icu_has_table_unicode{})) {
#ifdef MLA_TOKENIZER_HAVE_ICU
  std::size_t mismatches = 0;
  for (UChar32 cp = 0; cp <= 0x10FFFF; ++cp) {
    char_class icu = char_class::other;
    if (u_hasBinaryProperty(cp, UCHAR_WHITE_SPACE))
      icu = char_class::whitespace;
    else if (U_GET_GC_MASK(cp) & U_GC_L_MASK)
      icu = char_class::letter;
    else if (U_GET_GC_MASK(cp) & U_GC_N_MASK)
      icu = char_class::number;
    if (classify(static_cast<char32_t>(cp)) != icu && ++mismatches <= 10) {
      BOOST_ERROR("U+" << std::hex << cp << ": table " << mla::tok::char_class_name(classify(cp)) << ", ICU "
                       << mla::tok::char_class_name(icu));
    }
  }
  BOOST_TEST(mismatches == 0u);
#endif
}

BOOST_AUTO_TEST_SUITE_END()
