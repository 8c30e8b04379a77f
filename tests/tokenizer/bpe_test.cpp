#include "mla/tokenizer/bpe.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer_test_support.hpp"

namespace {
using mla::tok::bpe_model;
using mla::tok::bpe_options;
using mla::tok::merge_pair;
using ids = std::vector<std::int32_t>;
using tok_test::byte_tokens;
using tok_test::sym;

// Two references written independently of the library. `every_occurrence` true: GPT-2's original loop
// (find the lowest-ranked adjacent pair, merge every occurrence of it left to right, repeat). false: the
// Hugging Face order (merge only the leftmost occurrence of the lowest-ranked pair, then look again), which
// is what the library implements. They differ only when one token has several producing merges: merging
// the leftmost pair P can create a pair Q ranked below P (Q's left token was first made by another merge),
// which Hugging Face merges before P's other occurrences. Trained vocabularies make each token once.
std::vector<std::string> reference_bpe(const std::string& word, const std::vector<merge_pair>& merges,
                                       bool every_occurrence) {
  std::map<std::pair<std::string, std::string>, std::size_t> rank;
  for (std::size_t r = 0; r < merges.size(); ++r) rank.emplace(merges[r], r);
  std::vector<std::string> symbols;
  for (const char c : word) symbols.push_back(sym(static_cast<unsigned char>(c)));
  while (symbols.size() > 1) {
    std::size_t best = merges.size();
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto it = rank.find({symbols[i], symbols[i + 1]});
      if (it != rank.end()) best = std::min(best, it->second);
    }
    if (best == merges.size()) break;
    const auto& [first, second] = merges[best];
    std::vector<std::string> next;
    bool merged = false;
    for (std::size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == first && symbols[i + 1] == second && (every_occurrence || !merged)) {
        next.push_back(first + second);
        merged = true;
        i += 2;
      } else {
        next.push_back(symbols[i]);
        i += 1;
      }
    }
    symbols = std::move(next);
  }
  return symbols;
}

std::vector<std::string> texts_of(const bpe_model& m, const ids& v) {
  std::vector<std::string> out;
  for (const auto id : v) out.push_back(m.token_text(id));
  return out;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(bpe)

BOOST_AUTO_TEST_CASE(merges_apply_in_rank_order) {
  // ab before bc: "abc" -> ab c; the other way round: a bc.
  const auto tokens = byte_tokens({"ab", "bc"});
  const bpe_model ab_first(tokens, {{"a", "b"}, {"b", "c"}});
  const bpe_model bc_first(tokens, {{"b", "c"}, {"a", "b"}});
  BOOST_TEST(texts_of(ab_first, ab_first.encode_word("abc")) == (std::vector<std::string>{"ab", "c"}));
  BOOST_TEST(texts_of(bc_first, bc_first.encode_word("abc")) == (std::vector<std::string>{"a", "bc"}));
  BOOST_TEST(ab_first.merge_rank(*ab_first.find("a"), *ab_first.find("b")).value_or(9) == 0u);
  BOOST_TEST(!ab_first.merge_rank(*ab_first.find("b"), *ab_first.find("a")).has_value());
}

BOOST_AUTO_TEST_CASE(equal_ranks_merge_leftmost_first_and_results_merge_further) {
  const bpe_model m(byte_tokens({"aa", "aaa"}), {{"a", "a"}, {"aa", "a"}});
  BOOST_TEST(texts_of(m, m.encode_word("aa")) == (std::vector<std::string>{"aa"}));
  BOOST_TEST(texts_of(m, m.encode_word("aaa")) == (std::vector<std::string>{"aaa"}));
  BOOST_TEST(texts_of(m, m.encode_word("aaaa")) == (std::vector<std::string>{"aa", "aa"}));
  BOOST_TEST(texts_of(m, m.encode_word("aaaaa")) == (std::vector<std::string>{"aa", "aaa"}));
  const bpe_model words(
      byte_tokens({"he", "ll", "hell", "hello", "\xC4\xA0w", "or", "\xC4\xA0wor"}),
      {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"\xC4\xA0", "w"}, {"o", "r"}, {"\xC4\xA0w", "or"}});
  BOOST_TEST(texts_of(words, words.encode_word("hello")) == (std::vector<std::string>{"hello"}));
  BOOST_TEST(texts_of(words, words.encode_word(" world")) == (std::vector<std::string>{"\xC4\xA0wor", "l", "d"}));
}

BOOST_AUTO_TEST_CASE(agrees_with_the_reference_loop_on_random_vocabularies) {
  const std::uint64_t seed = tok_test::test_seed();
  BOOST_TEST_MESSAGE("seed " << seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    for (int vocab_round = 0; vocab_round < 30; ++vocab_round) {
      // Random merges over a 4-letter alphabet; in odd rounds several pairs may produce the same token, in
      // even rounds each token has one producing merge (as in a trained vocabulary).
      const bool unique_results = vocab_round % 2 == 0;
      std::vector<std::string> extra;
      std::vector<merge_pair> merges;
      bool one_producer_each = true;
      std::vector<std::string> pool = {"a", "b", "c", "d"};
      for (int attempt = 0; attempt < 80; ++attempt) {
        const std::string x = pool[gen() % pool.size()];
        const std::string y = pool[gen() % pool.size()];
        if (x.size() + y.size() > 8) continue;
        if (std::find(merges.begin(), merges.end(), merge_pair{x, y}) != merges.end()) continue;
        if (unique_results && std::find(pool.begin(), pool.end(), x + y) != pool.end()) continue;
        merges.emplace_back(x, y);
        if (std::find(pool.begin(), pool.end(), x + y) == pool.end()) {
          pool.push_back(x + y);
          extra.push_back(x + y);
        } else {
          one_producer_each = false;
        }
      }
      bpe_options options;
      options.cache_capacity = gen() % 2 == 0 ? 0 : 3;  // no cache, or one that is cleared often
      const bpe_model m(byte_tokens(extra), merges, options);
      for (int w = 0; w < 60; ++w) {
        std::string word(1 + gen() % 40, 'a');
        for (char& c : word) c = static_cast<char>('a' + gen() % 4);
        const auto got = texts_of(m, m.encode_word(word));
        BOOST_TEST_CONTEXT("vocabulary " << vocab_round << ", word " << word) {
          BOOST_TEST(got == reference_bpe(word, merges, false));
          if (one_producer_each) BOOST_TEST(got == reference_bpe(word, merges, true));
          BOOST_TEST((one_producer_each || !unique_results));
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(arbitrary_bytes_fall_back_to_byte_tokens_and_round_trip) {
  const bpe_model m(byte_tokens({"ab"}), {{"a", "b"}});
  BOOST_TEST(m.encode_word(std::string("\x00\xFF\n", 3)) == (ids{0x00, 0xFF, '\n'}));
  BOOST_TEST(m.token_bytes(' ') == " ");
  BOOST_TEST(m.token_text(' ') == "\xC4\xA0");
  const std::uint64_t seed = tok_test::test_seed();
  BOOST_TEST_MESSAGE("seed " << seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    for (int round = 0; round < 2000; ++round) {
      std::string bytes(gen() % 50, '\0');
      for (char& c : bytes) c = static_cast<char>(gen() % 3 == 0 ? 'a' + gen() % 2 : gen());
      BOOST_TEST(m.decode(m.encode_word(bytes)) == bytes);
    }
  }
}

BOOST_AUTO_TEST_CASE(missing_byte_symbol_is_an_error_or_the_unknown_token) {
  auto tokens = byte_tokens({"<unk>"});
  tokens[0xFF] = "";  // no symbol for byte 0xFF
  const bpe_model strict(tokens, {});
  tok_test::expect_error([&] { (void)strict.encode_word("a\xFF"); }, {"byte 0xFF", "no token"});
  bpe_options options;
  options.unk_id = 256;
  const bpe_model lenient(tokens, {}, options);
  BOOST_TEST(lenient.encode_word("a\xFF") == (ids{'a', 256}));
}

BOOST_AUTO_TEST_CASE(ignore_merges_emits_whole_word_tokens) {
  const auto tokens = byte_tokens({"ab", "abc"});
  const std::vector<merge_pair> merges = {{"a", "b"}};
  const bpe_model plain(tokens, merges);
  bpe_options options;
  options.ignore_merges = true;
  const bpe_model whole(tokens, merges, options);
  BOOST_TEST(texts_of(plain, plain.encode_word("abc")) == (std::vector<std::string>{"ab", "c"}));
  BOOST_TEST(texts_of(whole, whole.encode_word("abc")) == (std::vector<std::string>{"abc"}));
  BOOST_TEST(texts_of(whole, whole.encode_word("abca")) == (std::vector<std::string>{"ab", "c", "a"}));
}

BOOST_AUTO_TEST_CASE(copies_and_moves_keep_working) {
  bpe_model m(byte_tokens({"ab"}), {{"a", "b"}});
  (void)m.encode_word("abab");  // fills the cache
  const bpe_model copy = m;
  bpe_model moved = std::move(m);
  BOOST_TEST(copy.encode_word("abab") == (ids{256, 256}));
  BOOST_TEST(moved.encode_word("abab") == (ids{256, 256}));
  BOOST_TEST(copy.vocab_size() == 257u);
  BOOST_TEST(copy.merge_count() == 1u);
}

BOOST_AUTO_TEST_CASE(bad_vocabularies_and_merges_are_named) {
  tok_test::expect_error(
      [] {
        (void)bpe_model(byte_tokens({"ab"}), {{"a", "b"}, {"x", "yz"}});
      },
      {"merge #1", "'yz' is not in the vocabulary"});
  tok_test::expect_error(
      [] {
        (void)bpe_model(byte_tokens(), {{"a", "b"}});
      },
      {"merge #0", "result 'ab' is not in the vocabulary"});
  tok_test::expect_error(
      [] {
        (void)bpe_model(byte_tokens({"ab"}), {{"a", "b"}, {"a", "b"}});
      },
      {"merge #1", "repeats merge #0"});
  tok_test::expect_error([] { (void)bpe_model(byte_tokens({"a"}), {}); }, {"'a' appears twice", "ids 97 and 256"});
  tok_test::expect_error([] { (void)bpe_model(byte_tokens(), {}).token_text(256); }, {"token id 256"});
  tok_test::expect_error([] { (void)bpe_model().encode_word("ab"); }, {"byte 0x61", "no token"});
  bpe_options options;
  options.unk_id = 999;
  tok_test::expect_error([&] { (void)bpe_model(byte_tokens(), {}, options); }, {"unknown-token id 999"});
}

BOOST_AUTO_TEST_CASE(split_merge_accepts_exactly_two_tokens) {
  BOOST_TEST((mla::tok::split_merge("\xC4\xA0 t", 0) == merge_pair{"\xC4\xA0", "t"}));
  for (const char* bad : {"ab", "a b c", " ab", "ab ", "a  b", ""}) {
    tok_test::expect_error([&] { (void)mla::tok::split_merge(bad, 7); }, {"merge #7", "one space"});
  }
}

BOOST_AUTO_TEST_SUITE_END()
