#include "mla/tokenizer/gguf_vocab.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "mla/tokenizer/chat_template.hpp"
#include "tokenizer_test_support.hpp"

namespace {
using mla::tok::tokenizer;
using ids = std::vector<std::int32_t>;

// A minimal GGUF v3 writer for metadata-only files (no tensors), independent of the reader.
class gguf_writer {
 public:
  // Value type ids: 4 UINT32, 5 INT32, 7 BOOL, 8 STRING, 9 ARRAY.
  void string(const std::string& key, const std::string& v) {
    key_type(key, 8);
    str(v);
  }
  void u32(const std::string& key, std::uint32_t v) {
    key_type(key, 4);
    pod(v);
  }
  void i32(const std::string& key, std::int32_t v) {
    key_type(key, 5);
    pod(v);
  }
  void boolean(const std::string& key, bool v) {
    key_type(key, 7);
    pod(static_cast<std::uint8_t>(v));
  }
  void strings(const std::string& key, const std::vector<std::string>& v) {
    array_header(key, 8, v.size());
    for (const auto& s : v) str(s);
  }
  void i32s(const std::string& key, const std::vector<std::int32_t>& v) {
    array_header(key, 5, v.size());
    for (const auto x : v) pod(x);
  }
  std::vector<std::uint8_t> bytes() const {
    std::vector<std::uint8_t> out;
    const auto put = [&](const auto& v) {
      const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
      out.insert(out.end(), p, p + sizeof v);
    };
    put(std::uint32_t{0x46554747});
    put(std::uint32_t{3});
    put(std::uint64_t{0});
    put(count_);
    out.insert(out.end(), kv_.begin(), kv_.end());
    while (out.size() % 32 != 0) out.push_back(0);
    return out;
  }

 private:
  template <class T>
  void pod(T v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    kv_.insert(kv_.end(), p, p + sizeof v);
  }
  void str(const std::string& s) {
    pod(static_cast<std::uint64_t>(s.size()));
    kv_.insert(kv_.end(), s.begin(), s.end());
  }
  void key_type(const std::string& key, std::uint32_t type) {
    str(key);
    pod(type);
    ++count_;
  }
  void array_header(const std::string& key, std::uint32_t element_type, std::size_t count) {
    key_type(key, 9);
    pod(element_type);
    pod(static_cast<std::uint64_t>(count));
  }
  std::vector<std::uint8_t> kv_;
  std::uint64_t count_ = 0;
};

// ids 0..255 bytes, 256 "ab", 257 "<s>" (control).
struct synthetic {
  std::string model = "gpt2";
  std::string pre = "smollm";
  std::vector<std::string> merges = {"a b"};
  std::vector<std::int32_t> types;
  bool with_tokens = true;

  std::vector<std::uint8_t> build() const {
    gguf_writer w;
    w.string("general.architecture", "llama");
    w.string("tokenizer.ggml.model", model);
    w.string("tokenizer.ggml.pre", pre);
    const auto tokens = tok_test::byte_tokens({"ab", "<s>"});
    if (with_tokens) w.strings("tokenizer.ggml.tokens", tokens);
    std::vector<std::int32_t> t = types;
    if (t.empty()) {
      t.assign(tokens.size(), 1);
      t[257] = 3;
    }
    w.i32s("tokenizer.ggml.token_type", t);
    w.strings("tokenizer.ggml.merges", merges);
    w.u32("tokenizer.ggml.bos_token_id", 257);
    w.i32("tokenizer.ggml.eos_token_id", -1);  // "none"
    w.boolean("tokenizer.ggml.add_bos_token", true);
    w.string("tokenizer.chat_template", "{{ x }}");
    return w.bytes();
  }
};

tokenizer load(const std::vector<std::uint8_t>& bytes) {
  const auto f = mla::io::gguf_file::from_bytes(mla::io::byte_span{bytes.data(), bytes.size()}, "synthetic.gguf");
  return mla::tok::tokenizer_from_gguf(f);
}

// ---- the real SmolLM2 GGUF ---------------------------------------------------------------------

std::string gguf_path() { return mla::test::smollm2_gguf_path(); }
const char* const wikitext_test_file = "wikitext-2-raw-test.txt";

const tokenizer& smollm2() {
  static const tokenizer t = mla::tok::tokenizer_from_gguf(gguf_path());
  return t;
}

// FNV-1a 64 over the ids as little-endian uint32 bytes, as tools/tokenizer_golden.py computes it.
std::string fnv1a64(const ids& v) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const auto id : v) {
    for (int k = 0; k < 4; ++k) {
      h ^= (static_cast<std::uint32_t>(id) >> (8 * k)) & 0xFFu;
      h *= 0x100000001b3ull;
    }
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::size_t first_difference(const ids& a, const ids& b) {
  std::size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(gguf_vocab)

BOOST_AUTO_TEST_CASE(builds_the_tokenizer_from_gguf_metadata) {
  const auto bytes = synthetic{}.build();
  const tokenizer t = load(bytes);
  BOOST_TEST(t.vocab_size() == 258u);
  BOOST_TEST(t.bos_id().value_or(-1) == 257);
  BOOST_TEST(!t.eos_id().has_value());
  BOOST_TEST(t.pre_tokenizer().individual_digits);
  BOOST_TEST(t.encode("ab<s>12") == (ids{257, 256, 257, '1', '2'}));  // add_bos_token = true
  const auto f = mla::io::gguf_file::from_bytes(mla::io::byte_span{bytes.data(), bytes.size()}, "s.gguf");
  BOOST_TEST(mla::tok::chat_template_from_gguf(f).value_or("") == "{{ x }}");
  synthetic gpt2;
  gpt2.pre = "gpt-2";
  BOOST_TEST(!load(gpt2.build()).pre_tokenizer().individual_digits);
}

BOOST_AUTO_TEST_CASE(unsupported_or_inconsistent_metadata_is_named) {
  synthetic llama;
  llama.model = "llama";
  tok_test::expect_error([&] { (void)load(llama.build()); }, {"synthetic.gguf", "tokenizer.ggml.model is 'llama'"});
  synthetic pre;
  pre.pre = "llama-bpe";
  tok_test::expect_error([&] { (void)load(pre.build()); }, {"tokenizer.ggml.pre is 'llama-bpe'", "smollm"});
  synthetic types;
  types.types = {1, 1, 1};
  tok_test::expect_error([&] { (void)load(types.build()); }, {"token_type has 3 entries for 258 tokens"});
  synthetic merges;
  merges.merges = {"a b", "ab"};
  tok_test::expect_error([&] { (void)load(merges.build()); }, {"tokenizer.ggml.merges", "merge #1 'ab'"});
  synthetic unknown;
  unknown.merges = {"a q"};
  tok_test::expect_error([&] { (void)load(unknown.build()); }, {"synthetic.gguf", "merge #0", "result 'aq'"});
  synthetic no_tokens;
  no_tokens.with_tokens = false;
  tok_test::expect_error([&] { (void)load(no_tokens.build()); }, {"tokenizer.ggml.tokens"});
}

// The real model's cases: each suite is one CTest test, skipped without its files (tests/support/resources.hpp).
BOOST_AUTO_TEST_SUITE(smollm2_model,
                      *boost::unit_test::label("model") * boost::unit_test::precondition(mla::test::has_smollm2{}))

BOOST_AUTO_TEST_CASE(vocabulary_metadata) {
  const tokenizer& t = smollm2();
  const auto& m = tok_test::golden()["model"];
  BOOST_TEST(t.vocab_size() == m["vocab_size"].get<std::size_t>());
  BOOST_TEST(t.model().merge_count() == m["merges"].get<std::size_t>());
  BOOST_TEST(t.bos_id().value_or(-1) == m["bos_id"].get<std::int32_t>());
  BOOST_TEST(t.eos_id().value_or(-1) == m["eos_id"].get<std::int32_t>());
  BOOST_TEST(t.token_text(1) == "<|im_start|>");
  BOOST_TEST(t.type(1) == mla::tok::token_type::control);
  const auto f = mla::io::gguf_file::open(gguf_path());
  BOOST_TEST(mla::tok::is_smollm2_chat_template(mla::tok::chat_template_from_gguf(f).value_or("")));
}

// Every text of the golden set: ids exactly as Hugging Face tokenizers gives them, and back.
BOOST_AUTO_TEST_CASE(golden_texts_match_hugging_face) {
  const tokenizer& t = smollm2();
  const auto& cases = tok_test::golden()["cases"];
  BOOST_TEST(cases.size() >= 50u);
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    const ids expected = tok_test::ids_of(c["ids"]);
    const ids got = t.encode(text);
    BOOST_TEST_CONTEXT("text " << c["text"].dump()) {
      BOOST_TEST(got == expected, "first difference at index " << first_difference(got, expected) << ": got "
                                                               << tok_test::show(got) << ", expected "
                                                               << tok_test::show(expected));
      BOOST_TEST(t.decode(got) == c["decoded"].get<std::string>());
      BOOST_TEST(t.decode(got, mla::tok::decode_options{true}) == c["decoded_skip_special"].get<std::string>());
      BOOST_TEST(t.decode(got) == text);
    }
  }
}

BOOST_AUTO_TEST_CASE(golden_chat_prompts_match_hugging_face) {
  const tokenizer& t = smollm2();
  for (const auto& c : tok_test::golden()["chat"]) {
    std::vector<mla::tok::chat_message> messages;
    for (const auto& m : c["messages"]) {
      messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    mla::tok::chatml_options options;
    options.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    const std::string rendered = mla::tok::render_chatml(messages, options);
    BOOST_TEST_CONTEXT("conversation " << c["messages"].dump()) {
      BOOST_TEST(rendered == c["rendered"].get<std::string>());
      BOOST_TEST(t.encode(rendered) == tok_test::ids_of(c["ids"]));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(smollm2_wikitext,
                      *boost::unit_test::label("model") * boost::unit_test::precondition(mla::test::has_smollm2{}) *
                          boost::unit_test::precondition(mla::test::has_data_file{wikitext_test_file}))

BOOST_AUTO_TEST_CASE(wikitext2_test_split_matches_hugging_face) {
  const tokenizer& t = smollm2();
  const std::string text = tok_test::read_file(mla::test::data_file(wikitext_test_file));
  const auto& g = tok_test::golden()["wikitext2_test"];
  BOOST_TEST_REQUIRE(text.size() == g["bytes"].get<std::size_t>(), "not the WikiText-2 file the golden data used");
  const auto start = std::chrono::steady_clock::now();
  const ids got = t.encode(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  BOOST_TEST_MESSAGE("WikiText-2 test: " << text.size() << " bytes -> " << got.size() << " tokens in " << seconds
                                         << " s");
  BOOST_TEST(got.size() == g["tokens"].get<std::size_t>());
  BOOST_TEST(fnv1a64(got) == g["fnv1a64_ids"].get<std::string>());
  const ids first = tok_test::ids_of(g["first_ids"]);
  const ids last = tok_test::ids_of(g["last_ids"]);
  BOOST_TEST_REQUIRE(got.size() >= first.size());
  BOOST_TEST(ids(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(first.size())) == first);
  BOOST_TEST(ids(got.end() - static_cast<std::ptrdiff_t>(last.size()), got.end()) == last);
  // Parenthesised: on failure, report without printing 1.3 MB twice.
  BOOST_TEST((t.decode(got) == text), "decode(encode(text)) differs from the WikiText-2 text");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE_END()
