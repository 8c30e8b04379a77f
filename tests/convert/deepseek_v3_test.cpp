// DeepSeek-V3 export: a converted random model exported with save_deepseek_v3 and read back by the project's
// DeepSeek-layout reader (load_model on the directory) gives the in-memory model's logits: exactly (float
// rounding) without the latent norm, and with it equal to the in-memory model given the same constant latent norm
// on its unpadded latent (an independent path: NeoX rows, unscaled queries, no padding).
// It tests a model/ header but lives in tests/convert: its input is a model converted by convert::convert_model.
#include "mla/model/deepseek_v3.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "convert_test_support.hpp"
#include "expect_error.hpp"
#include "files.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/latent_norm.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/model/load.hpp"

namespace {

namespace fs = std::filesystem;
using mla::ref::matrix;
using mla::ref::relative_error;

// A random 2-layer Llama-family model and its calibration statistics on 4 random windows of 40 tokens.
struct calibrated_model {
  mla::model::model_config cfg;
  mla::model::model_weights<float> w;
  mla::convert::calibration_stats stats;

  calibrated_model(std::mt19937_64& gen, bool biases) {
    mla::test::layer_spec spec;
    spec.biases = biases;
    mla::test::random_model(gen, 2, spec, cfg, w);
    const mla::model::decoder<float> dec(cfg, w);
    stats = mla::convert::calibrate(dec, mla::test::random_windows(gen, cfg.vocab_size, 4, 40));
  }
};

// RoRoPE with d_R 8 and rank 12 in every converted layer (not a kernel shape).
mla::convert::pipeline_options rank_12_options() {
  mla::convert::pipeline_options o;
  o.layer.rope = {mla::convert::rope_strategy::rorope, 8, 0};
  o.require_supported_shape = false;
  o.layer.rank = 12;
  return o;
}

BOOST_AUTO_TEST_SUITE(model_deepseek_v3)

BOOST_AUTO_TEST_CASE(export_reads_back_through_the_deepseek_path) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const calibrated_model cm(gen, false);  // no biases: DeepSeek-V3 has none
    const auto& [cfg, w, stats] = cm;
    // Layer 0 at rank 12, layer 1 at rank 8 (the export pads to 12).
    mla::convert::pipeline_options o = rank_12_options();
    o.layers = {0};
    const auto half = mla::convert::convert_model(cfg, w, stats, o);
    const mla::test::temp_dir scratch("mla-ds-test");
    const fs::path tmp = scratch.path();
    BOOST_CHECK_EXCEPTION(
        mla::model::save_deepseek_v3((tmp / "gqa_left").string(), half.config, half.weights, {false, {}}), mla::error,
        [](const mla::error& e) { return mla::test::message_has(e, {"is GQA"}); });
    BOOST_TEST(!fs::exists(tmp / "gqa_left"));
    o.layer.rank = 8;
    o.layers = {1};
    const auto conv = mla::convert::convert_model(half.config, half.weights, stats, o);

    std::vector<int> tokens;
    for (int t = 0; t < 29; ++t) tokens.push_back(static_cast<int>(gen() % 97));
    const matrix<float> want = mla::model::decoder<float>(conv.config, conv.weights).forward(tokens);

    // Without the latent norm: exact up to float rounding.
    mla::model::save_deepseek_v3((tmp / "plain").string(), conv.config, conv.weights, {false, {}});
    const auto plain = mla::model::load_model((tmp / "plain").string());
    BOOST_TEST(plain.model.config().layers[1].latent_rank == 12);
    const double err_plain = relative_error(plain.model.forward(tokens), want);
    BOOST_TEST(err_plain <= 1e-5);
    // Its absorbed decode agrees with the prefill.
    auto s = plain.model.new_session();
    matrix<float> stepped(want.rows(), want.cols());
    for (std::size_t t = 0; t < tokens.size(); ++t)
      stepped.row(static_cast<Eigen::Index>(t)) = plain.model.decode(s, tokens[t]);
    BOOST_TEST(relative_error(stepped, want) <= 1e-5);

    // With the latent norm (constant weight sqrt(E||c||^2 / r_max)).
    mla::model::deepseek_export_options opt;
    const int r_max = 12;
    for (int l = 0; l < 2; ++l)
      opt.latent_rms.push_back(std::sqrt(
          mla::convert::latent_mean_square(conv.weights.layers[static_cast<std::size_t>(l)].mla,
                                           stats.layers[static_cast<std::size_t>(l)].augmented_second_moment()) /
          r_max));
    mla::model::save_deepseek_v3((tmp / "normed").string(), conv.config, conv.weights, opt);
    const auto normed = mla::model::load_model((tmp / "normed").string());
    const matrix<float> got_normed = normed.model.forward(tokens);
    mla::model::model_weights<float> wn = conv.weights;
    for (int l = 0; l < 2; ++l) {
      auto& m = wn.layers[static_cast<std::size_t>(l)].mla;
      const double scale = opt.latent_rms[static_cast<std::size_t>(l)] * std::sqrt(double(r_max) / m.latent_rank);
      m.latent_norm = mla::ref::vector<float>::Constant(m.latent_rank, static_cast<float>(scale));
      m.latent_norm_eps = 1e-6 * r_max / m.latent_rank;  // the same eps on the padded mean square
    }
    const matrix<float> want_normed = mla::model::decoder<float>(conv.config, wn).forward(tokens);
    BOOST_TEST(relative_error(got_normed, want_normed) <= 1e-5);
    const double cost = relative_error(got_normed, want);
    BOOST_TEST(std::isfinite(cost));
    BOOST_TEST_MESSAGE("DeepSeek export: logits rel. error " << err_plain << " without the latent norm, " << cost
                                                             << " with it (constant weight)");

    // Layers that carry their own latent norm (mla-convert --latent-norm) are exported with it: the export then
    // gives the in-memory model's logits (layer 1's padding changes only the norm's eps, by r_max / r).
    mla::model::model_weights<float> wo = conv.weights;
    std::uniform_real_distribution<double> u(0.5, 2.0);
    for (int l = 0; l < 2; ++l) {
      auto& m = wo.layers[static_cast<std::size_t>(l)].mla;
      m.latent_norm.resize(m.latent_rank);
      for (Eigen::Index i = 0; i < m.latent_rank; ++i) m.latent_norm[i] = static_cast<float>(u(gen));
      m.latent_norm_eps = mla::model::deepseek_latent_norm_eps;
    }
    const matrix<float> want_own = mla::model::decoder<float>(conv.config, wo).forward(tokens);
    BOOST_TEST(relative_error(want_own, want) > 1e-3);  // the norm matters, so the check below can fail
    BOOST_CHECK_EXCEPTION(mla::model::save_deepseek_v3((tmp / "dropped").string(), conv.config, wo, {false, {}}),
                          mla::error,
                          [](const mla::error& e) { return mla::test::message_has(e, {"carries a latent norm"}); });
    mla::model::save_deepseek_v3((tmp / "own").string(), conv.config, wo, {true, {}});
    const auto own = mla::model::load_model((tmp / "own").string());
    BOOST_TEST(relative_error(own.model.forward(tokens), want_own) <= 1e-5);
  }
}

// The project's MLA format carries a latent norm (kv_a_layernorm): save and load give the same logits.
BOOST_AUTO_TEST_CASE(latent_norm_survives_the_mla_format) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const calibrated_model cm(gen, true);
    mla::convert::pipeline_options o = rank_12_options();
    o.latent_norm = true;
    const auto conv = mla::convert::convert_model(cm.cfg, cm.w, cm.stats, o);
    for (const auto& lw : conv.weights.layers) BOOST_TEST(lw.mla.latent_norm.size() == 12);
    const mla::test::temp_dir scratch("mla-ds-test");
    const std::string dir = (fs::path(scratch.path()) / "ck").string();
    mla::model::save_checkpoint(dir, conv.config, conv.weights, {});
    const auto back = mla::model::load_model(dir);
    std::vector<int> tokens;
    for (int t = 0; t < 23; ++t) tokens.push_back(static_cast<int>(gen() % 97));
    const matrix<float> want = mla::model::decoder<float>(conv.config, conv.weights).forward(tokens);
    BOOST_TEST(relative_error(back.model.forward(tokens), want) <= 1e-6);
    BOOST_TEST(back.model.weights().layers[0].mla.latent_norm.size() == 12);
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
