// tokenizer_json: a vocabulary written as tokenizer.json and read back by tokenizer::from_hf_json encodes and
// decodes like the tokenizer built directly from the vocabulary (hand-built vocabulary, random texts), and the
// real SmolLM2 GGUF vocabulary round-trips on WikiText-2 (the GGUF tokenizer is itself checked against HF).
#include "mla/tokenizer/tokenizer_json.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "mla/tokenizer/gguf_vocab.hpp"
#include "random_text.hpp"
#include "tokenizer_test_support.hpp"

namespace {
using mla::tok::token_type;
using mla::tok::tokenizer;
using mla::tok::vocabulary;
using ids = std::vector<std::int32_t>;

vocabulary small_vocabulary(bool digits) {
  vocabulary v;
  v.tokens = tok_test::byte_tokens({"ab", "<|s|>", "<u>", "<m>",
                                    "\xC4\xA0"
                                    "ab",
                                    "12"});
  v.token_types.assign(v.tokens.size(), static_cast<std::int32_t>(token_type::normal));
  v.token_types[257] = v.token_types[259] = static_cast<std::int32_t>(token_type::control);
  v.token_types[258] = static_cast<std::int32_t>(token_type::user_defined);
  v.merges = {{"a", "b"}, {"\xC4\xA0", "ab"}, {"1", "2"}};
  v.strip = {{259, true, true}};
  v.pre_tokenizer.individual_digits = digits;
  return v;
}

// Texts over the vocabulary's specials, merges and digits.
std::string vocabulary_text(std::mt19937_64& gen) {
  static const std::vector<std::string> pieces = {"<|s|>", "<u>", "<m>", " ",   "  ",       "\n",
                                                  "ab",    " ab", "12",  "123", "\xC3\xA9", "x"};
  return mla::test::random_text(gen, pieces, 39);
}

BOOST_AUTO_TEST_SUITE(tokenizer_json)

BOOST_AUTO_TEST_CASE(round_trip_matches_direct_tokenizer) {
  const std::uint64_t seed = tok_test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    for (const bool digits : {true, false}) {
      const vocabulary v = small_vocabulary(digits);
      const tokenizer direct(v);
      const tokenizer back = tokenizer::from_hf_json(mla::tok::tokenizer_json(v));
      BOOST_TEST(back.vocab_size() == direct.vocab_size());
      for (std::int32_t id = 0; id < static_cast<std::int32_t>(v.tokens.size()); ++id)
        BOOST_TEST(static_cast<int>(back.type(id)) == static_cast<int>(direct.type(id)), "id " << id);
      for (int i = 0; i < 200; ++i) {
        const std::string text = vocabulary_text(gen);
        const ids a = direct.encode(text), b = back.encode(text);
        BOOST_TEST(a == b, "text '" << text << "': " << tok_test::show(a) << " vs " << tok_test::show(b));
        BOOST_TEST(back.decode(b) == direct.decode(a));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(duplicate_texts_are_an_error) {
  vocabulary v = small_vocabulary(true);
  v.tokens.push_back("ab");
  v.token_types.push_back(static_cast<std::int32_t>(token_type::normal));
  BOOST_CHECK_EXCEPTION(mla::tok::tokenizer_json(v), mla::error,
                        [](const mla::error& e) { return std::string(e.what()).find("'ab'") != std::string::npos; });
}

// The real model's vocabulary through tokenizer.json (one CTest test, skipped without its files).
BOOST_AUTO_TEST_CASE(smollm2_gguf_round_trip,
                     *boost::unit_test::label("model") * boost::unit_test::precondition(mla::test::has_smollm2{}) *
                         boost::unit_test::precondition(mla::test::has_data_file{"wikitext-2-raw-test.txt"})) {
  const std::string gguf = mla::test::smollm2_gguf_path();
  const std::string wiki = mla::test::data_file("wikitext-2-raw-test.txt");
  const mla::io::gguf_file f = mla::io::gguf_file::open(gguf);
  const tokenizer direct = mla::tok::tokenizer_from_gguf(f);
  const tokenizer back = tokenizer::from_hf_json(mla::tok::tokenizer_json(mla::tok::vocabulary_from_gguf(f)));
  std::string text = tok_test::read_file(wiki).substr(0, 300000);
  while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0x80)) text.pop_back();
  BOOST_TEST(back.encode(text) == direct.encode(text));
  const std::string chat = "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi 2024!<|im_end|>\n";
  BOOST_TEST(back.encode(chat) == direct.encode(chat));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
