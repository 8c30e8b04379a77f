#include "mla/tokenizer/tokenizer.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer_test_support.hpp"

namespace {
using mla::tok::decode_options;
using mla::tok::encode_options;
using mla::tok::token_type;
using mla::tok::tokenizer;
using mla::tok::vocabulary;
using ids = std::vector<std::int32_t>;
using nlohmann::json;

// ids 0..255 bytes, 256 "ab", 257 "<|s|>" (control), 258 "<|s|>x" (control), 259 "<u>" (user-defined),
// 260 "<m>" (control; lstrip/rstrip when asked), 261 "Ġab".
vocabulary tiny_vocabulary() {
  vocabulary v;
  v.tokens = tok_test::byte_tokens({"ab", "<|s|>", "<|s|>x", "<u>", "<m>",
                                    "\xC4\xA0"
                                    "ab"});
  v.token_types.assign(v.tokens.size(), static_cast<std::int32_t>(token_type::normal));
  v.token_types[257] = v.token_types[258] = v.token_types[260] = static_cast<std::int32_t>(token_type::control);
  v.token_types[259] = static_cast<std::int32_t>(token_type::user_defined);
  v.merges = {{"a", "b"}, {"\xC4\xA0", "ab"}};
  v.bos_id = 257;
  v.eos_id = 260;
  return v;
}

// A random valid UTF-8 string mixing ASCII, whitespace, digits, other scripts and special texts.
std::string random_utf8_text(std::mt19937_64& gen) {
  static const std::vector<std::string> pieces = {"<|s|>", "<|s|>x", "<u>", "<m>", "<|s", "|>", " ",
                                                  "  ",    "\n",     "\t",  "ab",  "'s",  "12", "\xC2\xA0"};
  std::string s;
  const std::size_t n = gen() % 30;
  for (std::size_t i = 0; i < n; ++i) {
    switch (gen() % 4) {
      case 0:
        s += pieces[gen() % pieces.size()];
        break;
      case 1:
        s += static_cast<char>(0x20 + gen() % 0x5F);
        break;
      case 2:
        s += static_cast<char>(gen() % 0x80);
        break;
      default: {
        char32_t cp = 0;
        do {
          cp = static_cast<char32_t>(gen() % 0x110000);
        } while (!mla::tok::is_scalar_value(cp));
        mla::tok::append_utf8(s, cp);
      }
    }
  }
  return s;
}

// A small valid tokenizer.json: the byte symbols, "ab" (256), "Ġab" (257), "<s>" (258, special).
json base_json() {
  json vocab = json::object();
  for (unsigned b = 0; b < 256; ++b) vocab[tok_test::sym(static_cast<unsigned char>(b))] = b;
  vocab["ab"] = 256;
  vocab
      ["\xC4\xA0"
       "ab"] = 257;
  vocab["<s>"] = 258;
  return json{
      {"version", "1.0"},
      {"added_tokens", json::array({{{"id", 258},
                                     {"content", "<s>"},
                                     {"single_word", false},
                                     {"lstrip", false},
                                     {"rstrip", false},
                                     {"normalized", false},
                                     {"special", true}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", json::array({"a b", "\xC4\xA0 ab"})}}},
  };
}

void expect_json_error(const std::function<void(json&)>& edit, std::initializer_list<std::string> parts) {
  json j = base_json();
  edit(j);
  tok_test::expect_error([&] { (void)tokenizer::from_hf_json(j.dump(), "edited.json"); }, parts);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(tokenizer_facade)

BOOST_AUTO_TEST_CASE(special_tokens_are_matched_leftmost_longest_before_pre_tokenization) {
  const tokenizer t(tiny_vocabulary());
  BOOST_TEST(t.encode("ab<|s|>ab") == (ids{256, 257, 256}));
  BOOST_TEST(t.encode("<|s|>x") == (ids{258}));
  BOOST_TEST(t.encode("<|s|><|s|>xy") == (ids{257, 258, 'y'}));
  BOOST_TEST(t.encode(" ab<u> ab") == (ids{261, 259, 261}));
  BOOST_TEST(t.encode("<|s") == (ids{'<', '|', 's'}));
  encode_options plain;
  plain.parse_special = false;
  BOOST_TEST(t.encode("<|s|>", plain) == (ids{'<', '|', 's', '|', '>'}));
  BOOST_TEST(t.type(257) == token_type::control);
  BOOST_TEST(t.type(259) == token_type::user_defined);
  BOOST_TEST(t.find("<u>").value_or(-1) == 259);
  BOOST_TEST(t.vocab_size() == 262u);
}

BOOST_AUTO_TEST_CASE(bos_and_eos_on_request) {
  const tokenizer t(tiny_vocabulary());
  encode_options both;
  both.add_bos = true;
  both.add_eos = true;
  BOOST_TEST(t.encode("ab", both) == (ids{257, 256, 260}));
  BOOST_TEST(t.encode("", both) == (ids{257, 260}));
  vocabulary v = tiny_vocabulary();
  v.bos_id.reset();
  v.add_bos = true;
  const tokenizer no_bos(std::move(v));
  tok_test::expect_error([&] { (void)no_bos.encode("ab"); }, {"BOS requested"});
  encode_options off;
  off.add_bos = false;
  BOOST_TEST(no_bos.encode("ab", off) == (ids{256}));
}

BOOST_AUTO_TEST_CASE(decode_gives_special_texts_verbatim_and_can_skip_control_tokens) {
  const tokenizer t(tiny_vocabulary());
  BOOST_TEST(t.decode({256, 257, 259, 261, ' ', '\n'}) == "ab<|s|><u> ab \n");
  BOOST_TEST(t.decode({256, 257, 259, 260}, decode_options{true}) == "ab<u>");
  BOOST_TEST(t.token_piece(261) == " ab");
  tok_test::expect_error([&] { (void)t.decode({262}); }, {"token id 262"});
  tok_test::expect_error([&] { (void)t.decode({-1}); }, {"token id -1"});
}

BOOST_AUTO_TEST_CASE(lstrip_and_rstrip_swallow_whitespace_around_a_special_token) {
  vocabulary v = tiny_vocabulary();
  v.strip = {{260, true, true}};
  const tokenizer t(std::move(v));
  BOOST_TEST(t.encode("ab  <m>  ab") == (ids{256, 260, 256}));
  BOOST_TEST(t.encode("ab\xE3\x80\x80<m>\n") == (ids{256, 260}));
  BOOST_TEST(t.encode("<|s|> <m>") == (ids{257, 260}));
}

BOOST_AUTO_TEST_CASE(invalid_utf8_input_is_an_error_with_the_offset) {
  const tokenizer t(tiny_vocabulary());
  tok_test::expect_error([&] { (void)t.encode("ab<|s|>\xC3("); }, {"input text", "byte offset 7"});
}

BOOST_AUTO_TEST_CASE(decode_inverts_encode_on_random_text) {
  const tokenizer t(tiny_vocabulary());
  const std::uint64_t seed = tok_test::test_seed();
  BOOST_TEST_MESSAGE("seed " << seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    for (int round = 0; round < 2000; ++round) {
      const std::string text = random_utf8_text(gen);
      for (const bool parse_special : {true, false}) {
        encode_options options;
        options.parse_special = parse_special;
        BOOST_TEST(t.decode(t.encode(text, options)) == text);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(inconsistent_vocabularies_are_named) {
  {
    vocabulary v = tiny_vocabulary();
    v.token_types.pop_back();
    tok_test::expect_error([&] { tokenizer{std::move(v)}; }, {"261 token types for 262 tokens"});
  }
  {
    vocabulary v = tiny_vocabulary();
    v.token_types[5] = 9;
    tok_test::expect_error([&] { tokenizer{std::move(v)}; }, {"token 5", "unknown token type 9"});
  }
  {
    vocabulary v = tiny_vocabulary();
    v.eos_id = 262;
    tok_test::expect_error([&] { tokenizer{std::move(v)}; }, {"EOS id 262"});
  }
  {
    vocabulary v = tiny_vocabulary();
    v.strip = {{256, true, false}};
    tok_test::expect_error([&] { tokenizer{std::move(v)}; }, {"token 256", "not a control"});
  }
  tok_test::expect_error([] { tokenizer{vocabulary{}}; }, {"empty vocabulary"});
}

BOOST_AUTO_TEST_CASE(reads_a_tokenizer_json_in_both_merge_forms) {
  const tokenizer strings = tokenizer::from_hf_json(base_json().dump());
  json arrays_json = base_json();
  arrays_json["model"]["merges"] = json::array({json::array({"a", "b"}), json::array({"\xC4\xA0", "ab"})});
  const tokenizer arrays = tokenizer::from_hf_json(arrays_json.dump());
  for (const tokenizer* t : {&strings, &arrays}) {
    BOOST_TEST(t->encode("ab ab<s>a1") == (ids{256, 257, 258, 'a', '1'}));
    BOOST_TEST(t->type(258) == token_type::control);
    BOOST_TEST(t->model().merge_count() == 2u);
    BOOST_TEST(!t->pre_tokenizer().individual_digits);
  }
  // An added token may also extend the vocabulary, and non-special ones are user-defined.
  json extended = base_json();
  extended["added_tokens"].push_back({{"id", 259}, {"content", "[x]"}, {"special", false}});
  extended["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}},
                                                              {{"type", "ByteLevel"}, {"add_prefix_space", false}}})}};
  const tokenizer t = tokenizer::from_hf_json(extended.dump());
  BOOST_TEST(t.vocab_size() == 260u);
  BOOST_TEST(t.type(259) == token_type::user_defined);
  BOOST_TEST(t.encode("[x]12") == (ids{259, '1', '2'}));
  BOOST_TEST(t.pre_tokenizer().individual_digits);
}

BOOST_AUTO_TEST_CASE(malformed_tokenizer_json_errors_name_the_field) {
  tok_test::expect_error([] { (void)tokenizer::from_hf_json("{\"model\": [1, 2", "broken.json"); },
                         {"broken.json", "not valid JSON", "at byte"});
  tok_test::expect_error([] { (void)tokenizer::from_hf_json("[1]", "a.json"); }, {"a.json", "(root)"});
  expect_json_error([](json& j) { j["model"].erase("vocab"); }, {"edited.json", "model.vocab", "missing"});
  expect_json_error([](json& j) { j.erase("model"); }, {"model", "missing"});
  expect_json_error([](json& j) { j["model"]["merges"][1] = 42; }, {"model.merges[1]", "expected"});
  expect_json_error([](json& j) { j["model"]["merges"][0] = "ab"; }, {"model.merges[0]", "one space"});
  expect_json_error([](json& j) { j["model"]["merges"][0] = json::array({"a"}); }, {"model.merges[0]"});
  expect_json_error([](json& j) { j["model"]["merges"][1] = "a zz"; }, {"edited.json", "merge #1", "'zz'"});
  expect_json_error([](json& j) { j["model"]["vocab"]["ab"] = -1; }, {"model.vocab['ab']", "non-negative"});
  expect_json_error([](json& j) { j["model"]["vocab"]["ab"] = "x"; }, {"model.vocab['ab']"});
  expect_json_error([](json& j) { j["model"]["vocab"]["zz"] = 300; }, {"no token has id 259", "largest id 300"});
  expect_json_error([](json& j) { j["model"]["vocab"]["zz"] = 256; }, {"model.vocab['zz']", "already names 'ab'"});
  expect_json_error([](json& j) { j["normalizer"] = {{"type", "NFC"}}; }, {"normalizer", "not supported"});
  expect_json_error([](json& j) { j["pre_tokenizer"]["add_prefix_space"] = true; }, {"pre_tokenizer.add_prefix_space"});
  expect_json_error([](json& j) { j["pre_tokenizer"] = {{"type", "Split"}}; }, {"pre_tokenizer.type", "'Split'"});
  expect_json_error([](json& j) { j.erase("pre_tokenizer"); }, {"pre_tokenizer", "missing"});
  expect_json_error([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, {"decoder", "ByteLevel"});
  expect_json_error([](json& j) { j["model"]["type"] = "WordPiece"; }, {"model.type", "'WordPiece'"});
  expect_json_error([](json& j) { j["model"]["byte_fallback"] = true; }, {"model.byte_fallback"});
  expect_json_error([](json& j) { j["model"]["dropout"] = 0.1; }, {"model.dropout"});
  expect_json_error([](json& j) { j["model"]["unk_token"] = "<unk>"; }, {"model.unk_token", "'<unk>'"});
  expect_json_error([](json& j) { j["added_tokens"][0]["content"] = "<t>"; },
                    {"added_tokens[0]", "'<s>' in model.vocab, not '<t>'"});
  expect_json_error([](json& j) { j["added_tokens"][0]["single_word"] = true; }, {"added_tokens[0].single_word"});
  expect_json_error([](json& j) { j["added_tokens"][0]["id"] = "258"; }, {"added_tokens[0].id"});
  expect_json_error([](json& j) { j["added_tokens"][0]["lstrip"] = 1; }, {"added_tokens[0].lstrip", "true or false"});
  tok_test::expect_error([] { (void)tokenizer::from_hf_json_file("/nonexistent/tokenizer.json"); },
                         {"cannot open", "/nonexistent/tokenizer.json"});
}

// tiny_tokenizer.json was serialised by Hugging Face tokenizers and its ids computed by it
// (tools/tokenizer_golden.py): the reader sees the real format, lstrip/rstrip and non-special tokens.
BOOST_AUTO_TEST_CASE(tiny_hf_tokenizer_json_matches_hugging_face) {
  const tokenizer t = tokenizer::from_hf_json_file(tok_test::data_path("tiny_tokenizer.json"));
  const auto& cases = tok_test::golden()["tiny"];
  BOOST_TEST(cases.size() >= 5u);
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    BOOST_TEST_CONTEXT("text " << c["text"].dump()) {
      const ids got = t.encode(text);
      BOOST_TEST(got == tok_test::ids_of(c["ids"]), tok_test::show(got) << " vs " << c["ids"].dump());
      BOOST_TEST(t.decode(got) == c["decoded"].get<std::string>());
      BOOST_TEST(t.decode(got, decode_options{true}) == c["decoded_skip_special"].get<std::string>());
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
