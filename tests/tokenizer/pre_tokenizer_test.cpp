#include "mla/tokenizer/pre_tokenizer.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer_test_support.hpp"

namespace {
using mla::tok::char_class;
using mla::tok::pre_tokenizer_options;
using pieces = std::vector<std::string>;

pieces split(std::string_view text, bool individual_digits = true) {
  pieces out;
  for (const auto p : mla::tok::pre_tokenize(text, pre_tokenizer_options{individual_digits})) {
    out.emplace_back(p);
  }
  return out;
}

std::string show(const pieces& p) {
  std::string s = "[";
  for (std::size_t i = 0; i < p.size(); ++i) s += (i ? ", \"" : "\"") + p[i] + "\"";
  return s + "]";
}

// Reference: the regex alternatives transliterated one by one over code points, with the explicit
// backtracking a regex engine does (optional space, the (?!\S) look-ahead), on each stretch that
// the Digits step leaves. Deliberately slow and literal; shares only classify() with the library.
struct reference_splitter {
  std::vector<char32_t> cps;
  std::vector<std::size_t> offsets;  // byte offset of each code point, plus the end

  char_class cls(std::size_t k) const { return mla::tok::classify(cps[k]); }

  std::size_t match(std::size_t i, std::size_t n) const {  // code points matched at i in [.., n)
    static const std::u32string contractions[] = {U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
    for (const auto& c : contractions) {
      if (i + c.size() <= n && std::u32string(cps.begin() + i, cps.begin() + i + c.size()) == c) return c.size();
    }
    for (const char_class x : {char_class::letter, char_class::number, char_class::other}) {
      for (const bool with_space : {true, false}) {  // ` ?` is greedy: try the space first
        std::size_t j = i;
        if (with_space) {
          if (j < n && cps[j] == U' ')
            ++j;
          else
            continue;
        }
        std::size_t k = j;
        while (k < n && cls(k) == x) ++k;
        if (k > j) return k - i;
      }
    }
    std::size_t k = i;
    while (k < n && cls(k) == char_class::whitespace) ++k;
    for (std::size_t e = k; e > i; --e) {
      if (e == n || cls(e) == char_class::whitespace) return e - i;  // \s+(?!\S)
    }
    return k - i;  // \s+
  }

  pieces split(const std::string& text, bool individual_digits) {
    cps.clear();
    offsets.clear();
    std::size_t at = 0;
    while (at < text.size()) {
      const auto d = mla::tok::decode_utf8(text, at);
      cps.push_back(d.cp);
      offsets.push_back(at);
      at += d.length;
    }
    offsets.push_back(text.size());
    pieces out;
    const auto regex = [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end;) {
        const std::size_t m = match(i, end);
        BOOST_REQUIRE(m > 0);
        out.push_back(text.substr(offsets[i], offsets[i + m] - offsets[i]));
        i += m;
      }
    };
    std::size_t stretch = 0;
    for (std::size_t i = 0; i < cps.size() && individual_digits; ++i) {
      if (cls(i) != char_class::number) continue;
      regex(stretch, i);
      regex(i, i + 1);
      stretch = i + 1;
    }
    regex(stretch, cps.size());
    return out;
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(pre_tokenizer)

// Expected splits observed with Hugging Face tokenizers 0.23.3 (SmolLM2's pre-tokenizer sequence).
BOOST_AUTO_TEST_CASE(hand_written_cases) {
  const struct {
    std::string text;
    pieces expected;
  } cases[] = {
      {"", {}},
      {"Hello world", {"Hello", " world"}},
      {"abc 123 x", {"abc", " ", "1", "2", "3", " x"}},
      {"don't I'M you're", {"don", "'t", " I", "'", "M", " you", "'re"}},
      {"a  b", {"a", " ", " b"}},
      {"a   \n\tb  ", {"a", "   \n", "\t", "b", "  "}},
      {"!\xC2\xA0!", {"!", "\xC2\xA0", "!"}},  // U+00A0 is \s
      {"!\x1C!", {"!\x1C!"}},                  // U+001C is not
      {"!\xE2\x80\x8B!", {"!\xE2\x80\x8B!"}},  // nor U+200B
      {" ''s", {" ''", "s"}},
      {"x\xC2\xB2y 3\xC2\xBD", {"x", "\xC2\xB2", "y", " ", "3", "\xC2\xBD"}},
      {"e\xCC\x81t\xC3\xA9", {"e", "\xCC\x81", "t\xC3\xA9"}},  // a combining mark is "other"
      {"\xD9\xA0\xD9\xA1 \xD9\xA3", {"\xD9\xA0", "\xD9\xA1", " ", "\xD9\xA3"}},
      {"   ", {"   "}},
      {" \n", {" \n"}},
      {"\n\nx", {"\n", "\n", "x"}},
      {"x \n y", {"x", " \n", " y"}},
      {"a 'll", {"a", " '", "ll"}},
      {"'ll'LL'", {"'ll", "'", "LL", "'"}},
      {"$19.99", {"$", "1", "9", ".", "9", "9"}},
      {"word.\tnext", {"word", ".", "\t", "next"}},
  };
  for (const auto& c : cases) {
    const pieces got = split(c.text);
    BOOST_TEST_CONTEXT("text \"" << c.text << "\": got " << show(got) << ", expected " << show(c.expected)) {
      BOOST_TEST(got == c.expected);
    }
  }
}

BOOST_AUTO_TEST_CASE(without_digit_splitting_numbers_stay_together) {
  BOOST_TEST(split("abc 123 x", false) == (pieces{"abc", " 123", " x"}));
  BOOST_TEST(split("a1b", false) == (pieces{"a", "1", "b"}));
  BOOST_TEST(split("a  12", false) == (pieces{"a", " ", " 12"}));
}

BOOST_AUTO_TEST_CASE(invalid_utf8_is_an_error_with_the_offset) {
  tok_test::expect_error([] { (void)split("ab \xFF"); }, {"byte offset 3"});
  tok_test::expect_error([] { (void)split("12\xE2\x82"); }, {"byte offset 2", "truncated"});
}

BOOST_AUTO_TEST_CASE(agrees_with_the_literal_regex_on_random_text) {
  const std::uint64_t seed = tok_test::test_seed();
  BOOST_TEST_MESSAGE("seed " << seed);
  const std::vector<std::string> pool = {" ",
                                         " ",
                                         " ",
                                         "\t",
                                         "\n",
                                         "\r",
                                         "\xC2\xA0",
                                         "\xE3\x80\x80",
                                         "a",
                                         "Z",
                                         "s",
                                         "t",
                                         "r",
                                         "e",
                                         "l",
                                         "l",
                                         "d",
                                         "m",
                                         "v",
                                         "S",
                                         "\xC3\xA9",
                                         "e\xCC\x81",
                                         "\xE6\x97\xA5",
                                         "1",
                                         "7",
                                         "\xC2\xB2",
                                         "\xD9\xA3",
                                         "'",
                                         "'",
                                         "'s",
                                         "'ll",
                                         "!",
                                         ".",
                                         "-",
                                         "\xF0\x9F\x98\x80",
                                         "\xE2\x80\x8B",
                                         "\x1C",
                                         "_"};
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    reference_splitter reference;
    for (int round = 0; round < 3000; ++round) {
      std::string text;
      const std::size_t n = gen() % 24;
      for (std::size_t i = 0; i < n; ++i) text += pool[gen() % pool.size()];
      for (const bool digits : {true, false}) {
        const pieces got = split(text, digits);
        const pieces expected = reference.split(text, digits);
        BOOST_TEST_CONTEXT("text \"" << text << "\" digits " << digits << ": got " << show(got) << ", expected "
                                     << show(expected)) {
          BOOST_TEST(got == expected);
        }
        std::string joined;
        for (const auto& p : got) {
          BOOST_TEST(!p.empty());
          joined += p;
        }
        BOOST_TEST(joined == text);
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
