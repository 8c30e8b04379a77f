// resume_conversion: a conversion saved as a checkpoint and taken up again is the same conversion (the
// end-to-end stage run on it returns the weights it returns on the in-memory conversion, bit for bit), and a
// checkpoint of another model is refused with the tensor that gives it away.
#include "mla/convert/resume.hpp"

#include <boost/test/unit_test.hpp>
#include <random>
#include <string>
#include <vector>

#include "convert_test_support.hpp"
#include "expect_error.hpp"
#include "files.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/distill_model.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/model/load.hpp"
#include "mla/model/save_checkpoint.hpp"

namespace {

using mla::convert::model_conversion;
using mla::ref::matrix;
using mla::test::message_has;

// Two layers (head_dim 16, 4/2 heads, biases, an untied lm_head), converted with weight SVD at rank 12, d_R 8:
// both layers, or only `layers`.
struct source_case {
  mla::model::model_config cfg;
  mla::model::model_weights<float> w;
  std::vector<std::vector<int>> windows;

  explicit source_case(std::mt19937_64& gen) {
    mla::test::layer_spec spec;
    spec.biases = true;
    mla::test::random_model(gen, 2, spec, cfg, w);
    cfg.attention_bias = true;
    cfg.tied_embeddings = false;
    w.lm_head = mla::test::randn<float>(gen, cfg.vocab_size, cfg.hidden, 0.3);
    windows = mla::test::random_windows(gen, cfg.vocab_size, 6, 32);
  }

  model_conversion<float> convert(std::vector<int> layers = {}) const {
    const mla::model::decoder<float> dec(cfg, w);
    mla::convert::pipeline_options o;
    o.layer.rope = {mla::convert::rope_strategy::rorope, 8, 0};
    o.layer.factor.method = mla::convert::factor_method::weight_svd;
    o.layer.rank = 12;
    o.require_supported_shape = false;
    o.layers = std::move(layers);
    return mla::convert::convert_model(cfg, w, mla::convert::calibrate(dec, windows), o);
  }

  // The source model's normalised attention inputs on two fresh windows ([n_layers][2]).
  std::vector<std::vector<matrix<float>>> heldout(std::mt19937_64& gen) const {
    mla::convert::input_recorder<float> rec(cfg.n_layers);
    mla::convert::run_windows(mla::model::decoder<float>(cfg, w), mla::test::random_windows(gen, cfg.vocab_size, 2, 24),
                              rec);
    return rec.take();
  }
};

bool same_layer(const mla::ref::mla_layer<float>& a, const mla::ref::mla_layer<float>& b) {
  return a.latent_rank == b.latent_rank && a.rope_dim == b.rope_dim && a.wq == b.wq && a.w_dkv == b.w_dkv &&
         a.w_kr == b.w_kr && a.w_uk == b.w_uk && a.w_uv == b.w_uv && a.wo == b.wo && a.bq == b.bq &&
         a.b_dkv == b.b_dkv && a.b_kr == b.b_kr && a.bo == b.bo;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(convert_resume)

// Saved, loaded back and resumed: the layers, ranks and report row are the conversion's, and the end-to-end
// stage continues from it exactly as it would have from the conversion in memory.
BOOST_AUTO_TEST_CASE(checkpoint_resumes_the_conversion) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const source_case src(gen);
    model_conversion<float> conv = src.convert();
    const auto held = src.heldout(gen);
    const mla::test::temp_dir tmp("mla-resume-test");
    mla::model::save_checkpoint(tmp.file("ckpt"), conv.config, conv.weights);
    const mla::model::loaded_model back = mla::model::load_model(tmp.file("ckpt"));

    model_conversion<float> resumed =
        mla::convert::resume_conversion(src.cfg, src.w, back.model.config(), back.model.weights(), &held);
    BOOST_TEST(resumed.ranks == conv.ranks, boost::test_tools::per_element());
    BOOST_TEST_REQUIRE(resumed.report.size() == 1u);
    BOOST_TEST(resumed.report[0].stage == "checkpoint");
    for (std::size_t l = 0; l < 2; ++l) {
      BOOST_TEST(same_layer(resumed.weights.layers[l].mla, conv.weights.layers[l].mla), "layer " << l);
      const double e = mla::convert::attention_output_error(src.w.layers[l].gqa, conv.weights.layers[l].mla, held[l]);
      BOOST_TEST(e > 1e-3);  // a lossy conversion: the row measures something
      BOOST_TEST(resumed.report[0].per_layer[l] == e);
    }

    const mla::model::decoder<float> teacher(src.cfg, src.w);
    mla::convert::distill_options o;
    o.steps = 6;
    o.learning_rate = 5e-3;
    o.validate_every = 3;
    mla::convert::distill_report a, b;
    mla::convert::distill_model(teacher, conv, src.windows, o, &a);
    mla::convert::distill_model(teacher, resumed, src.windows, o, &b);
    BOOST_TEST(a.heldout_before == b.heldout_before);
    BOOST_TEST(a.heldout_after == b.heldout_after);
    BOOST_TEST(a.best_step == b.best_step);
    for (std::size_t l = 0; l < 2; ++l)
      BOOST_TEST(same_layer(resumed.weights.layers[l].mla, conv.weights.layers[l].mla), "layer " << l);
  }
}

// A checkpoint of another model, or one whose frozen tensors moved, is refused naming the tensor; bf16
// rounding of them is accepted, and layers left GQA stay GQA with rank 0.
BOOST_AUTO_TEST_CASE(checkpoint_of_another_model_is_refused) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const source_case src(gen), other(gen);
    const model_conversion<float> conv = src.convert({1});  // layer 0 left GQA
    auto resume = [&](const mla::model::model_config& cfg, const mla::model::model_weights<float>& w) {
      return mla::convert::resume_conversion(src.cfg, src.w, cfg, w);
    };
    const auto ok = resume(conv.config, conv.weights);
    BOOST_TEST(ok.ranks[0] == 0);
    BOOST_TEST(ok.ranks[1] == 12);

    // bf16 rounding of a frozen tensor (relative error ~ 2^-9) passes.
    auto rounded = conv.weights;
    rounded.layers[1].mlp.w_up = rounded.layers[1].mlp.w_up.unaryExpr([](float x) { return x * (1.0f + 0.002f); });
    BOOST_CHECK_NO_THROW(resume(conv.config, rounded));

    const model_conversion<float> foreign = other.convert({1});
    BOOST_CHECK_EXCEPTION(resume(foreign.config, foreign.weights), mla::error, [](const mla::error& e) {
      return message_has(e, {"embed", "not converted from this model"});
    });
    auto moved = conv.weights;
    moved.layers[1].mlp.w_up *= 1.1f;
    BOOST_CHECK_EXCEPTION(resume(conv.config, moved), mla::error,
                          [](const mla::error& e) { return message_has(e, {"layer 1 mlp.w_up"}); });
    moved = conv.weights;
    moved.layers[0].gqa.wq += 0.5f * matrix<float>::Ones(moved.layers[0].gqa.wq.rows(), moved.layers[0].gqa.wq.cols());
    BOOST_CHECK_EXCEPTION(resume(conv.config, moved), mla::error,
                          [](const mla::error& e) { return message_has(e, {"layer 0 wq (left GQA)"}); });
    auto tied = conv.weights;  // the source's lm_head is its own; a checkpoint that ties it is another model
    tied.lm_head.resize(0, 0);
    BOOST_CHECK_EXCEPTION(resume(conv.config, tied), mla::error, [](const mla::error& e) {
      return message_has(e, {"has its own lm_head and the checkpoint ties it"});
    });
    auto fewer = conv.config;
    fewer.n_layers = 1;
    fewer.layers.resize(1);
    auto fewer_w = conv.weights;
    fewer_w.layers.resize(1);
    BOOST_CHECK_EXCEPTION(resume(fewer, fewer_w), mla::error, [](const mla::error& e) {
      return message_has(e, {"n_layers is 1", "source model's is 2"});
    });
    const std::vector<std::vector<matrix<float>>> one_layer(1);  // held-out inputs of 1 layer for 2
    BOOST_CHECK_THROW(mla::convert::resume_conversion(src.cfg, src.w, conv.config, conv.weights, &one_layer),
                      mla::error);
  }
}

BOOST_AUTO_TEST_SUITE_END()
