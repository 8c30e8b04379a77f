// quicktok-v1's binary vocabulary (quicktok.hpp):
//  - the small SHA-256 of the test support against FIPS 180-4 / NIST example digests;
//  - fresh random vocabularies written here in the format (records in shuffled order) read back exactly,
//    the rank text they give parsed back by tiktoken's rank-file reader (an independent base64 decoder)
//    into a tokenizer that encodes random texts exactly like one built from the tokens directly;
//  - malformed files (every truncation, bad counts, lengths, ranks, duplicates, trailing bytes, bad
//    UTF-8 specials): mla::error naming the file and what was expected, never a crash;
//  - the real o200k.vocab of quicktok-v1 0.4.0, when at hand (tok_test::o200k_vocab_path: $MLA_O200K_VOCAB
//    or scripts/fetch_o200k.sh's cache): its rank text has the SHA-256 that tiktoken pins for
//    o200k_base.tiktoken, equals ~/.cache/mla/o200k_base.tiktoken byte for byte when that exists, and
//    o200k_harmony.special next to it lists exactly the project's harmony special tokens.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "mla/tokenizer/quicktok.hpp"
#include "mla/tokenizer/tiktoken.hpp"
#include "sha256.hpp"
#include "tokenizer_test_support.hpp"

namespace {

constexpr const char* o200k_sha256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d";

void put_u16(std::string& s, unsigned v) {
  s.push_back(static_cast<char>(v & 0xFF));
  s.push_back(static_cast<char>((v >> 8) & 0xFF));
}
void put_u32(std::string& s, std::uint32_t v) {
  for (int k = 0; k < 4; ++k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xFF));
}

struct record {
  std::string bytes;
  std::uint32_t rank;
};

// The file format, written independently of the reader (as quicktok's _import_core.py does).
std::string vocab_file(const std::vector<record>& records, std::uint32_t count) {
  std::string s;
  put_u32(s, count);
  for (const record& r : records) {
    put_u16(s, static_cast<unsigned>(r.bytes.size()));
    s += r.bytes;
    put_u32(s, r.rank);
  }
  return s;
}
std::string vocab_file(const std::vector<record>& records) {
  return vocab_file(records, static_cast<std::uint32_t>(records.size()));
}

std::string specials_file(const std::vector<mla::tok::special_token>& specials) {
  std::string s;
  put_u32(s, static_cast<std::uint32_t>(specials.size()));
  for (const auto& sp : specials) {
    put_u32(s, static_cast<std::uint32_t>(sp.id));
    put_u16(s, static_cast<unsigned>(sp.text.size()));
    s += sp.text;
  }
  return s;
}

// 256 single bytes and `extra` random distinct tokens (1..24 bytes, some long ones), ranks shuffled.
std::vector<std::string> random_tokens(std::mt19937_64& gen, std::size_t extra) {
  std::set<std::string> seen;
  std::vector<std::string> t;
  for (unsigned b = 0; b < 256; ++b) t.push_back(std::string(1, static_cast<char>(b))), seen.insert(t.back());
  std::uniform_int_distribution<int> len(2, 24), byte(0, 255), alpha('a', 'f');
  while (t.size() < 256 + extra) {
    std::string s(static_cast<std::size_t>(len(gen)), '\0');
    const bool letters = gen() % 2 == 0;  // letter runs, so that texts actually merge
    for (char& c : s) c = static_cast<char>(letters ? alpha(gen) : byte(gen));
    if (seen.insert(s).second) t.push_back(s);
  }
  if (extra > 0) t.push_back(std::string(1000, 'z'));  // a token longer than 255 bytes
  std::shuffle(t.begin(), t.end(), gen);
  return t;
}

std::vector<record> records_of(const std::vector<std::string>& tokens, std::mt19937_64& gen) {
  std::vector<record> r;
  for (std::size_t i = 0; i < tokens.size(); ++i) r.push_back({tokens[i], static_cast<std::uint32_t>(i)});
  std::shuffle(r.begin(), r.end(), gen);
  return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(quicktok)

BOOST_AUTO_TEST_CASE(sha256_known_answers) {
  using mla::test::sha256_hex;
  BOOST_TEST(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  BOOST_TEST(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  BOOST_TEST(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  BOOST_TEST(sha256_hex(std::string(1000000, 'a')) ==
             "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Padding edges: 55, 56 and 64 bytes (one block, two blocks, a full block then padding).
  BOOST_TEST(sha256_hex(std::string(55, 'a')) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  BOOST_TEST(sha256_hex(std::string(56, 'a')) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  BOOST_TEST(sha256_hex(std::string(64, 'a')) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

BOOST_AUTO_TEST_CASE(random_vocabularies_round_trip) {
  const std::uint64_t seed = tok_test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    for (const std::size_t extra : {std::size_t(0), std::size_t(1), std::size_t(300)}) {
      const std::vector<std::string> tokens = random_tokens(gen, extra);
      const std::string file = vocab_file(records_of(tokens, gen));
      const std::vector<std::string> read = mla::tok::read_quicktok_vocab(file, "random.vocab");
      BOOST_TEST(read == tokens, boost::test_tools::per_element());

      // Rank text -> tiktoken's own rank-file parser (its base64 decoder) -> same tokenizer.
      const std::string text = mla::tok::tiktoken_rank_text(read);
      const std::vector<mla::tok::special_token> specials = {{"<|end|>", static_cast<std::int32_t>(tokens.size())}};
      const auto from_text = mla::tok::tiktoken_bpe::from_rank_text(text, specials);
      const mla::tok::tiktoken_bpe direct(tokens, specials);
      BOOST_TEST(from_text.rank_count() == tokens.size());
      for (std::size_t r = 0; r < tokens.size(); ++r)
        BOOST_TEST_REQUIRE(from_text.token_bytes(static_cast<std::int32_t>(r)) == tokens[r]);
      std::uniform_int_distribution<int> pick(0, static_cast<int>(tokens.size()) - 1);
      for (int k = 0; k < 20; ++k) {
        std::string t;
        for (int j = 0; j < 12; ++j) {
          std::string piece = tokens[static_cast<std::size_t>(pick(gen))];
          if (mla::tok::find_invalid_utf8(piece) != std::string_view::npos) piece = "abc de";
          t += piece;
          if (j % 5 == 4) t += "<|end|>";
        }
        BOOST_TEST_CONTEXT("text '" << t << "'") {
          BOOST_TEST(from_text.encode(t) == direct.encode(t), boost::test_tools::per_element());
          BOOST_TEST(from_text.decode(from_text.encode(t)) == t);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(specials_round_trip) {
  const std::vector<mla::tok::special_token> s = {{"<|start|>", 200006}, {"<|end|>", 200007}, {"<|é|>", 5}};
  const auto read = mla::tok::read_quicktok_specials(specials_file(s), "x.special");
  BOOST_TEST_REQUIRE(read.size() == s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    BOOST_TEST(read[i].text == s[i].text);
    BOOST_TEST(read[i].id == s[i].id);
  }
  BOOST_TEST(mla::tok::read_quicktok_specials(specials_file({}), "empty.special").empty());
}

BOOST_AUTO_TEST_CASE(malformed_vocabularies_are_errors) {
  using tok_test::expect_error;
  auto read = [](const std::string& f) { return [f] { mla::tok::read_quicktok_vocab(f, "bad.vocab"); }; };
  const std::vector<record> good = {{"a", 1}, {"b", 0}, {"hello", 2}};
  const std::string file = vocab_file(good);
  BOOST_TEST(mla::tok::read_quicktok_vocab(file, "good.vocab") == (std::vector<std::string>{"b", "a", "hello"}),
             boost::test_tools::per_element());
  // Every truncation.
  for (std::size_t n = 0; n < file.size(); ++n) BOOST_TEST_CONTEXT("truncated to " << n << " bytes") {
      expect_error(read(file.substr(0, n)), {"bad.vocab"});
    }
  expect_error(read(""), {"bad.vocab", "truncated", "u32 token count"});
  expect_error(read(file.substr(0, file.size() - 2)), {"bad.vocab", "truncated", "rank of token record 2"});
  const std::string long_last = vocab_file({{"a", 0}, {"b", 1}, {std::string(40, 'x'), 2}});
  expect_error(read(long_last.substr(0, 4 + 7 + 7 + 2 + 10)), {"bad.vocab", "truncated", "bytes of token record 2"});
  expect_error(read(vocab_file({}, 0)), {"bad.vocab", "token count is 0"});
  expect_error(read(vocab_file(good, 0xFFFFFFFFu)), {"bad.vocab", "token count 4294967295"});
  expect_error(read(vocab_file(good, 4)), {"bad.vocab"});
  expect_error(read(vocab_file({{"a", 0}, {"", 1}, {"cccc", 2}})), {"bad.vocab", "record 1", "length 0"});
  expect_error(read(vocab_file({{"a", 0}, {"b", 3}, {"c", 2}})),
               {"bad.vocab", "record 1", "rank 3", "below the token count 3"});
  expect_error(read(vocab_file({{"a", 0}, {"b", 2}, {"c", 2}})), {"bad.vocab", "record 2", "rank 2 appears twice"});
  expect_error(read(vocab_file({{"a", 0}, {"b", 1}, {"a", 2}})), {"bad.vocab", "record 2", "same bytes"});
  expect_error(read(file + "x"), {"bad.vocab", "1 trailing bytes"});
  // A length field that claims more than is there.
  std::string long_len = file;
  long_len[4] = '\xFF', long_len[5] = '\xFF';
  expect_error(read(long_len), {"bad.vocab", "truncated", "65535 bytes"});
  // A vocabulary without every single byte cannot make a tokenizer; the error names the file.
  const mla::test::temp_dir dir("mla-quicktok");
  const std::string tmp = dir.file("no-single-bytes.vocab");
  std::ofstream(tmp, std::ios::binary) << vocab_file(good);
  expect_error([&] { mla::tok::o200k_harmony_from_quicktok(tmp); }, {tmp, "byte 0 is not a token"});
  expect_error([&] { mla::tok::load_o200k_harmony(tmp); }, {tmp, "byte 0 is not a token"});
  expect_error([] { mla::tok::read_quicktok_vocab_file("/nonexistent/o200k.vocab"); },
               {"cannot open", "/nonexistent/o200k.vocab"});
}

BOOST_AUTO_TEST_CASE(malformed_specials_are_errors) {
  using tok_test::expect_error;
  auto read = [](const std::string& f) { return [f] { mla::tok::read_quicktok_specials(f, "bad.special"); }; };
  const std::string file = specials_file({{"<|a|>", 7}, {"<|b|>", 8}});
  for (std::size_t n = 0; n < file.size(); ++n) BOOST_TEST_CONTEXT("truncated to " << n << " bytes") {
      expect_error(read(file.substr(0, n)), {"bad.special"});
    }
  expect_error(read(specials_file({{"<|a|>", 7}, {"<|a|>", 8}})), {"bad.special", "record 1", "twice"});
  expect_error(read(specials_file({{"\xFF", 7}})), {"bad.special", "record 0", "UTF-8"});
  expect_error(read(specials_file({{"x", -1}})), {"bad.special", "record 0", "id 4294967295"});
  expect_error(read(file + "zz"), {"bad.special", "2 trailing bytes"});
  std::string big = file;
  big[0] = '\xFF', big[1] = '\xFF', big[2] = '\xFF', big[3] = '\x0F';
  expect_error(read(big), {"bad.special", "special-token count"});
}

BOOST_AUTO_TEST_CASE(rank_text_is_tiktokens_format) {
  // Base64 with padding for 1, 2 and 3 bytes; holes skipped.
  BOOST_TEST(mla::tok::tiktoken_rank_text({"a", "", "ab", "abc", std::string("\xFF\0", 2)}) ==
             std::string("YQ== 0\nYWI= 2\nYWJj 3\n/wA= 4\n"));
  BOOST_TEST(mla::tok::tiktoken_rank_text({std::string("\0", 1)}) == "AA== 0\n");
}

BOOST_AUTO_TEST_CASE(real_o200k_vocab_is_tiktokens_file,
                     *boost::unit_test::label("model") * boost::unit_test::precondition(tok_test::has_o200k{true})) {
  const std::string path = tok_test::o200k_vocab_path();
  BOOST_TEST_MESSAGE("o200k vocabulary: " << path);
  const std::vector<std::string> tokens = mla::tok::read_quicktok_vocab_file(path);
  BOOST_TEST(tokens.size() == 199998u);
  const std::string text = mla::tok::tiktoken_rank_text(tokens);
  BOOST_TEST(mla::test::sha256_hex(text) == o200k_sha256);
  const char* home = std::getenv("HOME");
  const std::string rank_file = std::string(home ? home : "") + "/.cache/mla/o200k_base.tiktoken";
  if (tok_test::file_exists(rank_file)) BOOST_TEST((tok_test::read_file(rank_file) == text));

  // The tokenizer from the .vocab and from the rank text: same vocabulary size, same ids.
  const mla::tok::tiktoken_bpe t = mla::tok::load_o200k_harmony(path);
  BOOST_TEST(t.vocab_size() == 201088u);
  for (const auto& c : tok_test::o200k_golden()["texts"])
    BOOST_TEST(t.encode(c["text"].get<std::string>()) == c["ids"].get<std::vector<std::int32_t>>(),
               boost::test_tools::per_element());

  // quicktok's o200k_harmony.special lists exactly the project's harmony special tokens.
  const std::string special_path = path.substr(0, path.rfind('/') + 1) + "o200k_harmony.special";
  if (tok_test::file_exists(special_path)) {
    std::map<std::string, std::int32_t> want, got;
    for (const auto& s : mla::tok::o200k_harmony_special_tokens()) want[s.text] = s.id;
    for (const auto& s : mla::tok::read_quicktok_specials_file(special_path)) got[s.text] = s.id;
    BOOST_TEST(got.size() == want.size());
    BOOST_TEST((got == want));
  }
}

BOOST_AUTO_TEST_SUITE_END()
