// The o200k tokenizer of gpt-oss (o200k.hpp, tiktoken.hpp) against OpenAI's tiktoken:
//  - the pre-tokenizer split, on 43 texts, against tiktoken's own pattern string run by the Python
//    `regex` engine (always runs: no vocabulary needed);
//  - tiktoken's BPE rule (lowest rank of the concatenation, leftmost on ties; a piece that is a
//    token is that token) on a vocabulary built by hand (always runs);
//  - ids of the real o200k_harmony encoding, on the same texts and on all of WikiText-2 test, when the
//    o200k_base vocabulary is at hand (tok_test::o200k_vocab_path): quicktok-v1's o200k.vocab, read by
//    C++ (scripts/fetch_o200k.sh fetches it; $MLA_O200K_VOCAB), or the rank file that
//    tools/o200k_golden.py writes from it ($MLA_O200K_TIKTOKEN). quicktok_test.cpp checks that the
//    vocabulary is byte for byte tiktoken's (SHA-256). Skipped, with a message, without it.
// Golden data: tests/tokenizer/data/o200k_golden.json (tools/o200k_golden.py).
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mla/tokenizer/o200k.hpp"
#include "mla/tokenizer/quicktok.hpp"
#include "mla/tokenizer/tiktoken.hpp"
#include "tokenizer_test_support.hpp"

#ifdef MLA_TOKENIZER_HAVE_ICU
#include <unicode/uchar.h>
#include <unicode/uversion.h>
#endif

namespace {

using tok_test::has_o200k;

const mla::tok::tiktoken_bpe& harmony() {
  static const mla::tok::tiktoken_bpe t = mla::tok::load_o200k_harmony(tok_test::o200k_vocab_path());
  return t;
}

std::vector<std::string> strings(const std::vector<std::string_view>& v) { return {v.begin(), v.end()}; }

// Byte tokens at ranks 0..255 (rank == byte value), then `extra` at 256, 257, ...
std::vector<std::string> byte_ranks(const std::vector<std::string>& extra) {
  std::vector<std::string> t;
  for (unsigned b = 0; b < 256; ++b) t.push_back(std::string(1, static_cast<char>(b)));
  t.insert(t.end(), extra.begin(), extra.end());
  return t;
}

std::uint64_t fnv1a64_ids(const std::vector<std::int32_t>& ids) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (const std::int32_t id : ids)
    for (int k = 0; k < 4; ++k) h = (h ^ ((static_cast<std::uint32_t>(id) >> (8 * k)) & 0xFF)) * 0x100000001B3ull;
  return h;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(o200k)

BOOST_AUTO_TEST_CASE(pre_tokenizer_matches_tiktoken_pattern) {
  for (const auto& c : tok_test::o200k_golden()["texts"]) {
    const std::string text = c["text"].get<std::string>();
    const std::vector<std::string> want = c["pieces"].get<std::vector<std::string>>();
    BOOST_TEST_CONTEXT("text '" << text << "'") {
      BOOST_TEST(strings(mla::tok::o200k_pre_tokenize(text)) == want, boost::test_tools::per_element());
    }
  }
}

// The spots where the regex backtracks, written out by hand.
BOOST_AUTO_TEST_CASE(pre_tokenizer_backtracking_cases) {
  using V = std::vector<std::string>;
  auto split = [](std::string_view t) { return strings(mla::tok::o200k_pre_tokenize(t)); };
  // Alternative 1 (U*W+): an upper run joins the lower run after it; without one, alternative 2.
  BOOST_TEST(split("HELLOworld") == (V{"HELLOworld"}), boost::test_tools::per_element());
  BOOST_TEST(split("helloWorld") == (V{"hello", "World"}), boost::test_tools::per_element());
  BOOST_TEST(split("ABC") == (V{"ABC"}), boost::test_tools::per_element());
  // A mark is in both letter sets: U* gives it back to W+ ("A" + U+0301 + "B": the match ends after the mark).
  BOOST_TEST(split("A\xCC\x81"
                   "B") == (V{"A\xCC\x81", "B"}),
             boost::test_tools::per_element());
  // A lone mark: the optional prefix takes it, fails, and gives it back to W+.
  BOOST_TEST(split("\xCC\x81 x") == (V{"\xCC\x81", " x"}), boost::test_tools::per_element());
  // Numbers in threes; a space before a number is a piece of its own.
  BOOST_TEST(split("a 1234567") == (V{"a", " ", "123", "456", "7"}), boost::test_tools::per_element());
  // \s*[\r\n]+ ends after the last newline of a whitespace run; \s+(?!\S) leaves the last space.
  BOOST_TEST(split("x \n \n  y") == (V{"x", " \n \n", " ", " y"}), boost::test_tools::per_element());
  BOOST_TEST(split("x   y") == (V{"x", "  ", " y"}), boost::test_tools::per_element());
  BOOST_TEST(split("x   ") == (V{"x", "   "}), boost::test_tools::per_element());
  // Symbols take trailing newlines and slashes.
  BOOST_TEST(split("a.//\n\nb") == (V{"a", ".//\n\n", "b"}), boost::test_tools::per_element());
  // Contractions are case-insensitive and follow the letters.
  BOOST_TEST(split("DON'T it's") == (V{"DON'T", " it's"}), boost::test_tools::per_element());
  BOOST_TEST(split("").empty());
  tok_test::expect_error([] { mla::tok::o200k_pre_tokenize(std::string("ab\xFF")); }, {"UTF-8"});
}

// tiktoken's merge rule on a vocabulary built by hand (ranks: bytes 0..255, then the list).
BOOST_AUTO_TEST_CASE(bpe_merges_lowest_rank_of_the_concatenation) {
  using V = std::vector<std::int32_t>;
  const mla::tok::tiktoken_bpe t(byte_ranks({"cd", "bc", "ab", "abcd", "bcd", "xyz", "aa"}), {{"<|end|>", 300}});
  // cd (256) first; then ab (258) beats b+cd = bcd (260); then ab+cd = abcd (259); e stays.
  BOOST_TEST(t.encode_ordinary("abcde") == (V{259, 'e'}), boost::test_tools::per_element());
  // Equal ranks: the leftmost pair first.
  BOOST_TEST(t.encode_ordinary("aaa") == (V{262, 'a'}), boost::test_tools::per_element());
  // A piece that is a token is that token, even with no merge path to it; one more byte and it is not.
  BOOST_TEST(t.encode_ordinary("xyz") == (V{261}), boost::test_tools::per_element());
  BOOST_TEST(t.encode_ordinary("xyzx") == (V{'x', 'y', 'z', 'x'}), boost::test_tools::per_element());
  // Special tokens: matched whole by encode, plain text for encode_ordinary; decode gives the text back.
  BOOST_TEST(t.encode("ab<|end|>ab") == (V{258, 300, 258}), boost::test_tools::per_element());
  BOOST_TEST(t.encode_ordinary("<|end|>").size() > 1);
  BOOST_TEST(t.decode({258, 300, 259, 'e'}) == "ab<|end|>abcde");
  BOOST_TEST(t.vocab_size() == 301u);
  tok_test::expect_error([&] { (void)t.decode({299}); }, {"no token has id 299"});
  tok_test::expect_error([&] { (void)t.decode({301}); }, {"outside the vocabulary"});
}

BOOST_AUTO_TEST_CASE(rank_file_parsing_and_errors) {
  auto b64 = [](const std::string& in) {
    static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += 3) {
      const std::size_t n = std::min<std::size_t>(3, in.size() - i);
      std::uint32_t w = 0;
      for (std::size_t k = 0; k < 3; ++k) w = (w << 8) | (k < n ? static_cast<unsigned char>(in[i + k]) : 0u);
      for (std::size_t k = 0; k < 4; ++k) out += k <= n ? abc[(w >> (18 - 6 * k)) & 63] : '=';
    }
    return out;
  };
  std::string text;
  for (unsigned b = 0; b < 256; ++b) text += b64(std::string(1, static_cast<char>(b))) + " " + std::to_string(b) + "\n";
  const std::string good = text + b64("ab") + " 256\n" + b64("abc") + " 257\r\n";
  const auto t = mla::tok::tiktoken_bpe::from_rank_text(good, {});
  BOOST_TEST(t.rank_count() == 258u);
  BOOST_TEST(t.encode_ordinary("abc") == (std::vector<std::int32_t>{257}), boost::test_tools::per_element());
  // ab, ab (256 each, leftmost first); then ab+c = abc (257); c+ab is not a token.
  BOOST_TEST(t.encode_ordinary("abcab") == (std::vector<std::int32_t>{257, 256}), boost::test_tools::per_element());
  tok_test::expect_error([&] { (void)mla::tok::tiktoken_bpe::from_rank_text(text + b64("ab") + " 65\n", {}, "f"); },
                         {"f: line 257", "rank 65 appears twice"});
  tok_test::expect_error([&] { (void)mla::tok::tiktoken_bpe::from_rank_text(text + "YW*= 300\n", {}, "f"); },
                         {"f: line 257", "not base64"});
  tok_test::expect_error([&] { (void)mla::tok::tiktoken_bpe::from_rank_text(text + b64("a") + "\n", {}, "f"); },
                         {"f: line 257", "base64 rank"});
  tok_test::expect_error([&] { (void)mla::tok::tiktoken_bpe::from_rank_text(text + b64("A") + " 300\n", {}, "f"); },
                         {"f: ", "are also rank 65"});
  tok_test::expect_error([&] { (void)mla::tok::tiktoken_bpe::from_rank_text(b64("a") + " 0\n", {}, "f"); },
                         {"f: ", "byte 0 is not a token"});
  tok_test::expect_error(
      [&] {
        (void)mla::tok::tiktoken_bpe::from_rank_text(good, {{"<|x|>", 256}}, "f");
      },
      {"f: ", "reuses rank 256"});
}

BOOST_AUTO_TEST_CASE(harmony_special_tokens) {
  const auto s = mla::tok::o200k_harmony_special_tokens();
  BOOST_TEST(s.size() == 1091u);  // ids 199998..201087, and <|endofprompt|> beside <|reserved_200018|>
  auto id_of = [&](const std::string& text) {
    for (const auto& t : s)
      if (t.text == text) return t.id;
    return -1;
  };
  BOOST_TEST(id_of("<|start|>") == 200006);
  BOOST_TEST(id_of("<|message|>") == 200008);
  BOOST_TEST(id_of("<|channel|>") == 200005);
  BOOST_TEST(id_of("<|end|>") == 200007);
  BOOST_TEST(id_of("<|return|>") == 200002);
  BOOST_TEST(id_of("<|call|>") == 200012);
  BOOST_TEST(id_of("<|reserved_201087|>") == 201087);
}

BOOST_AUTO_TEST_CASE(ids_match_tiktoken_o200k_harmony, *boost::unit_test::precondition(has_o200k{})) {
  const auto& t = harmony();
  BOOST_TEST(t.vocab_size() == tok_test::o200k_golden()["n_vocab"].get<std::size_t>());
  BOOST_TEST(t.rank_count() == 199998u);
  for (const auto& c : tok_test::o200k_golden()["texts"]) {
    const std::string text = c["text"].get<std::string>();
    BOOST_TEST_CONTEXT("text '" << text << "'") {
      BOOST_TEST(t.encode(text) == tok_test::ids_of(c["ids"]), boost::test_tools::per_element());
      const std::vector<std::int32_t> ordinary = t.encode_ordinary(text);
      BOOST_TEST(ordinary == tok_test::ids_of(c["ordinary"]), boost::test_tools::per_element());
      BOOST_TEST(t.decode(ordinary) == text);
    }
  }
}

BOOST_AUTO_TEST_CASE(wikitext_matches_tiktoken,
                     *boost::unit_test::precondition(has_o200k{}) *
                         boost::unit_test::precondition(mla::test::has_data_file{"wikitext-2-raw-test.txt"})) {
  const std::string wiki = mla::test::data_file("wikitext-2-raw-test.txt");
  const auto& g = tok_test::o200k_golden()["wikitext"];
  const std::string text = tok_test::read_file(wiki);
  BOOST_TEST_REQUIRE(text.size() == g["bytes"].get<std::size_t>());
  BOOST_TEST(mla::tok::o200k_pre_tokenize(text).size() == g["pieces"].get<std::size_t>());
  const std::vector<std::int32_t> ids = harmony().encode_ordinary(text);
  BOOST_TEST(ids.size() == g["ids"].get<std::size_t>());
  const std::vector<std::int32_t> first = tok_test::ids_of(g["first_ids"]);
  BOOST_TEST(std::vector<std::int32_t>(ids.begin(), ids.begin() + std::ptrdiff_t(first.size())) == first,
             boost::test_tools::per_element());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64_ids(ids)));
  BOOST_TEST(std::string(hex) == g["ids_fnv1a64"].get<std::string>());
  BOOST_TEST(harmony().decode(ids) == text);
}

// The embedded class table against ICU's general categories, code point by code point. Skipped (and reported as
// skipped) when the tests were built without ICU or against an ICU of another Unicode version.
struct icu_has_o200k_unicode {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
#ifdef MLA_TOKENIZER_HAVE_ICU
    return mla::test::skip_unless(std::string_view(U_UNICODE_VERSION) == mla::tok::o200k_unicode_version,
                                  std::string("ICU has Unicode ") + U_UNICODE_VERSION + ", the o200k table " +
                                      std::string(mla::tok::o200k_unicode_version) + ": no comparison");
#else
    return mla::test::skip_unless(false, "built without ICU (libicu-dev): o200k class table not checked");
#endif
  }
};

BOOST_AUTO_TEST_CASE(class_table_matches_icu_for_every_code_point,
                     *boost::unit_test::precondition(icu_has_o200k_unicode{})) {
#ifdef MLA_TOKENIZER_HAVE_ICU
  using C = mla::tok::o200k_class;
  std::size_t mismatches = 0;
  for (UChar32 cp = 0; cp <= 0x10FFFF; ++cp) {
    const std::int32_t m = U_GET_GC_MASK(cp);
    const C icu = u_hasBinaryProperty(cp, UCHAR_WHITE_SPACE) ? C::whitespace
                  : (m & (U_GC_LU_MASK | U_GC_LT_MASK))      ? C::upper
                  : (m & U_GC_LL_MASK)                       ? C::lower
                  : (m & (U_GC_LM_MASK | U_GC_LO_MASK))      ? C::caseless
                  : (m & U_GC_M_MASK)                        ? C::mark
                  : (m & U_GC_N_MASK)                        ? C::number
                                                             : C::other;
    if (mla::tok::o200k_classify(static_cast<char32_t>(cp)) != icu && ++mismatches <= 10)
      BOOST_ERROR("U+" << std::hex << cp << ": table " << int(mla::tok::o200k_classify(static_cast<char32_t>(cp)))
                       << ", ICU " << int(icu));
  }
  BOOST_TEST(mismatches == 0u);
#endif
}

BOOST_AUTO_TEST_SUITE_END()
