// run_conversion: the stages run from a recipe return, bit for bit, what calling convert_model, refit_sequential,
// distill_sequential, resume_conversion and distill_model by hand on windows cut by hand returns (mla-convert's
// sequence before run.hpp), in the teacher-forced, the sequential and the resumed set-ups; the stage report is
// keyed by stage, and the progress sees every stage.
#include "mla/convert/run.hpp"

#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "convert_test_support.hpp"
#include "expect_error.hpp"
#include "files.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/distill_model.hpp"
#include "mla/convert/latent_norm.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/convert/resume.hpp"

BOOST_AUTO_TEST_SUITE(conversion_run)  // (its namespace holds the helpers: unity builds join test files)

namespace {

using mla::convert::conversion_recipe;
using mla::convert::model_conversion;
using mla::convert::stage;
using mla::convert::stage_mode;
using mla::convert::token_windows;
using inputs = std::vector<std::vector<mla::ref::matrix<float>>>;

// Two SwiGLU layers (hidden 64, 4/2 heads of 16) and a calibration stream of 400 tokens.
struct source_model {
  mla::model::model_config cfg;
  mla::model::model_weights<float> w;
  std::vector<int> tokens;
  explicit source_model(std::mt19937_64& gen) {
    mla::test::random_model(gen, 2, mla::test::layer_spec{}, cfg, w);
    tokens = mla::test::random_windows(gen, cfg.vocab_size, 1, 400).front();
  }
};

// Window 16: 6 calibration windows, 2 held out; d_R 8; two end-to-end steps.
conversion_recipe small_recipe() {
  conversion_recipe r;
  r.window = 16;
  r.calib_tokens = 96;
  r.heldout_tokens = 32;
  r.layer.rope.rope_dim = 8;
  r.any_rank = true;
  r.full_rank = true;  // (no budget: every rank kept)
  r.e2e.steps = 2;
  r.e2e.validate_every = 1;
  return r;
}

inputs record(const mla::model::decoder<float>& dec, const std::vector<std::vector<int>>& windows) {
  mla::convert::input_recorder<float> rec(dec.config().n_layers);
  mla::convert::run_windows(dec, windows, rec);
  return rec.take();
}

// What the end-to-end stage gives back, run by hand.
struct e2e_by_hand {
  mla::convert::distill_report report;
  std::vector<std::pair<int, double>> curve;
  void run(const mla::model::decoder<float>& dec, model_conversion<float>& conv,
           const std::vector<std::vector<int>>& windows, const mla::convert::distill_options& o, const inputs* held) {
    mla::convert::distill_model(
        dec, conv, windows, o, &report,
        [&](int step, int, double kl) {
          if (!std::isnan(kl)) curve.emplace_back(step, kl);
        },
        held);
  }
};

// The progress run_conversion reports: stage labels, totals and the last count of each, and the lines.
struct recorded_progress : mla::convert::conversion_progress {
  std::vector<std::string> stages, infos, notes;
  std::vector<double> totals, last;
  void begin(const std::string& s, double total, const std::string&) override {
    stages.push_back(s), totals.push_back(total), last.push_back(0);
  }
  void update(double done) override { last.back() = done; }
  void info(const std::string& line) override { infos.push_back(line); }
  void note(const std::string& line) override { notes.push_back(line); }
};

void check_same_layer(const mla::ref::mla_layer<float>& a, const mla::ref::mla_layer<float>& b, std::size_t l) {
  BOOST_TEST_CONTEXT("layer " << l) {
    BOOST_TEST(a.latent_rank == b.latent_rank);
    BOOST_TEST(a.rope_dim == b.rope_dim);
    BOOST_TEST((a.wq == b.wq));
    BOOST_TEST((a.w_dkv == b.w_dkv));
    BOOST_TEST((a.w_kr == b.w_kr));
    BOOST_TEST((a.w_uk == b.w_uk));
    BOOST_TEST((a.w_uv == b.w_uv));
    BOOST_TEST((a.wo == b.wo));
    BOOST_TEST((a.bo == b.bo));
    BOOST_TEST((a.latent_norm == b.latent_norm));
  }
}

// The run's result against the conversion by hand: weights, config, ranks, every report row and distillation
// report, the end-to-end report and curve, bit for bit.
void check_same(const mla::convert::conversion_result<float>& got, const model_conversion<float>& want,
                const e2e_by_hand& e2e) {
  const std::size_t n = want.weights.layers.size();
  BOOST_TEST_REQUIRE(got.conversion.weights.layers.size() == n);
  for (std::size_t l = 0; l < n; ++l) {
    check_same_layer(got.conversion.weights.layers[l].mla, want.weights.layers[l].mla, l);
    BOOST_TEST(got.conversion.config.layers[l].latent_rank == want.config.layers[l].latent_rank);
    BOOST_TEST((got.conversion.config.layers[l].attention == want.config.layers[l].attention));
  }
  BOOST_TEST(got.conversion.ranks == want.ranks, boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(got.report.rows.size() == want.report.size());
  for (std::size_t i = 0; i < want.report.size(); ++i) {
    BOOST_TEST(mla::convert::to_string(got.report.rows[i].id) == want.report[i].stage);
    BOOST_TEST(got.report.rows[i].per_layer == want.report[i].per_layer, boost::test_tools::per_element());
    BOOST_TEST(got.report.at(got.report.rows[i].id) == want.report[i].per_layer, boost::test_tools::per_element());
  }
  BOOST_TEST_REQUIRE(got.conversion.distill.size() == want.distill.size());
  for (std::size_t l = 0; l < want.distill.size(); ++l) {
    BOOST_TEST(got.conversion.distill[l].heldout_before == want.distill[l].heldout_before);
    BOOST_TEST(got.conversion.distill[l].heldout_after == want.distill[l].heldout_after);
    BOOST_TEST(got.conversion.distill[l].best_step == want.distill[l].best_step);
  }
  BOOST_TEST(got.e2e.heldout_before == e2e.report.heldout_before);
  BOOST_TEST(got.e2e.heldout_after == e2e.report.heldout_after);
  BOOST_TEST(got.e2e.best_step == e2e.report.best_step);
  BOOST_TEST_REQUIRE(got.e2e_curve.size() == e2e.curve.size());
  for (std::size_t i = 0; i < e2e.curve.size(); ++i) {
    BOOST_TEST(got.e2e_curve[i].first == e2e.curve[i].first);
    BOOST_TEST(got.e2e_curve[i].second == e2e.curve[i].second);
  }
}

}  // namespace

// Teacher-forced refit (its own share of the fit windows) and distillation on the same windows, a KV budget,
// the latent norm, the end-to-end stage and the export's latent RMS.
BOOST_AUTO_TEST_CASE(teacher_forced_run_is_the_stages_by_hand) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const source_model src(gen);
    const mla::model::decoder<float> dec(src.cfg, src.w);
    conversion_recipe r = small_recipe();
    r.kv_budget = 0.7;
    r.refit = true;
    r.refit_tokens = 32;
    r.distill.steps = 2;
    r.distill_tokens = 80;
    r.latent_norm = true;
    r.export_kind = "deepseek_v3";
    r.e2e_tokens = 64;
    recorded_progress progress;
    const auto got = mla::convert::run_conversion(dec, src.tokens, r, progress);

    // By hand, as mla-convert did: 6 calibration windows, 2 held out; the fit inputs max(32, 80) / 16 = 5
    // windows, the refit its first 32 / 16 = 2; the budget 0.7 of 2 x 64 elements.
    const auto stats = mla::convert::calibrate(dec, token_windows(src.tokens, 16, 0, 6));
    const inputs held = record(dec, token_windows(src.tokens, 16, 6, 2));
    const inputs fit = record(dec, token_windows(src.tokens, 16, 0, 5));
    mla::convert::pipeline_options o;
    o.layer = r.layer;
    o.kv_budget = static_cast<long>(0.7 * 128);
    o.require_supported_shape = false;
    o.layers = {0, 1};
    o.refit = true;
    o.refit_opt.max_windows = 2;
    o.distill = r.distill;
    o.latent_norm = true;
    model_conversion<float> want = mla::convert::convert_model(src.cfg, src.w, stats, o, &held, &fit, &fit);
    e2e_by_hand e2e;
    e2e.run(dec, want, token_windows(src.tokens, 16, 0, 4), r.e2e, &held);
    check_same(got, want, e2e);

    // The export's constant latent norm weight: sqrt(E||c||^2 / r_max) per layer.
    const int r_max = std::max(want.ranks[0], want.ranks[1]);
    BOOST_TEST_REQUIRE(got.latent_rms.size() == 2u);
    for (std::size_t l = 0; l < 2; ++l)
      BOOST_TEST(got.latent_rms[l] ==
                 std::sqrt(mla::convert::latent_mean_square(want.weights.layers[l].mla,
                                                            stats.layers[l].augmented_second_moment()) /
                           r_max));
    for (stage s : {stage::exact, stage::rope_split, stage::factorized, stage::refit, stage::latent_norm,
                    stage::distill, stage::e2e})
      BOOST_TEST(got.report.has(s), mla::convert::to_string(s));
    BOOST_TEST(!got.report.has(stage::refit_o));
    BOOST_TEST(got.report.at(stage::factorized)[1] > got.report.at(stage::exact)[1]);  // lossy: rows differ
    BOOST_TEST(got.heldout_tokens == 32);
    BOOST_TEST(got.layers == (std::vector<int>{0, 1}), boost::test_tools::per_element());
    BOOST_TEST(progress.stages == (std::vector<std::string>{"calibration", "held-out", "fit inputs", "placing RoPE",
                                                            "converting + distilling", "distilling end to end"}),
               boost::test_tools::per_element());
    BOOST_TEST(progress.last == progress.totals, boost::test_tools::per_element());
    BOOST_TEST(progress.notes.empty());
  }
}

// The sequential refit (implied by --refit-drift, with the o_proj refit), the sequential distillation on its own
// 8-token windows, a fixed rank, and an end-to-end stage whose tokens the stretch caps (a note).
BOOST_AUTO_TEST_CASE(sequential_run_is_the_stages_by_hand) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const source_model src(gen);
    const mla::model::decoder<float> dec(src.cfg, src.w);
    conversion_recipe r = small_recipe();
    r.layer.factor.method = mla::convert::factor_method::activation_pca;
    r.layer.rank = 20;
    r.refit_tokens = 48;
    r.refit_opt.drift_weight = 0.5;
    r.distill.steps = 2;
    r.distill_mode = stage_mode::sequential;
    r.distill_window = 8;
    r.distill_tokens = 64;
    r.e2e_tokens = 200;
    recorded_progress progress;
    const auto got = mla::convert::run_conversion(dec, src.tokens, r, progress);

    // By hand: the fit inputs 48 / 16 = 3 windows (the distillation has its own: 64 / 8 = 8 windows of 8); the
    // conversion without its refit and distillation, then both in layer order; 96 / 16 = 6 end-to-end windows.
    const auto stats = mla::convert::calibrate(dec, token_windows(src.tokens, 16, 0, 6));
    const inputs held = record(dec, token_windows(src.tokens, 16, 6, 2));
    const auto fit_windows = token_windows(src.tokens, 16, 0, 3), distill_windows = token_windows(src.tokens, 8, 0, 8);
    const inputs fit = record(dec, fit_windows), distill_inputs = record(dec, distill_windows);
    mla::convert::pipeline_options o;
    o.layer = r.layer;
    o.require_supported_shape = false;
    o.layers = {0, 1};
    o.refit_opt.output_projection = true;
    o.refit_opt.drift_weight = 0.5;
    o.distill = r.distill;
    mla::convert::pipeline_options first = o;
    first.distill.steps = 0;  // distilled below, in layer order (the refit too: first.refit is off)
    model_conversion<float> want =
        mla::convert::convert_model(src.cfg, src.w, stats, first, &held, &fit, &distill_inputs);
    mla::convert::refit_sequential(src.w, want, fit_windows, fit, o.refit_opt, &held);
    mla::convert::distill_sequential(src.w, want, distill_windows, distill_inputs, o.distill, &held);
    e2e_by_hand e2e;
    e2e.run(dec, want, token_windows(src.tokens, 16, 0, 6), r.e2e, &held);
    check_same(got, want, e2e);

    BOOST_TEST(got.latent_rms.empty());
    BOOST_TEST(got.report.has(stage::refit_o));
    BOOST_TEST(!got.report.has(stage::latent_norm));
    BOOST_TEST(
        progress.stages == (std::vector<std::string>{"calibration", "held-out", "fit inputs", "distillation inputs",
                                                     "placing RoPE", "converting", "refitting (sequential)",
                                                     "distilling (sequential)", "distilling end to end"}),
        boost::test_tools::per_element());
    BOOST_TEST(progress.last == progress.totals, boost::test_tools::per_element());
    BOOST_TEST(progress.notes == (std::vector<std::string>{"--e2e-tokens 200 is more than the 96 calibration tokens "
                                                           "(--calib-tokens); the end-to-end distillation uses 96"}),
               boost::test_tools::per_element());
    BOOST_TEST_REQUIRE(progress.infos.size() == 1u);
    BOOST_TEST(progress.infos[0] == "converting 2 layers (activation_pca, rorope d_R = 8, uniform)");
  }
}

// Resumed from a conversion: resume_conversion, then the end-to-end stage; no calibration walk, no fit inputs.
BOOST_AUTO_TEST_CASE(resumed_run_is_the_stages_by_hand) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const source_model src(gen);
    const mla::model::decoder<float> dec(src.cfg, src.w);
    conversion_recipe first = small_recipe();
    first.layer.rank = 16;
    first.e2e.steps = 0;
    const model_conversion<float> converted = mla::convert::run_conversion(dec, src.tokens, first).conversion;

    conversion_recipe r = small_recipe();
    r.from_dir = "ckpt";
    r.layer.rope.rope_dim = conversion_recipe{}.layer.rope.rope_dim;  // --from takes the checkpoint's
    r.any_rank = false;
    r.e2e_tokens = 64;
    recorded_progress progress;
    const auto got = mla::convert::run_conversion(
        dec, src.tokens, r, progress, mla::convert::conversion_start<float>{converted.config, converted.weights});

    const inputs held = record(dec, token_windows(src.tokens, 16, 6, 2));
    model_conversion<float> want =
        mla::convert::resume_conversion(src.cfg, src.w, converted.config, converted.weights, &held);
    e2e_by_hand e2e;
    e2e.run(dec, want, token_windows(src.tokens, 16, 0, 4), r.e2e, &held);
    check_same(got, want, e2e);
    BOOST_TEST((got.report.rows.front().id == stage::checkpoint));
    BOOST_TEST(progress.stages == (std::vector<std::string>{"held-out", "distilling end to end"}),
               boost::test_tools::per_element());
    BOOST_TEST(progress.infos == (std::vector<std::string>{"resuming from ckpt (2 MLA layers)"}),
               boost::test_tools::per_element());
  }
}

// A recipe the model cannot take is refused before any stage runs, and an unknown report row is named.
BOOST_AUTO_TEST_CASE(refusals) {
  std::mt19937_64 gen(mla::test::test_seed());
  const source_model src(gen);
  const mla::model::decoder<float> dec(src.cfg, src.w);
  conversion_recipe r = small_recipe();
  r.e2e.train_sinks = true;  // a Llama-shaped model has no sinks
  recorded_progress progress;
  mla::test::expect_error([&] { mla::convert::run_conversion(dec, src.tokens, r, progress); },
                          {"--e2e-train-sinks", "has no attention sinks"});
  BOOST_TEST(progress.stages.empty());
  r = small_recipe();
  mla::test::expect_error([&] { mla::convert::run_conversion(dec, std::vector<int>(100, 1), r); },
                          {"--calib: '' has 100 tokens, fewer than --calib-tokens + --heldout-tokens = 128"});
  mla::test::expect_error([] { mla::convert::stage_from_string("refit_x"); }, {"unknown stage report row 'refit_x'"});
}

// save_conversion writes the export first; when the checkpoint then cannot be written (its parent is a regular
// file), the export goes too and nothing is left beside it. The same conversion saved to a good path gives both.
BOOST_AUTO_TEST_CASE(a_failed_checkpoint_write_removes_the_export) {
  std::mt19937_64 gen(mla::test::test_seed());
  const source_model src(gen);
  const mla::model::decoder<float> dec(src.cfg, src.w);
  const mla::test::temp_dir d("mla-save-conversion");
  conversion_recipe r = small_recipe();
  r.e2e.steps = 0;
  r.export_kind = "deepseek_v3";
  r.export_dir = d.file("export");
  std::ofstream(d.file("a_file")) << "x";
  r.out_dir = d.file("a_file") + "/conv";
  const auto res = mla::convert::run_conversion(dec, src.tokens, r);
  BOOST_CHECK_THROW(mla::convert::save_conversion(r, res, {}), std::exception);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(d.path())) left.push_back(e.path().filename().string());
  BOOST_TEST(left == std::vector<std::string>{"a_file"}, boost::test_tools::per_element());

  r.out_dir = d.file("conv");
  mla::convert::save_conversion(r, res, {});
  BOOST_TEST(std::filesystem::exists(d.file("conv") + "/model.safetensors"));
  BOOST_TEST(std::filesystem::exists(d.file("export") + "/model.safetensors"));
}

BOOST_AUTO_TEST_SUITE_END()
