// gpt-oss's tokenizer through load_model (gpt_oss_tokenizer.hpp, o200k_json.hpp):
//  - the synthetic o200k-form tokenizer.json of a generated checkpoint reads back as the vocabulary it
//    was written from (tokenizer built from the plain vectors, an independent path): same ids on fresh
//    random texts, decode round trips, harmony specials at the top ids, EOS = <|return|>;
//  - a tiny generated checkpoint runs end to end through the library: harmony-rendered prompt ->
//    prefill + greedy decode of a few tokens, perplexity of a short text (finite; the paths mla-generate
//    and mla-eval take);
//  - o200k-form tokenizer.json errors name the field;
//  - with the real o200k vocabulary at hand (MLA_O200K_VOCAB or scripts/fetch_o200k.sh's cache): its
//    tokenizer.json form reads back to the same ids as tiktoken's golden data, and a gpt-oss directory
//    without tokenizer.json gets it from the fallback (label `model`).
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "expect_error.hpp"
#include "files.hpp"
#include "json_file.hpp"
#include "model_test_support.hpp"
#include "mla/eval/perplexity.hpp"
#include "mla/model/gpt_oss_checkpoint.hpp"
#include "mla/model/gpt_oss_tokenizer.hpp"
#include "mla/model/load.hpp"
#include "mla/tokenizer/chat_template.hpp"
#include "mla/tokenizer/o200k_json.hpp"
#include "mla/tokenizer/quicktok.hpp"
#include "random.hpp"
#include "random_text.hpp"
#include "resources.hpp"

namespace fs = std::filesystem;

namespace {

// Random UTF-8 text: words from a small alphabet (so that merges apply), digits, punctuation, spaces,
// newlines, some non-ASCII letters and the odd harmony special token.
std::string harmony_text(std::mt19937_64& gen) {
  static const std::vector<std::string> atoms = {
      "the", " the", "e",  "a",  "th", " model", "tion", "Paris", "1",  "23",      "456",       ",",           ".",
      "!",   " ",    "\n", "  ", "é",  "ж",      "字",   "😀",     "'s", "<|end|>", "<|start|>", "<|message|>", "x"};
  return mla::test::random_text(gen, atoms, 40);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(model_gpt_oss_tokenizer)

BOOST_AUTO_TEST_CASE(synthetic_tokenizer_json_reads_back) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    for (const int n : {266, 512, 1000}) {
      const mla::model::synthetic_vocabulary v = mla::model::synthetic_o200k_vocabulary(n);
      BOOST_TEST(v.tokens.size() + v.specials.size() == static_cast<std::size_t>(n));
      const mla::tok::tiktoken_bpe direct(v.tokens, v.specials);
      const auto t = mla::tok::tokenizer::from_hf_json(mla::model::synthetic_o200k_tokenizer_json(n), "synthetic");
      BOOST_TEST_REQUIRE(t.tiktoken() != nullptr);
      BOOST_TEST(t.vocab_size() == static_cast<std::size_t>(n));
      BOOST_TEST(*t.find("<|return|>") == n - 1);
      BOOST_TEST(*t.find("<|endoftext|>") == n - 2);
      BOOST_TEST((t.type(n - 1) == mla::tok::token_type::control));
      BOOST_TEST((t.type(0) == mla::tok::token_type::normal));
      for (int k = 0; k < 50; ++k) {
        const std::string text = harmony_text(gen);
        BOOST_TEST_CONTEXT("text '" << text << "'") {
          const auto ids = t.encode(text);
          BOOST_TEST(ids == direct.encode(text), boost::test_tools::per_element());
          BOOST_TEST(t.decode(ids) == text);
          for (const auto id : ids) BOOST_TEST_REQUIRE((id >= 0 && id < n));
          mla::tok::encode_options ordinary;
          ordinary.parse_special = false;
          BOOST_TEST(t.encode(text, ordinary) == direct.encode_ordinary(text), boost::test_tools::per_element());
        }
      }
      if (n >= 512) {  // the corpus is rich enough to merge common words
        BOOST_TEST(t.encode(" the").size() == 1u);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(harmony_template) {
  const std::string h = mla::tok::render_harmony({{"system", "Be brief."}, {"user", "Hi"}});
  BOOST_TEST(h.rfind("<|start|>system<|message|>You are ChatGPT", 0) == 0u);
  BOOST_TEST(h.find("<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>") != std::string::npos);
  const std::string tail = "<|start|>user<|message|>Hi<|end|><|start|>assistant";
  BOOST_TEST(h.substr(h.size() - tail.size()) == tail);
  mla::tok::harmony_options o;
  o.add_generation_prompt = false;
  BOOST_TEST(mla::tok::render_harmony({}, o).find("<|start|>assistant") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(tiny_checkpoint_generates_and_scores) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::temp_dir dir("mla-gpt-oss-tok-tiny");
    const mla::model::gpt_oss_shape s = mla::model::gpt_oss_shape::tiny();
    mla::model::write_gpt_oss_checkpoint(dir.path(), s, seed, 1 << 20);
    BOOST_TEST_REQUIRE(fs::exists(dir.file("tokenizer.json")));
    const mla::model::loaded_model m = mla::model::load_model(dir.path());
    BOOST_TEST_REQUIRE(m.has_tokenizer, m.tokenizer_note);
    BOOST_TEST_REQUIRE(m.tokenizer.tiktoken() != nullptr);
    BOOST_TEST(*m.tokenizer.find("<|return|>") == m.model.config().eos_id);

    // mla-generate's path: harmony prompt, prefill, greedy decode.
    const auto ids32 = m.tokenizer.encode(mla::tok::render_harmony({{"user", "What is the capital of France?"}}));
    BOOST_TEST(ids32.front() == *m.tokenizer.find("<|start|>"));
    BOOST_TEST(ids32.back() != *m.tokenizer.find("<|end|>"));  // ends with "<|start|>assistant"
    std::vector<int> ids(ids32.begin(), ids32.end());
    auto session = m.model.new_session();
    const mla::ref::matrix<float> first = m.model.forward(session, ids);
    BOOST_TEST(first.allFinite());
    Eigen::Index next = 0;
    first.row(first.rows() - 1).maxCoeff(&next);
    std::vector<std::int32_t> out;
    for (int step = 0; step < 6; ++step) {
      out.push_back(static_cast<std::int32_t>(next));
      const mla::ref::row_vector<float> logits = m.model.decode(session, static_cast<int>(next));
      BOOST_TEST_REQUIRE(logits.allFinite());
      logits.maxCoeff(&next);
    }
    BOOST_TEST_MESSAGE("tiny gpt-oss says: '" << m.tokenizer.decode(out) << "'");

    // mla-eval's path: perplexity of a short text.
    const std::string text =
        "The capital of France is Paris. Attention layers compare every token with the tokens before it, "
        "and the key value cache keeps what they need. Hello, world! 1234 numbers.";
    const auto t32 = m.tokenizer.encode(text);
    BOOST_TEST(m.tokenizer.decode(t32) == text);
    const std::vector<int> tokens(t32.begin(), t32.end());
    mla::eval::perplexity_options opt;
    opt.context = 16;  // a few windows, each longer than the sliding window of 8
    const mla::eval::perplexity_result r = mla::eval::perplexity(m.model, tokens, opt);
    BOOST_TEST(r.windows >= 2);
    BOOST_TEST(std::isfinite(r.perplexity));
    BOOST_TEST(r.perplexity > 1.0);
    BOOST_TEST_MESSAGE("tiny gpt-oss perplexity " << r.perplexity << " over " << r.tokens_scored << " tokens");
  }
}

BOOST_AUTO_TEST_CASE(o200k_json_errors_name_the_field) {
  using json = nlohmann::json;
  const json good = json::parse(mla::model::synthetic_o200k_tokenizer_json(300));
  auto read = [](const json& j) { return [j] { mla::tok::tokenizer::from_hf_json(j.dump(), "tok.json"); }; };
  BOOST_TEST(mla::tok::tokenizer::from_hf_json(good.dump(), "tok.json").vocab_size() == 300u);
  {
    json j = good;
    j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
    mla::test::expect_error(read(j), {"tok.json", "pre_tokenizer.pretokenizers[0]", "Isolated"});
  }
  {
    json j = good;
    j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true;
    mla::test::expect_error(read(j), {"tok.json", "pre_tokenizer.pretokenizers[1]", "use_regex false"});
  }
  {
    json j = good;
    j["normalizer"] = json{{"type", "NFC"}};
    mla::test::expect_error(read(j), {"tok.json", "normalizer"});
  }
  {
    json j = good;
    j["model"]["vocab"]["Ġzzz"] = 3;  // id of another token
    mla::test::expect_error(read(j), {"tok.json", "model.vocab['Ġzzz']", "id 3 appears twice"});
  }
  {
    json j = good;
    j["model"]["vocab"]["x"] = -4;
    mla::test::expect_error(read(j), {"tok.json", "model.vocab['x']", "token id"});
  }
  {
    json j = good;
    auto& merges = j["model"]["merges"];
    BOOST_TEST_REQUIRE(merges.size() >= 2u);
    merges[0] = json::array({"q", "z"});  // "qz" is not a token
    mla::test::expect_error(read(j), {"tok.json", "model.merges[0]", "not a merge"});
  }
  {
    json j = good;
    j["added_tokens"][0]["id"] = 5;  // the id of an ordinary token with other bytes
    mla::test::expect_error(read(j), {"tok.json", "added_tokens[0]", "id 5"});
  }
  {
    json j = good;
    j["added_tokens"][0]["lstrip"] = true;
    mla::test::expect_error(read(j), {"tok.json", "added_tokens[0].lstrip"});
  }
  {
    json j = good;
    j["model"]["byte_fallback"] = true;
    mla::test::expect_error(read(j), {"tok.json", "model.byte_fallback"});
  }
  {
    json j = good;  // a byte missing from the vocabulary
    j["model"]["vocab"].erase("!");
    mla::test::expect_error(read(j), {"tok.json", "byte 33 is not a token"});
  }
}

// The library reads no environment: the caller names the locations, searched in this order.
BOOST_AUTO_TEST_CASE(o200k_vocabulary_path_takes_the_first_existing_location) {
  const mla::test::temp_dir d("mla-o200k-where");
  const std::string cache = d.file("cache"), vocab = d.file("given.vocab"), tiktoken = d.file("given.tiktoken");
  const std::string cached_vocab = cache + "/whl/quicktok/data/o200k.vocab";
  const std::string cached_tiktoken = cache + "/o200k_base.tiktoken";
  fs::create_directories(cache + "/whl/quicktok/data");
  for (const std::string& f : {vocab, tiktoken, cached_vocab, cached_tiktoken}) std::ofstream(f) << "x";
  const mla::model::o200k_locations where{vocab, tiktoken, cache};
  BOOST_TEST(mla::model::o200k_vocabulary_path(where) == vocab);
  fs::remove(vocab);
  BOOST_TEST(mla::model::o200k_vocabulary_path(where) == cached_vocab);
  fs::remove(cached_vocab);
  BOOST_TEST(mla::model::o200k_vocabulary_path(where) == tiktoken);
  fs::remove(tiktoken);
  BOOST_TEST(mla::model::o200k_vocabulary_path(where) == cached_tiktoken);
  BOOST_TEST(mla::model::o200k_vocabulary_path({"", "", ""}).empty());
  fs::remove(cached_tiktoken);
  BOOST_TEST(mla::model::o200k_vocabulary_path(where).empty());
}

// The real o200k vocabulary (as the tools find it: MLA_O200K_VOCAB or scripts/fetch_o200k.sh's cache); skipped without
// it.
struct has_o200k_vocabulary {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    return mla::test::skip_unless(!mla::test::o200k_vocabulary_from_environment().empty(),
                                  "no o200k vocabulary (scripts/fetch_o200k.sh or MLA_O200K_VOCAB)");
  }
};

BOOST_AUTO_TEST_CASE(real_o200k_through_tokenizer_json,
                     *boost::unit_test::label("model") * boost::unit_test::precondition(has_o200k_vocabulary{})) {
  const std::string vocab = mla::test::o200k_vocabulary_from_environment();
  const mla::tok::tiktoken_bpe real = mla::tok::load_o200k_harmony(vocab);
  // The tokenizer.json form of the real vocabulary (without a merge list) reads back to the same ids.
  std::vector<mla::tok::special_token> specials = mla::tok::o200k_harmony_special_tokens();
  const auto t = mla::tok::tokenizer::from_hf_json(mla::tok::o200k_hf_json(real.tokens(), {}, specials), "o200k.json");
  BOOST_TEST(t.vocab_size() == 201088u);
  const nlohmann::json golden = mla::test::read_json(MLA_O200K_GOLDEN);
  for (const auto& c : golden["texts"])
    BOOST_TEST(t.encode(c["text"].get<std::string>()) == c["ids"].get<std::vector<std::int32_t>>(),
               boost::test_tools::per_element());
}

// A gpt-oss directory with the full vocabulary and no tokenizer.json: the fallback finds the vocabulary.
// (About a minute in Release: two 201088-row matrices are written and read; CTest label `slow`.)
BOOST_AUTO_TEST_CASE(real_o200k_fallback_checkpoint,
                     *boost::unit_test::label("model") * boost::unit_test::precondition(has_o200k_vocabulary{}) *
                         boost::unit_test::precondition(mla::test::not_slow_skipped{})) {
  const std::string vocab = mla::test::o200k_vocabulary_from_environment();
  const mla::tok::tiktoken_bpe real = mla::tok::load_o200k_harmony(vocab);
  const mla::test::temp_dir dir("mla-gpt-oss-tok-o200k");
  mla::model::gpt_oss_shape s = mla::model::gpt_oss_shape::tiny();
  s.n_layers = 2;
  s.vocab_size = 201088;
  mla::model::write_gpt_oss_checkpoint(dir.path(), s, 1, 1 << 30);
  BOOST_TEST_REQUIRE(!fs::exists(dir.file("tokenizer.json")));
  const mla::model::loaded_model m = mla::model::load_model(dir.path(), vocab);
  BOOST_TEST_REQUIRE(m.has_tokenizer, m.tokenizer_note);
  BOOST_TEST(m.tokenizer.encode("<|start|>user<|message|>Hello, world!<|end|>") ==
                 real.encode("<|start|>user<|message|>Hello, world!<|end|>"),
             boost::test_tools::per_element());
  BOOST_TEST(*m.tokenizer.find("<|return|>") == m.model.config().eos_id);

  // A smaller model without tokenizer.json: no tokenizer, and the note says why.
  const mla::test::temp_dir small("mla-gpt-oss-tok-small");
  mla::model::write_gpt_oss_checkpoint(small.path(), mla::model::gpt_oss_shape::tiny(), 1, 1 << 30);
  fs::remove(small.file("tokenizer.json"));
  const mla::model::loaded_model m2 = mla::model::load_model(small.path(), vocab);
  BOOST_TEST(!m2.has_tokenizer);
  BOOST_TEST(m2.tokenizer_note.find("201088") != std::string::npos, m2.tokenizer_note);
}

BOOST_AUTO_TEST_SUITE_END()
