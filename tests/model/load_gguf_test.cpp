#include "mla/model/load_gguf.hpp"

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../io/io_test_support.hpp"
#include "expect_error.hpp"
#include "files.hpp"
#include "json_file.hpp"
#include "model_test_support.hpp"

namespace {
// One loaded model for the whole suite (dequantising 135M parameters takes a few seconds).
const mla::model::decoder<float>& smollm2() {
  static const mla::model::decoder<float> model = mla::model::load_gguf(mla::test::smollm2_gguf_path());
  return model;
}

// tests/model/data/smollm2_llama_cpp_logits.json (tools/llama_cpp_reference.py).
nlohmann::json llama_cpp_golden() { return mla::test::read_json(MLA_MODEL_GOLDEN_LOGITS); }
}  // namespace

BOOST_AUTO_TEST_SUITE(model_load_gguf)

// The real model's cases (one CTest test, skipped without the GGUF).
BOOST_AUTO_TEST_SUITE(real_model, *MLA_MODEL_TEST)

BOOST_AUTO_TEST_CASE(smollm2_config) {
  const auto& c = smollm2().config();
  BOOST_TEST(c.architecture == "llama");
  BOOST_TEST(c.n_layers == 30);
  BOOST_TEST(c.hidden == 576);
  BOOST_TEST(c.n_heads == 9);
  BOOST_TEST(c.n_kv_heads == 3);
  BOOST_TEST(c.head_dim == 64);
  BOOST_TEST(c.intermediate == 1536);
  BOOST_TEST(c.vocab_size == 49152);
  BOOST_TEST(c.rope.theta == 100000.0);
  BOOST_TEST(c.tied_embeddings);
  BOOST_TEST(c.kv_elements_per_token(0) == 384);
}

// Logits against llama.cpp on fixed token ids (tools/llama_cpp_reference.py produced the golden file by
// running llama.cpp on the same weights dequantised to F32, with a float32 KV cache). The tolerance
// MLA_LOGIT_TOLERANCE is an absolute bound on the reference's top-8 and 16 probe logits per position
// (logits here are of size ~10-30; measured max difference 7.9e-5).
BOOST_AUTO_TEST_CASE(logits_match_llama_cpp) {
  const nlohmann::json g = llama_cpp_golden();
  const std::vector<int> probes = g["probe_ids"].get<std::vector<int>>();
  double worst = 0;
  int positions = 0, top1_same = 0;
  for (const auto& [name, prompt] : g["prompts"].items()) {
    const std::vector<int> ids = prompt["ids"].get<std::vector<int>>();
    const mla::ref::matrix<float> logits = smollm2().forward(ids);
    for (std::size_t p = 0; p < ids.size(); ++p) {
      const auto& row = prompt["positions"][p];
      Eigen::Index top1;
      logits.row(static_cast<Eigen::Index>(p)).maxCoeff(&top1);
      ++positions;
      top1_same += static_cast<int>(top1) == row["top1"].get<int>();
      // Largest absolute difference over the reference's top-8 and probe logits.
      const auto top_ids = row["top_ids"].get<std::vector<int>>();
      const auto top_logits = row["top_logits"].get<std::vector<double>>();
      const auto probe_logits = row["probe_logits"].get<std::vector<double>>();
      double err = 0;
      for (std::size_t i = 0; i < top_ids.size(); ++i)
        err = std::max(err, std::abs(logits(Eigen::Index(p), top_ids[i]) - top_logits[i]));
      for (std::size_t i = 0; i < probes.size(); ++i)
        err = std::max(err, std::abs(logits(Eigen::Index(p), probes[i]) - probe_logits[i]));
      worst = std::max(worst, err);
      BOOST_TEST_CONTEXT(name << " position " << p) { BOOST_TEST(err < MLA_LOGIT_TOLERANCE); }
    }
  }
  BOOST_TEST_MESSAGE("max |logit - llama.cpp| = " << worst << "; top-1 equal at " << top1_same << "/" << positions);
  BOOST_TEST(top1_same == positions);
}

BOOST_AUTO_TEST_CASE(decode_matches_prefill_on_real_model) {
  const std::vector<int> ids = llama_cpp_golden()["prompts"]["chat"]["ids"].get<std::vector<int>>();
  const auto& m = smollm2();
  const mla::ref::matrix<float> full = m.forward(ids);
  auto s = m.new_session();
  m.forward(s, std::vector<int>(ids.begin(), ids.end() - 4));
  for (std::size_t t = ids.size() - 4; t < ids.size(); ++t)
    BOOST_TEST(mla::ref::relative_error(m.decode(s, ids[t]), full.row(Eigen::Index(t))) < 1e-5);
}

BOOST_AUTO_TEST_SUITE_END()

// A GGUF of another architecture is refused by name: the file, the architecture found and the one read. (The
// file has the keys a llama GGUF would have, so only the architecture can be what is refused.)
BOOST_AUTO_TEST_CASE(wrong_architecture_is_named) {
  const mla::test::temp_dir dir("mla-load-gguf");
  const std::string path = dir.file("qwen2.gguf");
  mla_test::gguf_builder g;
  g.kv_string("general.architecture", "qwen2");
  for (const char* arch : {"llama", "qwen2"}) {
    const std::string a = arch;
    g.kv<std::uint32_t>(a + ".block_count", mla_test::U32, 1);
    g.kv<std::uint32_t>(a + ".embedding_length", mla_test::U32, 8);
    g.kv<std::uint32_t>(a + ".feed_forward_length", mla_test::U32, 16);
    g.kv<std::uint32_t>(a + ".attention.head_count", mla_test::U32, 2);
    g.kv<std::uint32_t>(a + ".context_length", mla_test::U32, 32);
  }
  mla_test::write_file(path, g.build());
  mla::test::expect_error([&] { mla::model::load_gguf(path); },
                          {path, "general.architecture is 'qwen2'", "reads 'llama'"});
  // The missing file is named too.
  mla::test::expect_error([&] { mla::model::load_gguf(dir.file("absent.gguf")); }, {"absent.gguf"});
}

BOOST_AUTO_TEST_SUITE_END()
