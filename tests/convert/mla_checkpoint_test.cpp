// The project's MLA checkpoint format: a converted random model (mixed MLA and GQA layers, biases, explicit RoPE
// frequencies) saved with save_checkpoint and read back with load_model(dir) gives bit-identical logits to the
// in-memory model, its absorbed decode matches the naive prefill of the in-memory model, and bad inputs give
// errors naming the field without leaving partial output.
// It tests a model/ header but lives in tests/convert: its input is a model converted by convert::convert_model.
#include "mla/model/save_checkpoint.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert_test_support.hpp"
#include "expect_error.hpp"
#include "files.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/model/load.hpp"

namespace {

namespace fs = std::filesystem;
using mla::convert::rope_strategy;
using mla::ref::matrix;
using mla::ref::relative_error;
using mla::test::message_has;
using mla::test::read_file;

struct converted {
  mla::model::model_config cfg;
  mla::model::model_weights<float> w;
};

// 3 layers (head_dim 16, 4/2 heads, biases); layers 0 and 2 converted with `strategy`, layer 1 left GQA.
converted make_converted(std::mt19937_64& gen, rope_strategy strategy) {
  mla::test::layer_spec spec;
  spec.biases = true;
  mla::model::model_config cfg;
  mla::model::model_weights<float> w;
  mla::test::random_model(gen, 3, spec, cfg, w);
  cfg.attention_bias = true;
  cfg.tied_embeddings = false;
  w.lm_head = mla::test::randn<float>(gen, cfg.vocab_size, cfg.hidden, 1.0);
  cfg.bos_id = 1, cfg.eos_id = 2;
  const mla::model::decoder<float> dec(cfg, w);
  const auto stats = mla::convert::calibrate(dec, mla::test::random_windows(gen, cfg.vocab_size, 4, 40));
  mla::convert::pipeline_options o;
  o.layer.rope = {strategy, 8, 0};
  o.layer.rank = 12;
  o.require_supported_shape = false;
  o.layers = {0, 2};
  auto conv = mla::convert::convert_model(cfg, w, stats, o);
  return {conv.config, conv.weights};
}

BOOST_AUTO_TEST_SUITE(model_save_checkpoint_mla)

BOOST_AUTO_TEST_CASE(round_trip_gives_identical_logits) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const mla::test::temp_dir tmp("mla-ckpt-test");
    int case_no = 0;
    for (const rope_strategy strategy : {rope_strategy::rorope, rope_strategy::two_norm}) {
      const converted m = make_converted(gen, strategy);
      const fs::path out = tmp.file("ckpt" + std::to_string(case_no++));
      mla::model::save_checkpoint(out.string(), m.cfg, m.w, {{"tokenizer_config.json", "{}\n"}});
      BOOST_TEST(fs::exists(out / "config.json"));
      BOOST_TEST(fs::exists(out / "model.safetensors"));
      BOOST_TEST(fs::exists(out / "tokenizer_config.json"));

      const mla::model::loaded_model back = mla::model::load_model(out.string());
      const auto& c = back.model.config();
      BOOST_TEST((back.model.mla_form() == mla::ref::mla_form::absorbed));
      for (int l = 0; l < 3; ++l) {
        const auto& want = m.cfg.layers[static_cast<std::size_t>(l)];
        const auto& got = c.layers[static_cast<std::size_t>(l)];
        BOOST_TEST(static_cast<int>(got.attention) == static_cast<int>(want.attention), "layer " << l);
        BOOST_TEST(got.latent_rank == want.latent_rank);
        BOOST_TEST(got.rope_dim == want.rope_dim);
        if (want.attention == mla::model::attention_kind::mla) {
          const auto& f_want = m.w.layers[static_cast<std::size_t>(l)].mla.rope.inv_freq_override;
          BOOST_TEST(back.model.weights().layers[static_cast<std::size_t>(l)].mla.rope.inv_freq_override == f_want);
        }
      }
      BOOST_TEST(c.bos_id == 1);
      BOOST_TEST(c.eos_id == 2);

      std::vector<int> tokens;
      for (int t = 0; t < 37; ++t) tokens.push_back(static_cast<int>(gen() % static_cast<unsigned>(m.cfg.vocab_size)));
      const mla::model::decoder<float> ref_absorbed(m.cfg, m.w);
      const matrix<float> want = ref_absorbed.forward(tokens);
      const matrix<float> got = back.model.forward(tokens);
      BOOST_TEST((got - want).cwiseAbs().maxCoeff() == 0.0f, "F32 checkpoint logits differ");

      // Absorbed decode of the loaded model vs the naive prefill of the in-memory one.
      const mla::model::decoder<float> ref_naive(m.cfg, m.w, mla::ref::mla_form::naive);
      const matrix<float> naive = ref_naive.forward(tokens);
      auto s = back.model.new_session();
      matrix<float> stepped(naive.rows(), naive.cols());
      for (std::size_t t = 0; t < tokens.size(); ++t)
        stepped.row(static_cast<Eigen::Index>(t)) = back.model.decode(s, tokens[t]);
      BOOST_TEST(relative_error(stepped, naive) <= 1e-5);
      // The caches really are latent: (r + d_R) per MLA layer, 2 * g * d for the GQA layer, per token.
      const long per_token = (12 + 8) * 2 + 2 * 2 * 16;
      BOOST_TEST(s.kv_bytes() == std::size_t(per_token) * tokens.size() * sizeof(float));
    }
  }
}

BOOST_AUTO_TEST_CASE(existing_output_and_failed_writes_leave_nothing_partial) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const mla::test::temp_dir tmp("mla-ckpt-test");
    const converted m = make_converted(gen, rope_strategy::rorope);
    const fs::path out = tmp.file("ckpt");
    mla::model::save_checkpoint(out.string(), m.cfg, m.w);
    const std::string before = read_file(out / "model.safetensors");
    BOOST_CHECK_EXCEPTION(mla::model::save_checkpoint(out.string(), m.cfg, m.w), mla::error,
                          [](const mla::error& e) { return message_has(e, {"already exists"}); });
    BOOST_TEST((read_file(out / "model.safetensors") == before));

    // A failure after the weights were written (a bad extra file name): no output, no temporary directory.
    const fs::path out2 = tmp.file("ckpt2");
    BOOST_CHECK_EXCEPTION(mla::model::save_checkpoint(out2.string(), m.cfg, m.w, {{"../escape.json", "{}"}}),
                          mla::error, [](const mla::error& e) { return message_has(e, {"../escape.json"}); });
    BOOST_TEST(!fs::exists(out2));
    int entries = 0;
    for (const auto& e : fs::directory_iterator(tmp.path())) entries += e.path().filename() != "ckpt";
    BOOST_TEST(entries == 0, "leftover entries next to the checkpoint");
  }
}

BOOST_AUTO_TEST_CASE(bad_mla_fields_name_the_field) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const mla::test::temp_dir tmp("mla-ckpt-test");
    const converted m = make_converted(gen, rope_strategy::rorope);
    const fs::path out = tmp.file("ckpt");
    mla::model::save_checkpoint(out.string(), m.cfg, m.w);
    const nlohmann::json good = nlohmann::json::parse(read_file(out / "config.json"));
    auto with_config = [&](const nlohmann::json& j) {
      std::ofstream(out / "config.json", std::ios::trunc) << j.dump(2);
    };
    nlohmann::json j = good;
    j["mla"]["layers"][0].erase("kv_lora_rank");
    with_config(j);
    BOOST_CHECK_EXCEPTION(mla::model::load_model(out.string()), mla::error,
                          [](const mla::error& e) { return message_has(e, {"\"kv_lora_rank\" is missing"}); });
    j = good;
    j["mla"]["layers"][2]["kv_lora_rank"] = 16;  // the tensors are rank 12
    with_config(j);
    BOOST_CHECK_EXCEPTION(mla::model::load_model(out.string()), mla::error, [](const mla::error& e) {
      return message_has(e, {"model.layers.2.self_attn.kv_a_proj.weight"});
    });
    j = good;
    j["mla"]["layers"][1]["attention"] = "mha";
    with_config(j);
    BOOST_CHECK_EXCEPTION(mla::model::load_model(out.string()), mla::error,
                          [](const mla::error& e) { return message_has(e, {"mla.layers[1]"}); });
    j = good;
    j["mla"]["layers"].erase(1);
    with_config(j);
    BOOST_CHECK_EXCEPTION(mla::model::load_model(out.string()), mla::error,
                          [](const mla::error& e) { return message_has(e, {"\"layers\" must be a list of"}); });
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
