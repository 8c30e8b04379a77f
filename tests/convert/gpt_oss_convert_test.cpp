// GQA -> MLA conversion of a generated gpt-oss-layout checkpoint (tiny preset: sinks, biases, YaRN, window 8
// on even layers, MXFP4 MoE): the full-attention layers are converted by default, the sliding-window layers
// stay GQA, and the MoE is untouched. The exact stage must be exact, the converted model must run (prefill and
// decode agree), and the KV bytes per token at 8K context must drop.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "convert_test_support.hpp"
#include "files.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/gpt_oss_checkpoint.hpp"
#include "mla/model/load.hpp"

namespace fs = std::filesystem;
using mla::ref::matrix;

BOOST_AUTO_TEST_SUITE(gpt_oss_conversion)

BOOST_AUTO_TEST_CASE(full_attention_layers_convert_and_run) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::model::gpt_oss_shape shape = mla::model::gpt_oss_shape::tiny();
    const mla::model::loaded_model lm = [&] {
      const mla::test::temp_dir dir("mla-gpt-oss-convert");
      mla::model::write_gpt_oss_checkpoint(dir.path(), shape, seed, 1 << 30);
      return mla::model::load_model(dir.path());
    }();
    const mla::model::decoder<float>& src = lm.model;
    const mla::model::model_config& cfg = src.config();
    std::vector<int> full;  // layers with full attention: the ones converted
    for (int l = 0; l < cfg.n_layers; ++l)
      if (cfg.layers[static_cast<std::size_t>(l)].sliding_window == 0) full.push_back(l);
    BOOST_TEST_REQUIRE(!full.empty());
    BOOST_TEST_REQUIRE(static_cast<int>(full.size()) < cfg.n_layers);

    const auto cal = mla::test::random_windows(gen, cfg.vocab_size, 4, 40);
    const auto held = mla::test::random_windows(gen, cfg.vocab_size, 2, 40);
    const mla::convert::calibration_stats stats = mla::convert::calibrate(src, cal);
    mla::convert::input_recorder<float> rc(cfg.n_layers), rh(cfg.n_layers);
    mla::convert::run_windows(src, cal, rc);
    mla::convert::run_windows(src, held, rh);
    const auto cal_inputs = rc.take(), held_inputs = rh.take();

    mla::convert::pipeline_options o;
    o.layer.rope = {mla::convert::rope_strategy::rorope, 32, 0};
    o.layer.factor.method = mla::convert::factor_method::attention_aware;
    o.layers = full;
    const int d = cfg.head_dim, g = cfg.n_kv_heads;
    o.layer.rank = (2 * g * d) / 2 - 32;  // half of each converted layer's cache
    o.require_supported_shape = false;
    o.refit = true;
    const auto conv = mla::convert::convert_model(cfg, src.weights(), stats, o, &held_inputs, &cal_inputs);
    for (int l = 0; l < cfg.n_layers; ++l) {
      const bool converted = std::find(full.begin(), full.end(), l) != full.end();
      BOOST_TEST(
          (conv.config.layers[static_cast<std::size_t>(l)].attention == mla::model::attention_kind::mla) == converted,
          "layer " << l);
      if (converted) {
        const auto li = static_cast<std::size_t>(l);
        const double cut = conv.report[1].per_layer[li], fact = conv.report[2].per_layer[li],
                     refit = conv.report[3].per_layer[li];
        BOOST_TEST(conv.report[0].per_layer[li] <= 1e-5, "exact stage, layer " << l);
        BOOST_TEST_MESSAGE("layer " << l << ": exact " << conv.report[0].per_layer[li] << ", rope_split " << cut
                                    << ", factorized " << fact << ", refit " << refit);
        // Half the cache: the factorisation costs more than the RoPE cut alone (measured 0.05 to 0.07 over it),
        // and the refit (sinks, biases, YaRN and all) is not worse on windows it never saw beyond the noise of
        // a fit on 160 tokens (measured: 0.5 % better to 0.02 % worse, seed 3774805992883568052 layer 3; its
        // validated ridge may keep the weights, so no gain is required here; pipeline_test requires one).
        BOOST_TEST(fact > cut + 0.02, "layer " << l);
        BOOST_TEST(refit <= 1.01 * fact, "layer " << l);
      }
    }
    // The converted model runs: prefill then decode equals a whole prefill; logits finite.
    const mla::model::decoder<float> dec(conv.config, conv.weights);
    const std::vector<int>& toks = held[0];
    auto s = dec.new_session();
    dec.forward(s, std::vector<int>(toks.begin(), toks.end() - 1));
    const auto last = dec.decode(s, toks.back());
    const matrix<float> all = dec.forward(toks);
    BOOST_TEST(last.allFinite());
    BOOST_TEST(mla::ref::relative_error(last, all.row(all.rows() - 1)) < 1e-4);
    // The cache as the decoder holds it equals the config's count (sliding GQA layers: their window of 8),
    // before and after conversion, on 40 tokens.
    const long n = static_cast<long>(toks.size());
    BOOST_TEST(s.kv_bytes() == std::size_t(conv.config.kv_elements_at_context(n)) * sizeof(float));
    auto ss = src.new_session();
    src.forward(ss, toks);
    BOOST_TEST(ss.kv_bytes() == std::size_t(cfg.kv_elements_at_context(n)) * sizeof(float));
    // KV elements per token of an 8K context: sliding layers cost window / 8192 of a row.
    const double before = double(cfg.kv_elements_at_context(8192)) / 8192,
                 after = double(conv.config.kv_elements_at_context(8192)) / 8192;
    BOOST_TEST_MESSAGE("KV elements per token at 8K: before " << before << ", after " << after);
    BOOST_TEST(after < 0.6 * before);
  }
}

BOOST_AUTO_TEST_SUITE_END()
