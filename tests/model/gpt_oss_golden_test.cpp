// gpt-oss against an independent implementation: Hugging Face transformers' GptOssForCausalLM ran the
// tiny checkpoint that mla-make-gpt-oss writes for a fixed seed (tools/gpt_oss_golden.py; float32,
// eager attention, MXFP4 experts dequantised). The test regenerates that checkpoint with the C++
// generator, checks that its files hash as the ones transformers read, that the project's MXFP4
// dequantisation equals transformers' bit for bit, and that the logits match in prefill, in decode,
// and in prefill-then-decode: relative error <= 1e-4 per position, identical top-1.
//
// The checkpoint (4 layers: 0 and 2 slide over a window of 8, 1 and 3 full; learned sinks; YaRN
// factor 32 with truncate = false; 8 experts top-4) is 2.4 MB, so it is regenerated, not committed.
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "json_file.hpp"
#include "mla/model/gpt_oss_checkpoint.hpp"
#include "mla/model/load.hpp"

namespace {
namespace fs = std::filesystem;
using mla::ref::matrix;

constexpr double golden_tolerance = 1e-4;  // relative error per position, float32

// The golden checkpoint, regenerated once for the whole suite.
struct golden_model {
  nlohmann::json g = mla::test::read_json(MLA_GPT_OSS_GOLDEN);  // tools/gpt_oss_golden.py
  mla::test::temp_dir dir{"mla-gpt-oss-golden"};
  mla::model::loaded_model lm;

  golden_model() : lm(make()) {}

  mla::model::loaded_model make() {
    const std::uint64_t seed = g["seed"].get<std::uint64_t>();
    // mla-make-gpt-oss --preset tiny --seed <seed>: the tiny shape, 1 MiB shards.
    mla::model::write_gpt_oss_checkpoint(dir.path(), mla::model::gpt_oss_shape::tiny(), seed, 1 << 20);
    return mla::model::load_model(dir.path());
  }
};

const golden_model& fixture() {
  static const golden_model m;
  return m;
}

matrix<float> golden_logits(const nlohmann::json& c) { return mla::test::json_matrix(c["logits"]); }

// Per-position relative error <= golden_tolerance and identical top-1; returns the worst error.
double compare(const std::string& what, const matrix<float>& got, const matrix<float>& want,
               const std::vector<int>& top1) {
  return mla::test::compare_logits(what, got, want, top1, golden_tolerance, "transformers");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(model_gpt_oss_golden)

BOOST_AUTO_TEST_CASE(regenerated_checkpoint_is_the_one_transformers_read) {
  const golden_model& m = fixture();
  const auto& hashes = m.g["checkpoint_fnv1a64"];
  std::size_t files = 0;
  for (const auto& f : fs::directory_iterator(m.dir.path())) {
    const std::string name = f.path().filename().string();
    if (name == "tokenizer.json") continue;  // written since the golden run; transformers read ids, not text
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST_REQUIRE(hashes.contains(name));
      BOOST_TEST(mla::test::file_fnv1a64(f.path()) == hashes[name].get<std::string>());
    }
    ++files;
  }
  BOOST_TEST(files == hashes.size());
  const auto& c = m.lm.model.config();
  BOOST_TEST(c.architecture == "gpt_oss");
  BOOST_TEST(c.n_layers == 4);
  BOOST_TEST(c.layers[0].sliding_window == 8);
  BOOST_TEST(c.layers[1].sliding_window == 0);
  BOOST_TEST(c.attention_sinks);
}

// Both sides expand the same MXFP4 bytes to the same floats: transformers' experts ([E, in, out],
// laid back as [E, out, in]) hash as the project's experts loaded one at a time.
BOOST_AUTO_TEST_CASE(mxfp4_dequantisation_equals_transformers_bit_for_bit) {
  const golden_model& m = fixture();
  const auto& want = m.g["expert_weights_fnv1a64"];
  const auto& layers = m.lm.model.weights().layers;
  BOOST_TEST_REQUIRE(want.size() == layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const auto& moe = layers[l].moe;
    mla::test::fnv1a64 gate_up, down;
    for (int e = 0; e < moe.n_experts; ++e) {
      mla::ref::moe_expert<float> ex;
      moe.experts->load(e, ex);
      gate_up.add(ex.w_gate_up.data(), sizeof(float) * std::size_t(ex.w_gate_up.size()));
      down.add(ex.w_down.data(), sizeof(float) * std::size_t(ex.w_down.size()));
    }
    BOOST_TEST_CONTEXT("layer " << l) {
      BOOST_TEST(gate_up.hex() == want[l]["gate_up_proj"].get<std::string>());
      BOOST_TEST(down.hex() == want[l]["down_proj"].get<std::string>());
    }
  }
}

BOOST_AUTO_TEST_CASE(prefill_matches_transformers) {
  const golden_model& m = fixture();
  for (const auto& c : m.g["cases"]) {
    const std::vector<int> tokens = c["tokens"].get<std::vector<int>>();
    compare("prefill " + c["name"].get<std::string>(), m.lm.model.forward(tokens), golden_logits(c),
            c["top1"].get<std::vector<int>>());
  }
}

BOOST_AUTO_TEST_CASE(decode_matches_transformers) {
  const golden_model& m = fixture();
  for (const auto& c : m.g["cases"]) {
    const std::vector<int> tokens = c["tokens"].get<std::vector<int>>();
    const matrix<float> want = golden_logits(c);
    // Token by token from an empty cache.
    auto s = m.lm.model.new_session();
    matrix<float> got(want.rows(), want.cols());
    for (std::size_t t = 0; t < tokens.size(); ++t) got.row(Eigen::Index(t)) = m.lm.model.decode(s, tokens[t]);
    compare("decode " + c["name"].get<std::string>(), got, want, c["top1"].get<std::vector<int>>());
    // A prefill longer than the window, then decode: the window cache is filled by the prefill.
    const std::size_t split = tokens.size() > 12 ? 12 : tokens.size() / 2;
    auto s2 = m.lm.model.new_session();
    matrix<float> mixed(want.rows(), want.cols());
    mixed.topRows(Eigen::Index(split)) =
        m.lm.model.forward(s2, std::vector<int>(tokens.begin(), tokens.begin() + std::ptrdiff_t(split)));
    for (std::size_t t = split; t < tokens.size(); ++t) mixed.row(Eigen::Index(t)) = m.lm.model.decode(s2, tokens[t]);
    compare("prefill " + std::to_string(split) + " + decode " + c["name"].get<std::string>(), mixed, want,
            c["top1"].get<std::vector<int>>());
  }
}

// The long case is a real test of the window, the sinks and YaRN: without any of them (or with YaRN's
// correction range truncated), the model is measurably away from transformers' logits.
BOOST_AUTO_TEST_CASE(long_case_depends_on_window_sinks_and_yarn) {
  const golden_model& m = fixture();
  const nlohmann::json* longest = nullptr;
  for (const auto& c : m.g["cases"])
    if (!longest || c["tokens"].size() > (*longest)["tokens"].size()) longest = &c;
  const std::vector<int> tokens = (*longest)["tokens"].get<std::vector<int>>();
  const int window = m.lm.model.config().layers[0].sliding_window;
  BOOST_TEST_REQUIRE(static_cast<int>(tokens.size()) > 3 * window);
  const matrix<float> want = golden_logits(*longest);
  auto variant = [&](bool keep_window, bool keep_sinks) {
    mla::model::model_config c = m.lm.model.config();
    mla::model::model_weights<float> w = m.lm.model.weights();
    for (std::size_t l = 0; l < c.layers.size(); ++l) {
      if (!keep_window) c.layers[l].sliding_window = 0, w.layers[l].gqa.attention.sliding_window = 0;
      if (!keep_sinks) w.layers[l].gqa.sinks.resize(0);
    }
    if (!keep_sinks) c.attention_sinks = false;
    return mla::model::decoder<float>(c, w).forward(tokens);
  };
  // YaRN matters too: the attention factor (concentration) on cos/sin, and the fractional correction
  // range (truncate = false) rather than the floored/ceiled one older transformers versions used.
  auto rope_variant = [&](auto&& edit) {
    mla::model::model_config c = m.lm.model.config();
    mla::model::model_weights<float> w = m.lm.model.weights();
    edit(c.rope);
    for (auto& lw : w.layers) lw.gqa.rope = c.rope;
    return mla::model::decoder<float>(c, w).forward(tokens);
  };
  const double no_yarn = mla::ref::relative_error(
      rope_variant([](mla::ref::rope_config& r) { r.scaling = mla::ref::rope_scaling::none; }), want);
  const double truncated =
      mla::ref::relative_error(rope_variant([](mla::ref::rope_config& r) { r.truncate = true; }), want);
  BOOST_TEST_MESSAGE("without YaRN: " << no_yarn << "; YaRN with truncate = true: " << truncated);
  BOOST_TEST(no_yarn > 1e-2);
  BOOST_TEST(truncated > golden_tolerance);
  const Eigen::Index past = want.rows() - window;
  BOOST_TEST(mla::ref::relative_error(variant(false, true).bottomRows(past), want.bottomRows(past)) > 1e-2);
  BOOST_TEST(mla::ref::relative_error(variant(true, false), want) > 1e-2);
}

BOOST_AUTO_TEST_SUITE_END()
