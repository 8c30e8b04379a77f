// conversion_recipe and calibration_plan: every bad combination of settings is refused with a message naming the
// flag (before the model is loaded when it needs no model), and the plan cuts the windows mla-convert cut, checked
// against the arithmetic written out here on a stream whose tokens are their own positions.
#include "mla/convert/recipe.hpp"

#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "files.hpp"
#include "mla/model/model_config.hpp"

BOOST_AUTO_TEST_SUITE(recipe)  // (its namespace holds the helpers: unity builds join test files)

namespace {

using mla::convert::calibration_plan;
using mla::convert::conversion_recipe;
using mla::convert::stage_mode;
using mla::test::expect_error;

// A config of n layers, 2 KV heads of 16 (64 cached elements per token and layer), SwiGLU.
mla::model::model_config config(int n_layers) {
  mla::model::model_config c;
  c.architecture = "llama";
  c.vocab_size = 97;
  c.hidden = 64;
  c.n_layers = n_layers;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate = 128;
  c.layers.assign(static_cast<std::size_t>(n_layers), mla::model::layer_config{});
  return c;
}

// A recipe that passes both checks on config(2): small windows, rope_dim 8 (not a supported d_R: --any-rank), an
// --out in the working directory (it is probed, not created).
conversion_recipe good() {
  conversion_recipe r;
  r.model_path = "model.gguf";
  r.window = 16;
  r.calib_tokens = 160;
  r.heldout_tokens = 32;
  r.layer.rope.rope_dim = 8;
  r.any_rank = true;
  r.full_rank = true;
  r.out_dir = "mla-recipe-test-out";
  return r;
}

// The recipe after `change` is refused by validate() with a message holding every part.
void refused(const std::function<void(conversion_recipe&)>& change, std::initializer_list<std::string> parts) {
  conversion_recipe r = good();
  change(r);
  expect_error([&] { r.validate(); }, parts);
}

// ... and by validate(config) (after passing validate()).
void refused_for(const mla::model::model_config& cfg, const std::function<void(conversion_recipe&)>& change,
                 std::initializer_list<std::string> parts, const mla::model::model_config* start = nullptr) {
  conversion_recipe r = good();
  change(r);
  BOOST_CHECK_NO_THROW(r.validate());
  expect_error([&] { r.validate(cfg, start); }, parts);
}

// Window j of `len` tokens of the stream 0, 1, 2, ...: its tokens are its positions.
std::vector<int> positions(long first, int len) {
  std::vector<int> w(static_cast<std::size_t>(len));
  std::iota(w.begin(), w.end(), static_cast<int>(first));
  return w;
}

// `count` windows of `len` from token `first` on.
std::vector<std::vector<int>> windows(long first, int len, long count) {
  std::vector<std::vector<int>> out;
  for (long j = 0; j < count; ++j) out.push_back(positions(first + j * len, len));
  return out;
}

std::vector<int> stream(int n) {
  std::vector<int> s(static_cast<std::size_t>(n));
  std::iota(s.begin(), s.end(), 0);
  return s;
}

}  // namespace

// The defaults are mla-convert's, and they pass.
BOOST_AUTO_TEST_CASE(defaults_are_the_tools) {
  const conversion_recipe r;
  BOOST_TEST((r.layer.factor.method == mla::convert::factor_method::attention_aware));
  BOOST_TEST((r.layer.rope.strategy == mla::convert::rope_strategy::rorope));
  BOOST_TEST(r.layer.rope.rope_dim == 32);
  BOOST_TEST(r.calib_tokens == 8192);
  BOOST_TEST(r.heldout_tokens == 512);
  BOOST_TEST(r.window == 256);
  BOOST_TEST(r.refit_tokens == 2048);
  BOOST_TEST(r.distill_tokens == 4096);
  BOOST_TEST(r.distill.learning_rate == 2e-3);
  BOOST_TEST(r.distill.batch_windows == 2);
  BOOST_TEST(r.e2e.learning_rate == 1e-3);
  BOOST_TEST(r.e2e.batch_windows == 1);
  BOOST_TEST(r.e2e_tokens == 8192);
  BOOST_TEST(r.e2e.teacher_cache_bytes == std::size_t(4) << 30);
  BOOST_TEST(r.report_context == 8192);
  BOOST_TEST(r.dtype == "f32");
  BOOST_TEST(!r.refit_used());
  BOOST_TEST(!r.exports());
  // A conversion needs a budget (or a rank, or --full-rank): the defaults alone are refused.
  expect_error([&] { r.validate_options(); }, {"--kv-budget: none given", "--full-rank"});
  conversion_recipe budget = r;
  budget.kv_budget = 0.5;
  BOOST_CHECK_NO_THROW(budget.validate_options());  // (an --out is the tool's to give)
  BOOST_CHECK_NO_THROW(good().validate(config(2)));
}

// What one flag implies: --refit-drift the sequential o_proj refit, either of those the refit.
BOOST_AUTO_TEST_CASE(implied_settings) {
  conversion_recipe r = good();
  r.refit_opt.drift_weight = 0.5;
  BOOST_TEST(r.refit_used());
  BOOST_TEST(r.refit_o_proj_used());
  BOOST_TEST((r.refit_mode_used() == stage_mode::sequential));
  r = good();
  r.refit_opt.output_projection = true;
  BOOST_TEST(r.refit_used());
  BOOST_TEST((r.refit_mode_used() == stage_mode::teacher));
  r = good();
  r.refit_mode = stage_mode::sequential;
  BOOST_TEST(r.refit_used());
  BOOST_TEST(!r.refit_o_proj_used());
  r = good();
  r.out_dir = "conv";
  r.export_kind = "deepseek_v3";
  BOOST_TEST(r.export_path() == "conv-deepseek_v3");
  r.export_dir = "elsewhere";
  BOOST_TEST(r.export_path() == "elsewhere");
  r.export_dir.clear();
  r.export_kind = "gguf";
  BOOST_TEST(r.export_path() == "conv-deepseek2.gguf");
}

// The DeepSeek-V3 export is exact when the exported layers carry their own latent norms, whether --latent-norm
// added them in this run or the --from checkpoint had them (its flags are not this run's).
BOOST_AUTO_TEST_CASE(export_description_follows_the_exported_layers) {
  conversion_recipe r = good();
  r.export_kind = "deepseek_v3";
  const auto says = [](const std::string& d, const std::string& part) { return d.find(part) != std::string::npos; };
  BOOST_TEST(says(r.export_description(true), ": exact"));
  BOOST_TEST(!says(r.export_description(true), "NOT exact"));
  BOOST_TEST(says(r.export_description(false), "NOT exact"));
  r.latent_norm = true;  // the flag alone does not make layers without norms exact
  BOOST_TEST(says(r.export_description(false), "NOT exact"));
  r.latent_norm = false, r.no_latent_norm = true;
  BOOST_TEST(says(r.export_description(false), "no kv_a_layernorm: exact"));
}

// What an export needs of --model is read from its metadata before it is loaded: a GGUF file for --export gguf,
// and no gpt-oss model or attention biases for either export.
BOOST_AUTO_TEST_CASE(export_source_rules) {
  using R = conversion_recipe;
  const mla::test::temp_dir tmp("mla-recipe-test");
  auto write_config = [&](const std::string& name, const std::string& json) {
    std::filesystem::create_directory(tmp.file(name));
    std::ofstream(tmp.file(name + "/config.json")) << json;
    return tmp.file(name);
  };
  const std::string llama = write_config("llama", R"({"model_type": "llama"})");
  const std::string oss = write_config("oss", R"({"model_type": "gpt_oss"})");
  const std::string biased = write_config("biased", R"({"model_type": "llama", "attention_bias": true})");
  refused([&](R& r) { r.model_path = llama, r.export_kind = "gguf"; },
          {"--export gguf", "GGUF --model", "'" + llama + "' is a checkpoint directory", "--export deepseek_v3"});
  refused([&](R& r) { r.model_path = oss, r.export_kind = "deepseek_v3"; },
          {"--export deepseek_v3", "'" + oss + "' is a gpt-oss model", "sinks", "Llama-family"});
  refused([&](R& r) { r.model_path = biased, r.export_kind = "deepseek_v3"; },
          {"--export deepseek_v3", "attention biases"});
  R ok = good();
  ok.model_path = llama;
  ok.export_kind = "deepseek_v3";
  BOOST_CHECK_NO_THROW(ok.validate_export_source());
  auto biased_cfg = config(2);
  biased_cfg.attention_bias = true;
  refused_for(biased_cfg, [](R& r) { r.export_kind = "gguf"; }, {"--export gguf", "attention biases"});
}

// Each rule that needs no model, each refusal naming the flag.
BOOST_AUTO_TEST_CASE(model_independent_rules) {
  using R = conversion_recipe;
  refused([](R& r) { r.refit_mode = stage_mode::teacher, r.refit_opt.drift_weight = 0.5; },
          {"--refit-drift needs --refit-mode sequential"});
  refused([](R& r) { r.refit_mode = stage_mode::sequential, r.distill.steps = 1; },
          {"--refit-mode sequential", "--distill-mode sequential"});
  // --refit-drift alone implies the sequential refit, which a teacher-forced distillation cannot follow.
  refused([](R& r) { r.refit_opt.drift_weight = 0.5, r.distill.steps = 1; }, {"--distill-mode sequential"});
  refused([](R& r) { r.export_kind = "deepseek_v3", r.layer.rope.strategy = mla::convert::rope_strategy::attention; },
          {"--export deepseek_v3", "--rope attention"});
  refused([](R& r) { r.export_kind = "deepseek_v3", r.layer.factor.centre = true; },
          {"--export deepseek_v3 cannot carry --centre"});
  refused([](R& r) { r.export_dir = "somewhere", r.layer.factor.centre = true; }, {"--centre"});  // --export-out alone
  refused(
      [](R& r) {
        r.layer.factor.moment = mla::convert::factor_options::moment_kind::attention;
        r.layer.factor.method = mla::convert::factor_method::weight_svd;
      },
      {"--moment attention", "--method weight_svd"});
  refused([](R& r) { r.kv_budget = -0.5; }, {"--kv-budget must be > 0", "-0.5"});
  // A conversion that saves nothing: no budget and no rank, unless --full-rank asks for it.
  refused([](R& r) { r.full_rank = false; }, {"--kv-budget: none given (or 0)", "--rank", "--full-rank"});
  for (const double budget : {0.5, 400.0}) {
    conversion_recipe r = good();
    r.full_rank = false, r.kv_budget = budget;
    BOOST_CHECK_NO_THROW(r.validate());
  }
  conversion_recipe ranked = good();
  ranked.full_rank = false, ranked.layer.rank = 32;
  BOOST_CHECK_NO_THROW(ranked.validate());
  refused([](R& r) { r.calib_tokens = 15; }, {"--calib-tokens 15 is less than one window of 16 tokens"});
  refused([](R& r) { r.window = 4; }, {"--window"});
  refused([](R& r) { r.layer.rope.rope_dim = 7; }, {"--rope-dim", "even"});
  refused([](R& r) { r.any_rank = false; }, {"--rope-dim 8", "allowed: 16, 32, 64", "--any-rank"});
  refused([](R& r) { r.any_rank = false, r.layer.rope.rope_dim = 48; }, {"--rope-dim 48", "allowed: 16, 32, 64"});
  refused([](R& r) { r.refit_opt.drift_weight = 1.5; }, {"--refit-drift", "[0, 1]"});
  refused([](R& r) { r.distill.learning_rate = 0; }, {"--distill-lr"});
  refused([](R& r) { r.e2e.batch_windows = 0; }, {"--e2e-batch"});
  refused([](R& r) { r.dtype = "f16"; }, {"--dtype", "f16"});
  refused([](R& r) { r.export_kind = "onnx"; }, {"--export must be deepseek_v3", "or gguf", "onnx"});
  refused([](R& r) { r.export_kind = "gguf", r.no_latent_norm = true; }, {"--export gguf", "--no-latent-norm"});
  refused([](R& r) { r.export_kind = "gguf", r.export_type = "q4_k"; }, {"--export-type", "f32, f16 or q8_0"});
  refused([](R& r) { r.export_kind = "deepseek_v3", r.export_type = "f16"; }, {"--export-type f16", "--export gguf"});
  refused([](R& r) { r.export_kind = "gguf", r.export_width = "vllm"; },
          {"--export-width vllm applies to --export deepseek_v3", "not to --export gguf"});
  refused([](R& r) { r.export_width = "vllm"; }, {"--export-width vllm", "no --export was asked"});
  refused([](R& r) { r.export_kind = "deepseek_v3", r.export_width = "wide"; }, {"--export-width", "'wide'"});
  refused([](R& r) { r.export_kind = "deepseek_v3", r.export_width = "vllm", r.layer.rope.rope_dim = 24; },
          {"--export-width vllm: --rope-dim 24 does not divide 64"});
  refused([](R& r) { r.export_kind = "gguf", r.layer.factor.centre = true; }, {"--export gguf cannot carry --centre"});
  refused([](R& r) { r.export_kind = "gguf", r.layer.rope.strategy = mla::convert::rope_strategy::attention; },
          {"--export gguf", "--rope attention", "--rope rorope"});
  refused([](R& r) { r.latent_norm = r.no_latent_norm = true; }, {"--latent-norm", "--no-latent-norm"});
  // --from: the conversion stages' settings are the checkpoint's already (good() has --rope-dim 8 and --any-rank:
  // reset them).
  auto from = [](const std::function<void(R&)>& change) {
    return [change](R& r) {
      r.from_dir = "ckpt";
      r.layer.rope.rope_dim = R{}.layer.rope.rope_dim;
      r.any_rank = false;
      change(r);
    };
  };
  refused(from([](R& r) { r.distill.steps = 3; }), {"--from", "--distill-steps", "ckpt"});
  refused(from([](R& r) { r.distill_mode = stage_mode::sequential; }), {"--from", "--distill-steps (or"});
  refused(from([](R& r) { r.kv_budget = 0.5; }), {"--from", "--kv-budget"});
  refused(from([](R& r) { r.refit_opt.output_projection = true; }), {"--from", "--refit"});
  refused(from([](R& r) { r.layers = {0}; }), {"--from", "--layers"});
  refused(from([](R& r) { r.layer.rope.rope_dim = 16; }), {"--from", "--rope-dim"});
  refused(from([](R& r) { r.latent_norm = true; }), {"--from", "--latent-norm"});
  refused(from([](R& r) { r.any_rank = true; }), {"--from", "--any-rank"});
  conversion_recipe resumed = good();
  from([](R& r) { r.e2e.steps = 5; })(resumed);
  BOOST_CHECK_NO_THROW(resumed.validate());
}

// The outputs must not exist.
BOOST_AUTO_TEST_CASE(existing_outputs_are_refused) {
  const mla::test::temp_dir tmp("mla-recipe-test");
  refused([&](conversion_recipe& r) { r.out_dir = tmp.path(); }, {"--out: '" + tmp.path() + "' already exists"});
  refused([&](conversion_recipe& r) { r.out_dir = tmp.file("new"), r.export_dir = tmp.path(); },
          {"--export-out: '" + tmp.path() + "' already exists"});
  conversion_recipe r = good();
  r.out_dir = tmp.file("conv");
  r.export_kind = "deepseek_v3";
  BOOST_CHECK_NO_THROW(r.validate());
}

// ... and must be creatable: not empty, in an existing directory (the probe leaves nothing there).
BOOST_AUTO_TEST_CASE(uncreatable_outputs_are_refused) {
  using R = conversion_recipe;
  const mla::test::temp_dir tmp("mla-recipe-test");
  const std::string file = tmp.file("a_file");
  std::ofstream(file) << "not a directory\n";
  refused([&](R& r) { r.out_dir = ""; }, {"--out: the path is empty"});
  refused([&](R& r) { r.out_dir = file + "/conv"; }, {"--out: cannot create '" + file + "/conv'", "not a directory"});
  refused([&](R& r) { r.out_dir = tmp.file("none/conv"); }, {"--out: cannot create", "none' does not exist"});
  refused([&](R& r) { r.out_dir = tmp.file("conv"), r.export_dir = file + "/export"; },
          {"--export-out: cannot create '" + file + "/export'"});
  refused([&](R& r) { r.out_dir = file + "/conv", r.export_dir = tmp.file("export"); }, {"--out: cannot create"});
  BOOST_TEST(std::distance(std::filesystem::directory_iterator(tmp.path()), {}) == 1);  // a_file alone
}

// The rules that need the model: layers, the budget, the end-to-end stage and the export.
BOOST_AUTO_TEST_CASE(model_dependent_rules) {
  using R = conversion_recipe;
  const auto two = config(2);
  refused_for(two, [](R& r) { r.layers = {0, 2}; }, {"--layers: layer 2 is outside [0, 2)"});
  // The end-to-end stage trains the converted layers of any model (GQA layers and MoE frozen); sinks only where
  // the model has them.
  auto moe = two;
  moe.mlp = mla::model::mlp_kind::moe;
  for (const mla::model::model_config* c : {&two, const_cast<const mla::model::model_config*>(&moe)}) {
    conversion_recipe e = good();
    e.layers = {1}, e.e2e.steps = 2;
    BOOST_CHECK_NO_THROW(e.validate(*c));
  }
  refused_for(two, [](R& r) { r.e2e.steps = 2, r.e2e.train_sinks = true; },
              {"--e2e-train-sinks", "has no attention sinks"});
  refused([](R& r) { r.e2e.train_sinks = true; }, {"--e2e-train-sinks needs --e2e-steps > 0"});
  refused([](R& r) { r.e2e.teacher_top_k = -1; }, {"--e2e-teacher-top-k must be >= 0"});
  refused_for(two, [](R& r) { r.e2e.steps = 2, r.e2e.teacher_top_k = 97; },
              {"--e2e-teacher-top-k 97 keeps the whole vocabulary of 'model.gguf' (97 tokens)"});
  auto sinks = moe;
  sinks.attention_sinks = true;
  conversion_recipe e = good();
  e.e2e.steps = 2, e.e2e.train_sinks = true;
  BOOST_CHECK_NO_THROW(e.validate(sinks));
  refused_for(two, [](R& r) { r.layers = {0}, r.export_kind = "deepseek_v3"; }, {"--export deepseek_v3", "1 of 2"});
  // 2 layers of 64 elements: 0.25 gives 32 elements for 2 x (8 + 32) = 80 needed; 0.7 gives 89.
  refused_for(two, [](R& r) { r.kv_budget = 0.25; }, {"--kv-budget 0.25 gives 32 elements per token for 2 layers"});
  conversion_recipe r = good();
  r.kv_budget = 0.7;
  BOOST_CHECK_NO_THROW(r.validate(two));
  BOOST_TEST(r.kv_budget_elements(two, {0, 1}) == 89);
  BOOST_TEST(r.kv_budget_elements(two, {1}) == 44);
  r.kv_budget = 400;  // bytes of float32
  BOOST_TEST(r.kv_budget_elements(two, {0, 1}) == 100);

  // Sliding-window layers stay GQA by default; a model of windows only needs a choice.
  auto windowed = config(3);
  windowed.layers[1].sliding_window = 128;
  BOOST_TEST(good().conversion_layers(windowed) == (std::vector<int>{0, 2}), boost::test_tools::per_element());
  r = good();
  r.include_sliding = true;
  BOOST_TEST(r.conversion_layers(windowed) == (std::vector<int>{0, 1, 2}), boost::test_tools::per_element());
  for (auto& l : windowed.layers) l.sliding_window = 128;
  refused_for(windowed, [](R&) {}, {"every layer of 'model.gguf' has a sliding window", "--include-sliding"});

  // --from: the checkpoint's MLA layers are the converted ones.
  auto start = two;
  refused_for(
      two, [](R& x) { x.from_dir = "ckpt", x.layer.rope.rope_dim = 32, x.any_rank = false; },
      {"--from: 'ckpt' has no MLA layer"}, &start);
  start.layers[1].attention = mla::model::attention_kind::mla;
  r = good();
  r.from_dir = "ckpt";
  r.layer.rope.rope_dim = 32;
  r.any_rank = false;
  BOOST_TEST(r.conversion_layers(two, &start) == (std::vector<int>{1}), boost::test_tools::per_element());
  r.e2e.steps = 1;  // a checkpoint with GQA layers left continues end to end too
  BOOST_CHECK_NO_THROW(r.validate(two, &start));
}

// The plan's windows against mla-convert's arithmetic, written out: the stream's tokens are their positions, so
// a window is identified by its first token and length.
BOOST_AUTO_TEST_CASE(plan_cuts_the_tools_windows) {
  const std::vector<int> tokens = stream(1000);
  {
    // window 16: 10 calibration windows, 2 held out; refit (40 tokens) and distillation (100) on the same
    // windows: the fit inputs take max(40, 100) / 16 = 6 windows, the refit its own 40 / 16 -> 2 of them.
    conversion_recipe r = good();
    r.calib_tokens = 160 + 7;  // a partial window is dropped
    r.heldout_tokens = 32;
    r.refit = true;
    r.refit_tokens = 40;
    r.distill.steps = 1;
    r.distill_tokens = 100;
    const calibration_plan p(r, tokens, false);
    BOOST_TEST((p.calibration == windows(0, 16, 10)));
    BOOST_TEST((p.heldout == windows(160, 16, 2)));
    BOOST_TEST(p.heldout_tokens() == 32);
    BOOST_TEST((p.fit == windows(0, 16, 6)));
    BOOST_TEST(p.refit_windows == 2);
    BOOST_TEST(!p.own_distill_windows);
    BOOST_TEST((p.distill == p.fit));
    BOOST_TEST(p.e2e.empty());
    BOOST_TEST(p.notes.empty());
    // Resumed: no conversion stage, no fit inputs.
    const calibration_plan resumed(r, tokens, true);
    BOOST_TEST(resumed.fit.empty());
  }
  {
    // The distillation's own 8-token windows: 1000 tokens asked, the 160-token stretch used (a note), 20 windows;
    // the refit alone decides the fit inputs (2048 / 16 capped at the 10 calibration windows; no share).
    conversion_recipe r = good();
    r.refit = true;
    r.distill.steps = 1;
    r.distill_tokens = 1000;
    r.distill_window = 8;
    const calibration_plan p(r, tokens, false);
    BOOST_TEST((p.fit == windows(0, 16, 10)));
    BOOST_TEST(p.refit_windows == 0);
    BOOST_TEST(p.own_distill_windows);
    BOOST_TEST((p.distill == windows(0, 8, 20)));
    BOOST_TEST_REQUIRE(p.notes.size() == 1u);
    BOOST_TEST(p.notes[0] ==
               "--distill-tokens 1000 is more than the 160 calibration tokens (--calib-tokens); the "
               "distillation uses 160");
  }
  {
    // The attention RoPE strategy reads 4096 tokens at most: all 10 windows; with 1 calibration window the fit
    // still takes 2 (the held-out one after it).
    conversion_recipe r = good();
    r.layer.rope.strategy = mla::convert::rope_strategy::attention;
    BOOST_TEST((calibration_plan(r, tokens, false).fit == windows(0, 16, 10)));
    r.calib_tokens = 16;
    BOOST_TEST((calibration_plan(r, tokens, false).fit == windows(0, 16, 2)));
    r.layer.rope.strategy = mla::convert::rope_strategy::rorope;
    BOOST_TEST(calibration_plan(r, tokens, false).fit.empty());
  }
  {
    // End to end: 64 tokens of 32-token windows (2); the default e2e window is --window; too few is refused.
    conversion_recipe r = good();
    r.e2e.steps = 3;
    r.e2e_tokens = 64;
    r.e2e_window = 32;
    calibration_plan p(r, tokens, false);
    BOOST_TEST((p.e2e == windows(0, 32, 2)));
    BOOST_TEST(p.e2e_window == 32);
    r.e2e_window = 0;
    r.e2e_tokens = 100;
    p = calibration_plan(r, tokens, true);
    BOOST_TEST((p.e2e == windows(0, 16, 6)));
    BOOST_TEST(p.e2e_window == 16);
    r.e2e_tokens = 31;
    expect_error([&] { calibration_plan(r, tokens, false); },
                 {"--e2e-window 16: the end-to-end distillation needs 2 windows within 31 calibration tokens"});
  }
  {
    conversion_recipe r = good();
    r.calib_path = "calib.txt";
    expect_error([&] { calibration_plan(r, stream(191), false); },
                 {"--calib: 'calib.txt' has 191 tokens, fewer than --calib-tokens + --heldout-tokens = 192"});
    BOOST_CHECK_NO_THROW(calibration_plan(r, stream(192), false));
    BOOST_TEST(r.calibration_text_bytes() == std::size_t(160 + 32 + 16) * 8);
  }
}

BOOST_AUTO_TEST_SUITE_END()
