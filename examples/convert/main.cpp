// mla-convert: GQA -> MLA conversion of a Llama-family or gpt-oss model into the project's MLA checkpoint format
// (config.json with the "mla" fields + safetensors + tokenizer), with the per-layer stage report. A gpt-oss
// directory keeps its sliding-window layers GQA unless --include-sliding or --layers asks otherwise, and its
// MXFP4 experts are copied byte for byte (save_checkpoint.hpp).
//
//   mla-convert --model SmolLM2-135M-Instruct.Q4_1.gguf --method attention_aware --kv-budget 0.5 --out smollm2-mla
//   mla-eval --model smollm2-mla --text ../shared/data/wikitext-2-raw-test.txt --ctx 2048
//   mla-convert --model SmolLM2-135M-Instruct.Q4_1.gguf --from smollm2-mla --e2e-steps 300 --e2e-lr 3e-4 --out e2e
#include <CLI/CLI.hpp>
#include <cstdio>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <mla/convert/calibration.hpp>
#include <mla/convert/calibration_text.hpp>
#include <mla/convert/distill_model.hpp>
#include <mla/convert/latent_norm.hpp>
#include <mla/convert/pipeline.hpp>
#include <mla/convert/resume.hpp>
#include <mla/model/deepseek_v3.hpp>
#include <mla/model/load.hpp>
#include <mla/model/save_checkpoint.hpp>
#include <mla/util/progress_bar.hpp>
#include <string>
#include <utility>
#include <vector>

namespace {
// A name -> enum option; a wrong name is an error listing the valid ones.
template <class E>
CLI::CheckedTransformer choices(const std::map<std::string, E>& m) {
  return CLI::CheckedTransformer(m, CLI::ignore_case);
}

std::string default_calib() {
  const char* dir = std::getenv("MLA_DATA_DIR");
  const std::string p = std::string(dir && *dir ? dir : "../shared/data") + "/wikitext-2-valid-tokenized.txt";
  return std::filesystem::exists(p) ? p : std::string();
}

// Runs the decoder over the windows with the observer, drawing a progress bar.
void run_with_bar(const mla::model::decoder<float>& dec, const std::vector<std::vector<int>>& windows,
                  mla::model::observer<float>& obs, const char* label) {
  mla::util::progress_bar bar(label, double(windows.size() * windows.front().size()), "tok");
  double done = 0;
  for (const auto& w : windows) {
    auto s = dec.new_session();
    dec.hidden_states(s, w, &obs);
    bar.update(done += double(w.size()));
  }
  bar.finish();
}
}  // namespace

int main(int argc, char** argv) {
  using namespace mla::convert;
  CLI::App app{"Convert a GQA model (GGUF file or checkpoint directory) to MLA"};
  std::string distill_mode = "teacher", refit_mode = "teacher";
  std::string model_path, calib_path = default_calib(), out_dir, export_kind, export_dir, dtype_name = "f32";
  bool no_latent_norm = false;
  pipeline_options o;
  o.layer.factor.method = factor_method::attention_aware;
  o.layer.rope.rope_dim = 32;
  double kv_budget = 0;
  long calib_tokens = 8192, heldout_tokens = 512, refit_tokens = 2048, distill_tokens = 4096;
  int window = 256;
  int distill_window = 0;
  distill_options e2e;  // the end-to-end stage (distill_model.hpp)
  e2e.learning_rate = 1e-3;
  e2e.batch_windows = 1;
  long e2e_tokens = 8192;
  int e2e_window = 0;
  app.add_option("--model", model_path, "GGUF file or checkpoint directory")->required();
  app.add_option("--method", o.layer.factor.method, "joint K/V factorisation")
      ->transform(choices(std::map<std::string, factor_method>{{"weight_svd", factor_method::weight_svd},
                                                               {"activation_pca", factor_method::activation_pca},
                                                               {"care", factor_method::care},
                                                               {"attention_aware", factor_method::attention_aware}}));
  app.add_option("--rope", o.layer.rope.strategy, "how the shared RoPE key is cut (TransMLA rorope; MHA2MLA selections; attention: RoRoPE directions placed by the output change their cut causes, best with d_R = head_dim and a large latent, calibrated on windows as long as the evaluation context)")
      ->transform(choices(std::map<std::string, rope_strategy>{{"rorope", rope_strategy::rorope},
                                                               {"high", rope_strategy::high},
                                                               {"low", rope_strategy::low},
                                                               {"uniform", rope_strategy::uniform},
                                                               {"two_norm", rope_strategy::two_norm},
                                                               {"attention", rope_strategy::attention}}));
  app.add_option("--rope-dim", o.layer.rope.rope_dim, "decoupled RoPE width d_R (even)");
  app.add_option("--key-weight", o.layer.factor.key_weight, "attention_aware: weight of the score (key) term");
  app.add_option("--moment", o.layer.factor.moment,
                 "input moment of the factorisation: tokens, or attention (the second moment of the source "
                 "attention's averages of the inputs, what a value error actually reaches the output through)")
      ->transform(choices(std::map<std::string, mla::convert::factor_options::moment_kind>{
          {"tokens", mla::convert::factor_options::moment_kind::tokens},
          {"attention", mla::convert::factor_options::moment_kind::attention}}));
  app.add_flag("--centre", o.layer.factor.centre,
               "factor the centred activations: the key mean (invisible to softmax) is dropped and the value mean "
               "folds exactly into o_proj's bias (layers without sinks; not exportable to DeepSeek-V3); with --moment "
               "attention the mean is that of the attention averages");
  app.add_option("--freqfold", o.layer.rope.freqfold, "RoRoPE FreqFold F (0: smallest valid)");
  app.add_option("--kv-budget", kv_budget,
                 "KV cache budget of the converted layers: a fraction of the original in (0, 1], or bytes per token "
                 "(float32 elements, summed over converted layers) when > 1");
  app.add_option("--rank", o.layer.rank, "latent rank in every layer (when no --kv-budget; 0: full rank)");
  app.add_option("--allocation", o.allocation, "rank allocation under --kv-budget")
      ->transform(choices(std::map<std::string, rank_allocation>{{"uniform", rank_allocation::uniform},
                                                                 {"spectrum_greedy", rank_allocation::spectrum_greedy},
                                                                 {"objective_greedy", rank_allocation::objective_greedy}}));
  app.add_flag("--any-rank", [&](std::int64_t) { o.require_supported_shape = false; },
               "allow ranks outside mla::supported_shapes (multiples of 32)");
  app.add_option("--layers", o.layers,
                 "layers to convert (default: every full-attention layer; sliding-window layers stay GQA)");
  bool include_sliding = false;
  app.add_flag("--include-sliding", include_sliding,
               "with no --layers: convert the sliding-window layers too (gpt-oss: their cache is only the window)");
  app.add_option("--calib", calib_path, "calibration text: plain text, or .jsonl with a \"text\" field")
      ->check(CLI::ExistingFile);
  app.add_option("--calib-tokens", calib_tokens, "calibration tokens")->check(CLI::PositiveNumber);
  app.add_option("--heldout-tokens", heldout_tokens, "held-out tokens for the stage report (0: no report)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--window", window, "calibration window length in tokens")->check(CLI::Range(8, 1 << 16));
  app.add_flag("--refit", o.refit, "closed-form ridge refit of the value up-projection");
  app.add_option("--refit-mode", refit_mode,
                 "teacher: each layer refitted on the source model's inputs; sequential: in layer order, the converted "
                 "layer on the converted model's own inputs, towards the source outputs (implies --refit)")
      ->check(CLI::IsMember({"teacher", "sequential"}));
  app.add_option("--refit-tokens", refit_tokens, "calibration tokens the refit uses")->check(CLI::PositiveNumber);
  app.add_flag("--refit-o-proj", o.refit_opt.output_projection,
               "after the w_uv refit, also refit o_proj across heads in closed form (implies --refit)");
  app.add_option("--refit-drift", o.refit_opt.drift_weight,
                 "sequential refit: the o_proj target also gets this weight times the residual-stream drift before "
                 "the layer, so the layer cancels what the earlier ones left (implies --refit-mode sequential "
                 "--refit-o-proj; 0: off)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--distill-steps", o.distill.steps,
                 "layer-wise distillation through the softmax: Adam steps per layer (0: off)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--distill-tokens", distill_tokens, "calibration tokens the distillation uses (a fifth held out)")
      ->check(CLI::PositiveNumber);
  app.add_option("--distill-lr", o.distill.learning_rate, "distillation step, relative to each tensor's RMS")
      ->check(CLI::PositiveNumber);
  app.add_option("--distill-mode", distill_mode,
                 "teacher: each layer on the source model's inputs; sequential: in layer order on the converted "
                 "model's own inputs, towards the source outputs")
      ->check(CLI::IsMember({"teacher", "sequential"}));
  app.add_option("--distill-window", distill_window,
                 "window length of the distillation in tokens (0: --window); shorter windows train faster")
      ->check(CLI::Range(0, 1 << 16));
  app.add_option("--distill-batch", o.distill.batch_windows, "calibration windows per distillation step")
      ->check(CLI::PositiveNumber);
  app.add_option("--e2e-steps", e2e.steps,
                 "end-to-end distillation after every other stage: Adam steps on the KL between the source model's "
                 "next-token distributions and the converted model's, training every converted attention layer at "
                 "once (0: off; needs every layer converted and a SwiGLU model)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--e2e-lr", e2e.learning_rate, "end-to-end step, relative to each tensor's RMS")
      ->check(CLI::PositiveNumber);
  app.add_option("--e2e-batch", e2e.batch_windows, "token windows per end-to-end step")->check(CLI::PositiveNumber);
  app.add_option("--e2e-tokens", e2e_tokens,
                 "calibration tokens the end-to-end distillation uses, from the start of the calibration stretch "
                 "(a fifth held out)")
      ->check(CLI::PositiveNumber);
  double e2e_cache_gib = double(e2e.teacher_cache_bytes) / double(1 << 30);
  app.add_option("--e2e-cache-gib", e2e_cache_gib,
                 "memory (GiB) for the source model's next-token distributions on the end-to-end training windows "
                 "(vocab x 4 bytes per token): computed once when they fit, else again at every step")
      ->check(CLI::Range(0.0, 1024.0));
  app.add_option("--e2e-window", e2e_window, "window length of the end-to-end distillation in tokens (0: --window)")
      ->check(CLI::Range(0, 1 << 16));
  long report_context = 8192;
  app.add_option("--report-context", report_context, "context length of the KV-cache summary line")
      ->check(CLI::PositiveNumber);
  app.add_option("--out", out_dir, "output checkpoint directory (must not exist)")->required();
  app.add_option("--dtype", dtype_name, "weights in the checkpoint")->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--export", export_kind, "also export the DeepSeek-V3 layout (every layer converted, no biases)")
      ->check(CLI::IsMember({"deepseek_v3"}));
  app.add_option("--export-out", export_dir, "directory of the export (default: <out>-deepseek_v3)");
  app.add_flag("--no-latent-norm", no_latent_norm,
               "export without kv_a_layernorm (exact, but stock DeepSeek code expects the norm)");
  app.add_flag("--latent-norm", o.latent_norm,
               "give every converted layer DeepSeek's latent RMSNorm (weight: the latent's RMS on the calibration "
               "tokens) before the distillation, which then trains through it; the DeepSeek-V3 export is then exact "
               "for what was converted")
      ->excludes("--no-latent-norm");
  std::string from_dir;
  CLI::Option* from = app.add_option(
      "--from", from_dir,
      "resume: start from a checkpoint that mla-convert wrote for this --model (e.g. after layer-wise distillation) "
      "instead of converting again; the end-to-end stage (--e2e-steps) continues from it")
      ->check(CLI::ExistingDirectory);
  // What --from skips: the options of the conversion stages it replaces.
  for (const char* name : {"--method", "--rope", "--rope-dim", "--key-weight", "--moment", "--centre", "--freqfold",
                           "--kv-budget", "--rank", "--allocation", "--any-rank", "--layers", "--include-sliding",
                           "--refit", "--refit-mode", "--refit-tokens", "--refit-o-proj", "--refit-drift",
                           "--distill-steps", "--distill-tokens", "--distill-lr", "--distill-mode", "--distill-window",
                           "--distill-batch", "--latent-norm"})
    from->excludes(name);
  CLI11_PARSE(app, argc, argv);
  const bool resumed = !from_dir.empty();
  e2e.teacher_cache_bytes = static_cast<std::size_t>(e2e_cache_gib * double(1 << 30));
  if (o.refit_opt.drift_weight > 0) {
    if (app.count("--refit-mode") > 0 && refit_mode != "sequential") {
      std::fprintf(stderr, "mla-convert: error: --refit-drift needs --refit-mode sequential (the drift is the "
                           "converted model's own)\n");
      return 1;
    }
    refit_mode = "sequential";
    o.refit_opt.output_projection = true;
  }
  if (o.refit_opt.output_projection || refit_mode == "sequential") o.refit = true;

  try {
    namespace fs = std::filesystem;
    mla::check(!fs::exists(out_dir), "--out: '", out_dir, "' already exists (nothing is overwritten)");
    mla::check(!calib_path.empty(), "--calib: no calibration text given and the default ",
               "../shared/data/wikitext-2-valid-tokenized.txt (or $MLA_DATA_DIR) is absent");
    mla::check(kv_budget >= 0, "--kv-budget must be > 0 (a fraction in (0, 1] or bytes per token), found ", kv_budget);
    if (!export_kind.empty() && export_dir.empty()) export_dir = out_dir + "-deepseek_v3";
    mla::check(export_kind.empty() || o.layer.rope.strategy != rope_strategy::attention,
               "--export deepseek_v3 needs the standard RoPE frequency ladder, which --rope attention does not keep ",
               "(its pairs sit on the frequencies that need them); use --rope rorope or an MHA2MLA selection");
    mla::check(export_kind.empty() || !o.layer.factor.centre,
               "--export deepseek_v3 cannot carry --centre: the folded value mean is an o_proj bias, which DeepSeek-V3 ",
               "engines do not load; convert without --centre for an export");
    mla::check(o.layer.factor.moment != mla::convert::factor_options::moment_kind::attention ||
                   o.layer.factor.method != factor_method::weight_svd,
               "--moment attention does not apply to --method weight_svd, which factors the weights alone (M = I); ",
               "drop --moment or pick an activation method");
    mla::check(export_dir.empty() || !fs::exists(export_dir), "--export-out: '", export_dir,
               "' already exists (nothing is overwritten)");

    std::fprintf(stderr, "loading %s\n", model_path.c_str());
    const mla::model::loaded_model m = mla::model::load_model(model_path);
    const mla::model::model_config& cfg = m.model.config();
    mla::check(m.has_tokenizer, "--model: '", model_path, "' has no usable tokenizer (", m.tokenizer_note,
               "); calibration needs one");
    std::optional<mla::model::loaded_model> start;  // --from: the checkpoint the stages continue from
    if (resumed) {
      std::fprintf(stderr, "loading %s\n", from_dir.c_str());
      start = mla::model::load_model(from_dir);
      for (int l = 0; l < start->model.config().n_layers; ++l)
        if (start->model.config().layers[static_cast<std::size_t>(l)].attention == mla::model::attention_kind::mla)
          o.layers.push_back(l);
      mla::check(!o.layers.empty(), "--from: '", from_dir, "' has no MLA layer; it is not a converted checkpoint");
    }
    std::vector<int> todo = o.layers;
    if (todo.empty()) {
      // gpt-oss alternates full attention with 128-token windows; a window's cache is already bounded, so by
      // default only the full-attention layers are converted (all layers when the model has no windows).
      for (int l = 0; l < cfg.n_layers; ++l)
        if (include_sliding || cfg.layers[static_cast<std::size_t>(l)].sliding_window == 0) todo.push_back(l);
      mla::check(!todo.empty(), "every layer of '", model_path, "' has a sliding window; pass --include-sliding or ",
                 "--layers to convert some");
      o.layers = todo;
    }
    for (int l : todo)
      mla::check(l >= 0 && l < cfg.n_layers, "--layers: layer ", l, " is outside [0, ", cfg.n_layers, ")");
    mla::check(e2e.steps == 0 || (cfg.mlp == mla::model::mlp_kind::swiglu && int(todo.size()) == cfg.n_layers),
               "--e2e-steps: the end-to-end distillation needs every layer converted (here ", todo.size(), " of ",
               cfg.n_layers, ") and SwiGLU MLPs (the MoE backward is not written)");
    long before_elems = 0, converted_elems = 0;
    for (int l = 0; l < cfg.n_layers; ++l) before_elems += cfg.kv_elements_per_token(l);
    for (int l : todo) converted_elems += cfg.kv_elements_per_token(l);
    if (kv_budget > 0) {
      o.kv_budget = kv_budget <= 1 ? static_cast<long>(kv_budget * double(converted_elems))
                                   : static_cast<long>(kv_budget / sizeof(float));
      mla::check(o.kv_budget >= long(todo.size()) * (o.layer.rope.rope_dim + 32), "--kv-budget ", kv_budget, " gives ",
                 o.kv_budget, " elements per token for ", todo.size(), " layers: less than rope_dim + the smallest rank");
    }

    // Calibration, refit and held-out windows: disjoint stretches of the calibration text.
    const long needed = calib_tokens + heldout_tokens + window;
    const std::string text = read_calibration_text(calib_path, std::size_t(needed) * 8);
    const auto ids32 = m.tokenizer.encode(text);
    const std::vector<int> ids(ids32.begin(), ids32.end());
    const int n_cal = static_cast<int>(calib_tokens / window), n_held = static_cast<int>(heldout_tokens / window);
    mla::check(n_cal > 0, "--calib-tokens ", calib_tokens, " is less than one window of ", window, " tokens");
    mla::check(long(ids.size()) >= long(n_cal + n_held) * window, "--calib: '", calib_path, "' has ", ids.size(),
               " tokens, fewer than --calib-tokens + --heldout-tokens = ", long(n_cal + n_held) * window);
    calibration_stats stats;  // what the conversion stages and the export's latent norm read
    if (!resumed || !export_dir.empty()) {
      calibration_observer<float> obs(cfg.n_layers);
      run_with_bar(m.model, token_windows(ids, window, 0, n_cal), obs, "calibration");
      stats = obs.take();
    }
    std::vector<std::vector<mla::ref::matrix<float>>> held_inputs, refit_inputs;
    if (n_held > 0) {
      input_recorder<float> rec(cfg.n_layers);
      run_with_bar(m.model, token_windows(ids, window, n_cal, n_held), rec, "held-out");
      held_inputs = rec.take();
    }
    const bool distill = o.distill.steps > 0;
    if (distill_window == 0) distill_window = window;
    const bool own_distill_windows = distill && distill_window != window;
    const bool rope_needs_inputs = o.layer.rope.strategy == rope_strategy::attention ||
                                   o.layer.factor.moment == mla::convert::factor_options::moment_kind::attention;
    const bool fit_inputs = !resumed && (o.refit || distill || rope_needs_inputs);
    if (fit_inputs) {
      // The stages read the first windows of the calibration stretch (the refit its first --refit-tokens; the
      // attention RoPE strategy at most 4096 tokens).
      input_recorder<float> rec(cfg.n_layers);
      const long fit_tokens = std::max({o.refit ? refit_tokens : 0L, distill && !own_distill_windows ? distill_tokens : 0L,
                                        rope_needs_inputs ? 4096L : 0L});
      const int n_fit = std::max(2, std::min(n_cal, static_cast<int>(fit_tokens / window)));
      run_with_bar(m.model, token_windows(ids, window, 0, n_fit), rec, "fit inputs");
      refit_inputs = rec.take();
      if (o.refit && refit_tokens < fit_tokens) {
        // The refit keeps its own (smaller) share; the other stages then see all windows.
        const int n_refit = std::max(2, std::min(n_fit, static_cast<int>(refit_tokens / window)));
        o.refit_opt.max_windows = n_refit;
      }
    }

    // Token windows of `len` for a training stage, from the start of the calibration stretch: `tokens` of them
    // (--<flag>-tokens), capped at the stretch with a note, and at least 2 (a fifth is held out).
    auto stage_windows = [&](long tokens, int len, const char* flag, const char* stage) {
      const long stretch = long(n_cal) * window;
      if (tokens > stretch)
        std::fprintf(stderr, "mla-convert: note: --%s-tokens %ld is more than the %ld calibration tokens "
                     "(--calib-tokens); the %s uses %ld\n", flag, tokens, stretch, stage, stretch);
      const int n = static_cast<int>(std::min(tokens, stretch) / len);
      mla::check(n >= 2, "--", flag, "-window ", len, ": the ", stage, " needs 2 windows within ",
                 std::min(tokens, stretch), " calibration tokens (--", flag, "-tokens, --calib-tokens)");
      return token_windows(ids, len, 0, n);
    };
    // The distillation's own windows (--distill-window), from the start of the calibration stretch.
    std::vector<std::vector<mla::ref::matrix<float>>> distill_inputs;
    std::vector<std::vector<int>> distill_tokens_windows;
    if (own_distill_windows) {
      distill_tokens_windows = stage_windows(distill_tokens, distill_window, "distill", "distillation");
      input_recorder<float> rec(cfg.n_layers);
      run_with_bar(m.model, distill_tokens_windows, rec, "distillation inputs");
      distill_inputs = rec.take();
    } else if (distill) {
      distill_tokens_windows = token_windows(ids, window, 0, static_cast<int>(refit_inputs.front().size()));
    }
    const auto& dist_inputs = own_distill_windows ? distill_inputs : refit_inputs;

    const bool sequential = distill && distill_mode == "sequential";
    const bool refit_sequentially = o.refit && refit_mode == "sequential";
    model_conversion<float> conv;
    if (resumed) {
      std::fprintf(stderr, "resuming from %s (%zu MLA layers)\n", from_dir.c_str(), todo.size());
      conv = resume_conversion(cfg, m.model.weights(), start->model.config(), start->model.weights(),
                               n_held > 0 ? &held_inputs : nullptr);
      start.reset();  // one copy of the weights is enough
    } else {
      std::fprintf(stderr, "converting %zu layers (%s, %s d_R = %d, %s)\n", todo.size(),
                   to_string(o.layer.factor.method), to_string(o.layer.rope.strategy), o.layer.rope.rope_dim,
                   to_string(o.allocation));
      mla::check(!refit_sequentially || !distill || sequential, "--refit-mode sequential runs after the conversion, ",
                 "so a distillation must come after it too: add --distill-mode sequential");
      mla::util::progress_bar layer_bar(distill && !sequential ? "converting + distilling" : "converting",
                                        double(todo.size()), "layers");
      o.on_layer = [&](int done, int) { layer_bar.update(done); };
      pipeline_options first = o;
      if (sequential) first.distill.steps = 0;  // distilled below, in layer order
      if (refit_sequentially) first.refit = false;  // refitted below, in layer order
      conv = convert_model(cfg, m.model.weights(), stats, first, n_held > 0 ? &held_inputs : nullptr,
                           fit_inputs ? &refit_inputs : nullptr, distill ? &dist_inputs : nullptr);
      layer_bar.finish();
      if (refit_sequentially) {
        mla::util::progress_bar bar("refitting (sequential)", double(todo.size()), "layers");
        const auto refit_windows = token_windows(ids, window, 0, static_cast<int>(refit_inputs.front().size()));
        refit_sequential(m.model.weights(), conv, refit_windows, refit_inputs, o.refit_opt,
                         n_held > 0 ? &held_inputs : nullptr, [&](int done, int) { bar.update(done); });
        bar.finish();
      }
      if (sequential) {
        mla::util::progress_bar bar("distilling (sequential)", double(todo.size()), "layers");
        distill_sequential(m.model.weights(), conv, distill_tokens_windows, dist_inputs, o.distill,
                           n_held > 0 ? &held_inputs : nullptr, [&](int done, int) { bar.update(done); });
        bar.finish();
      }
    }
    distill_report e2e_report;
    std::vector<std::pair<int, double>> e2e_curve;  // (step, held-out KL) at each validation
    if (e2e.steps > 0) {
      if (e2e_window == 0) e2e_window = window;
      const auto e2e_windows = stage_windows(e2e_tokens, e2e_window, "e2e", "end-to-end distillation");
      mla::util::progress_bar bar("distilling end to end", double(e2e.steps), "steps");
      auto on_step = [&](int step, int, double kl) {
        bar.update(step);
        if (!std::isnan(kl)) e2e_curve.emplace_back(step, kl);
      };
      distill_model(m.model, conv, e2e_windows, e2e, &e2e_report, on_step, n_held > 0 ? &held_inputs : nullptr);
      bar.finish();
    }
    if (distill) {
      std::printf("distillation (%s, %d steps per layer, lr %g, %d windows per step): own held-out loss before -> "
                  "after, best step\n", distill_mode.c_str(), o.distill.steps, o.distill.learning_rate,
                  o.distill.batch_windows);
      for (int l : todo) {
        const auto& r = conv.distill[static_cast<std::size_t>(l)];
        std::printf("  layer %2d: %.4e -> %.4e (step %d)\n", l, r.heldout_before, r.heldout_after, r.best_step);
      }
    }

    if (e2e.steps > 0)
      std::printf("end-to-end distillation (%d steps, lr %g, %d windows of %d tokens per step): held-out KL to the "
                  "source %.5f -> %.5f nats per token (step %d)\n", e2e.steps, e2e.learning_rate, e2e.batch_windows,
                  e2e_window, e2e_report.heldout_before, e2e_report.heldout_after, e2e_report.best_step);
    if (!e2e_curve.empty()) {
      // At most about 20 points of the held-out curve, the last one always.
      const std::size_t every = (e2e_curve.size() + 19) / 20;
      std::printf("  held-out KL by step:");
      for (std::size_t i = 0; i < e2e_curve.size(); ++i)
        if (i % every == every - 1 || i + 1 == e2e_curve.size())
          std::printf(" %d: %.5f", e2e_curve[i].first, e2e_curve[i].second);
      std::printf("\n");
    }
    std::printf("stage report: relative error of attention outputs on %d held-out tokens (teacher-forced)\n",
                n_held * window);
    std::printf("%5s %4s %6s %6s %10s", "layer", "kind", "rank", "rope", "KV elem/t");
    for (const auto& st : conv.report) std::printf(" %11s", st.stage.c_str());
    std::printf("\n");
    long after_elems = 0;
    for (int l = 0; l < cfg.n_layers; ++l) {
      const auto& lc = conv.config.layers[static_cast<std::size_t>(l)];
      after_elems += conv.config.kv_elements_per_token(l);
      std::printf("%5d %4s %6d %6d %10ld", l, to_string(lc.attention), lc.latent_rank, lc.rope_dim,
                  conv.config.kv_elements_per_token(l));
      for (const auto& st : conv.report) std::printf(" %11.3e", st.per_layer[static_cast<std::size_t>(l)]);
      std::printf("\n");
    }
    std::printf("KV cache per token (all %d layers, float32): before %ld bytes, after %ld bytes (%.1f %% of the "
                "original, %.1f %% saved)\n",
                cfg.n_layers, before_elems * 4, after_elems * 4, 100.0 * after_elems / before_elems,
                100.0 - 100.0 * after_elems / before_elems);
    const long ctx = report_context;
    const double before_ctx = 4.0 * double(cfg.kv_elements_at_context(ctx)),
                 after_ctx = 4.0 * double(conv.config.kv_elements_at_context(ctx));
    std::printf("KV cache of one %ld-token sequence (float32; sliding-window layers hold only their window): before "
                "%.2f MiB (%.0f bytes per token), after %.2f MiB (%.0f bytes per token), %.1f %% saved\n",
                ctx, before_ctx / 1048576.0, before_ctx / double(ctx), after_ctx / 1048576.0, after_ctx / double(ctx),
                100.0 - 100.0 * after_ctx / before_ctx);
    std::fflush(stdout);  // the summary table ahead of the "writing" lines when both streams go to one file

    const auto files = mla::model::checkpoint_tokenizer_files(model_path);
    const mla::io::dtype type = dtype_name == "bf16" ? mla::io::dtype::BF16 : mla::io::dtype::F32;
    if (!export_dir.empty()) {
      // The latent norm's constant weight: the RMS a latent has on the calibration tokens (padded rank).
      mla::model::deepseek_export_options eo;
      eo.latent_norm = !no_latent_norm;
      eo.type = type;
      int r_max = 0;
      for (int l : conv.ranks) r_max = std::max(r_max, l);
      for (int l = 0; l < cfg.n_layers; ++l) {
        const auto& layer = conv.weights.layers[static_cast<std::size_t>(l)].mla;
        const double ms = layer.latent_rank > 0 ? mla::convert::latent_mean_square(
                                                      layer, stats.layers[static_cast<std::size_t>(l)].augmented_second_moment())
                                                : 1.0;
        eo.latent_rms.push_back(std::sqrt(ms / std::max(1, r_max)));
      }
      std::fprintf(stderr, "writing %s\n", export_dir.c_str());
      mla::model::save_deepseek_v3(export_dir, conv.config, conv.weights, eo, files);
    }
    std::fprintf(stderr, "writing %s\n", out_dir.c_str());
    try {
      mla::model::save_checkpoint(out_dir, conv.config, conv.weights, files, type);
    } catch (...) {
      std::error_code ec;
      if (!export_dir.empty()) fs::remove_all(export_dir, ec);  // no partial output: the export goes too
      throw;
    }
    std::printf("wrote %s\n", out_dir.c_str());
    if (!export_dir.empty())
      std::printf("wrote %s (DeepSeek-V3 layout, %s)\n", export_dir.c_str(),
                  no_latent_norm ? "no kv_a_layernorm: exact, needs an engine that skips the latent norm"
                  : o.latent_norm ? "kv_a_layernorm from the converted layers (--latent-norm): exact"
                                  : "kv_a_layernorm with a constant weight: NOT exact, measure it with mla-eval");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-convert: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
