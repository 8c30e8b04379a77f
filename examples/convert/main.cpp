// mla-convert: GQA -> MLA conversion of a Llama-family or gpt-oss model into the project's MLA checkpoint format
// (config.json with the "mla" fields + safetensors + tokenizer), with the per-layer stage report. A gpt-oss
// directory keeps its sliding-window layers GQA unless --include-sliding or --layers asks otherwise, and its
// MXFP4 experts are copied byte for byte (save_checkpoint.hpp). Flags -> conversion_recipe (recipe.hpp) ->
// validate -> load -> run_conversion (run.hpp) -> print_report -> save.
//
//   mla-convert --model SmolLM2-135M-Instruct.Q4_1.gguf --method attention_aware --kv-budget 0.5 --out smollm2-mla
//   mla-eval --model smollm2-mla --text ../shared/data/wikitext-2-raw-test.txt --ctx 2048
//   mla-convert --model SmolLM2-135M-Instruct.Q4_1.gguf --from smollm2-mla --e2e-steps 300 --e2e-lr 3e-4 --out e2e
#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>
#include <optional>
#include <mla/convert/calibration_text.hpp>
#include <mla/convert/recipe.hpp>
#include <mla/convert/run.hpp>
#include <mla/model/load.hpp>
#include <mla/util/signal_cleanup.hpp>
#include <mla/util/progress_bar.hpp>
#include <string>
#include <vector>
#include "../common/cli.hpp"
#include "../common/environment.hpp"

namespace {
using mla_examples::integer;
using mla_examples::name_of;
using mla_examples::names;
using mla_examples::number;
using mla_examples::one_of;

// The conversion's progress on stderr: a bar per stage, the lines as they come.
struct bar_progress : mla::convert::conversion_progress {
  std::optional<mla::util::progress_bar> bar;
  void begin(const std::string& s, double total, const std::string& unit) override { bar.emplace(s, total, unit); }
  void update(double done) override { bar->update(done); }
  void end() override { bar->finish(), bar.reset(); }
  void info(const std::string& line) override { std::fprintf(stderr, "%s\n", line.c_str()); }
  void note(const std::string& line) override { std::fprintf(stderr, "mla-convert: note: %s\n", line.c_str()); }
};
}  // namespace

int main(int argc, char** argv) {
  using namespace mla::convert;
  CLI::App app{"Convert a GQA model (GGUF file or checkpoint directory) to MLA"};
  mla_examples::start(app, "mla-convert");
  conversion_recipe r;
  r.calib_path = default_calibration_text(mla_examples::environment("MLA_DATA_DIR"));
  std::string distill_mode = "teacher", refit_mode = "teacher";
  app.add_option("--model", r.model_path, "GGUF file or checkpoint directory")->required();
  app.add_option("--method", r.layer.factor.method, "joint K/V factorisation")
      ->transform(names(factor_method_names()))
      ->default_str(to_string(r.layer.factor.method));
  app.add_option("--rope", r.layer.rope.strategy,
                 "how the shared RoPE key is cut (TransMLA rorope; MHA2MLA selections; attention: RoRoPE directions "
                 "placed by the output change their cut causes, best with d_R = head_dim and a large latent, "
                 "calibrated on windows as long as the evaluation context)")
      ->transform(names(rope_strategy_names()))
      ->default_str(to_string(r.layer.rope.strategy));
  app.add_option("--rope-dim", r.layer.rope.rope_dim, "decoupled RoPE width d_R (even)")->check(integer());
  app.add_option("--key-weight", r.layer.factor.key_weight, "attention_aware: weight of the score (key) term")
      ->check(number());
  app.add_option("--moment", r.layer.factor.moment,
                 "input moment of the factorisation: tokens, or attention (the second moment of the source "
                 "attention's averages of the inputs, what a value error actually reaches the output through)")
      ->transform(names(moment_names()))
      ->default_str(name_of(moment_names(), r.layer.factor.moment));
  app.add_flag("--centre", r.layer.factor.centre,
               "factor the centred activations: the key mean (invisible to softmax) is dropped and the value mean "
               "folds exactly into o_proj's bias (layers without sinks; not exportable to DeepSeek-V3); with --moment "
               "attention the mean is that of the attention averages");
  app.add_option("--freqfold", r.layer.rope.freqfold, "RoRoPE FreqFold F (0: smallest valid)")->check(integer(0));
  CLI::Option* budget =
      app.add_option("--kv-budget", r.kv_budget,
                     "KV cache budget of the converted layers: a fraction of the original in (0, 1], or bytes per "
                     "token (float32 elements, summed over converted layers) when > 1; required unless --rank or "
                     "--full-rank is given")
          ->check(number());
  CLI::Option* rank =
      app.add_option("--rank", r.layer.rank, "latent rank in every layer, instead of --kv-budget")->check(integer(0));
  app.add_flag("--full-rank", r.full_rank,
                                        "convert at full rank on purpose (no --kv-budget, no --rank): the RoPE split "
                                        "alone, which does not shrink the cache")
                               ->excludes(budget)
                               ->excludes(rank);
  app.add_option("--allocation", r.allocation, "rank allocation under --kv-budget")
      ->transform(names(allocation_names()))
      ->default_str(to_string(r.allocation));
  app.add_flag("--any-rank", r.any_rank, "allow ranks outside mla::supported_shapes (multiples of 32)");
  app.add_option("--layers", r.layers,
                 "layers to convert (default: every full-attention layer; sliding-window layers stay GQA)");
  app.add_flag("--include-sliding", r.include_sliding,
               "with no --layers: convert the sliding-window layers too (gpt-oss: their cache is only the window)");
  app.add_option("--calib", r.calib_path, "calibration text: plain text, or .jsonl with a \"text\" field")
      ->check(CLI::ExistingFile);
  app.add_option("--calib-tokens", r.calib_tokens, "calibration tokens")->check(integer(1));
  app.add_option("--heldout-tokens", r.heldout_tokens, "held-out tokens for the stage report (0: no report)")
      ->check(integer(0));
  app.add_option("--window,--ctx", r.window, "calibration window length in tokens (--ctx: the same, mla-eval's name)")
      ->check(integer(8, 1 << 16));
  app.add_flag("--refit", r.refit, "closed-form ridge refit of the value up-projection");
  app.add_option("--refit-mode", refit_mode,
                 "teacher: each layer refitted on the source model's inputs; sequential: in layer order, the converted "
                 "layer on the converted model's own inputs, towards the source outputs (implies --refit)")
      ->check(one_of({"teacher", "sequential"}));
  app.add_option("--refit-tokens", r.refit_tokens, "calibration tokens the refit uses")->check(integer(1));
  app.add_flag("--refit-o-proj", r.refit_opt.output_projection,
               "after the w_uv refit, also refit o_proj across heads in closed form (implies --refit)");
  app.add_option("--refit-drift", r.refit_opt.drift_weight,
                 "sequential refit: the o_proj target also gets this weight times the residual-stream drift before "
                 "the layer, so the layer cancels what the earlier ones left (implies --refit-mode sequential "
                 "--refit-o-proj; 0: off)")
      ->check(number(0, 1));
  app.add_option("--distill-steps", r.distill.steps,
                 "layer-wise distillation through the softmax: Adam steps per layer (0: off)")
      ->check(integer(0));
  app.add_option("--distill-tokens", r.distill_tokens, "calibration tokens the distillation uses (a fifth held out)")
      ->check(integer(1));
  app.add_option("--distill-lr", r.distill.learning_rate, "distillation step, relative to each tensor's RMS")
      ->check(number(0, HUGE_VAL, true));
  app.add_option("--distill-mode", distill_mode,
                 "teacher: each layer on the source model's inputs; sequential: in layer order on the converted "
                 "model's own inputs, towards the source outputs")
      ->check(one_of({"teacher", "sequential"}));
  app.add_option("--distill-window", r.distill_window,
                 "window length of the distillation in tokens (0: --window); shorter windows train faster")
      ->check(integer(0, 1 << 16));
  app.add_option("--distill-batch", r.distill.batch_windows, "calibration windows per distillation step")
      ->check(integer(1));
  app.add_option("--e2e-steps", r.e2e.steps,
                 "end-to-end distillation after every other stage: Adam steps on the KL between the source model's "
                 "next-token distributions and the converted model's, training every converted attention layer at "
                 "once (0: off; needs every layer converted and a SwiGLU model)")
      ->check(integer(0));
  app.add_option("--e2e-lr", r.e2e.learning_rate, "end-to-end step, relative to each tensor's RMS")
      ->check(number(0, HUGE_VAL, true));
  app.add_option("--e2e-batch", r.e2e.batch_windows, "token windows per end-to-end step")->check(integer(1));
  app.add_option("--e2e-tokens", r.e2e_tokens,
                 "calibration tokens the end-to-end distillation uses, from the start of the calibration stretch "
                 "(a fifth held out)")
      ->check(integer(1));
  double e2e_cache_gib = double(r.e2e.teacher_cache_bytes) / double(1 << 30);
  app.add_option("--e2e-cache-gib", e2e_cache_gib,
                 "memory (GiB) for the source model's next-token distributions on the end-to-end training windows "
                 "(vocab x 4 bytes per token): computed once when they fit, else again at every step")
      ->check(number(0, 1024));
  app.add_option("--e2e-window", r.e2e_window, "window length of the end-to-end distillation in tokens (0: --window)")
      ->check(integer(0, 1 << 16));
  app.add_option("--report-context", r.report_context, "context length of the KV-cache summary line")
      ->check(integer(1));
  app.add_option("--out", r.out_dir, "output checkpoint directory (must not exist)")->required();
  app.add_option("--dtype", r.dtype, "weights in the checkpoint")->check(one_of({"f32", "bf16"}));
  app.add_option("--export", r.export_kind,
                 "also export (every layer converted, no biases): deepseek_v3 (Hugging Face DeepseekV3ForCausalLM "
                 "directory) or gguf (llama.cpp's deepseek2 file, tokenizer from the GGUF --model)")
      ->check(one_of({"deepseek_v3", "gguf"}));
  app.add_option("--export-out", r.export_dir,
                 "path of the export (default: <out>-deepseek_v3, or <out>-deepseek2.gguf for --export gguf)");
  app.add_option("--export-type", r.export_type, "tensor type of --export gguf (norms stay f32)")
      ->check(one_of({"f32", "f16", "q8_0"}));
  app.add_flag("--no-latent-norm", r.no_latent_norm,
               "export without kv_a_layernorm (exact, but stock DeepSeek code expects the norm)");
  app.add_flag("--latent-norm", r.latent_norm,
               "give every converted layer DeepSeek's latent RMSNorm (weight: the latent's RMS on the calibration "
               "tokens) before the distillation, which then trains through it; the DeepSeek-V3 export is then exact "
               "for what was converted")
      ->excludes("--no-latent-norm");
  app.add_flag("--force", r.force,
               "remove what an interrupted or killed run left beside --out (<out>.tmp.<pid>) before starting");
  CLI::Option* from =
      app.add_option("--from", r.from_dir,
                     "resume: start from a checkpoint that mla-convert wrote for this --model (e.g. after layer-wise "
                     "distillation) "
                     "instead of converting again; the end-to-end stage (--e2e-steps) continues from it")
          ->check(CLI::ExistingDirectory);
  for (const std::string& name : conversion_recipe::options_replaced_by_from()) from->excludes(name);
  MLA_CLI_PARSE(app, argc, argv);
  const mla::util::run_summary summary("mla-convert", mla::util::threads_for_free_cores());  // last line
  r.e2e.teacher_cache_bytes = static_cast<std::size_t>(e2e_cache_gib * double(1 << 30));
  if (app.count("--refit-mode") > 0)
    r.refit_mode = refit_mode == "sequential" ? stage_mode::sequential : stage_mode::teacher;
  r.distill_mode = distill_mode == "sequential" ? stage_mode::sequential : stage_mode::teacher;
  try {
    r.validate();
    if (r.force)
      for (const std::string& p : r.remove_stale_outputs())
        std::fprintf(stderr, "mla-convert: removed '%s' (--force)\n", p.c_str());
    mla::check(!r.calib_path.empty(), "--calib: no calibration text given and the default ",
               "../shared/data/wikitext-2-valid-tokenized.txt (or $MLA_DATA_DIR) is absent");
    std::fprintf(stderr, "loading %s\n", r.model_path.c_str());
    const mla::model::loaded_model m =
        mla::model::load_model(r.model_path, mla_examples::o200k_vocabulary_from_environment());
    const mla::model::model_config& cfg = m.model.config();
    mla::check(m.has_tokenizer, "--model: '", r.model_path, "' has no usable tokenizer (", m.tokenizer_note,
               "); calibration needs one");
    std::optional<conversion_start<float>> start;  // --from: the checkpoint the stages continue from
    if (r.resumes()) {
      std::fprintf(stderr, "loading %s\n", r.from_dir.c_str());
      const mla::model::loaded_model s = mla::model::load_model(r.from_dir);
      start = conversion_start<float>{s.model.config(), s.model.weights()};
    }
    r.validate(cfg, start ? &start->config : nullptr);
    const auto ids32 = m.tokenizer.encode(read_calibration_text(r.calib_path, r.calibration_text_bytes()));
    const std::vector<int> ids(ids32.begin(), ids32.end());
    bar_progress progress;
    const conversion_result<float> res = start ? run_conversion(m.model, ids, r, progress, std::move(*start))
                                               : run_conversion(m.model, ids, r, progress);
    print_report(stdout, r, cfg, res);
    std::fflush(stdout);  // the summary table ahead of the "writing" lines when both streams go to one file
    save_conversion(r, res, mla::model::checkpoint_tokenizer_files(r.model_path), progress);
    std::printf("wrote %s\n", r.out_dir.c_str());
    if (r.exports()) std::printf("wrote %s (%s)\n", r.export_path().c_str(), r.export_description().c_str());
    mla::util::check_stdout();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-convert: error: %s\n", e.what());
    return mla::util::exit_failure;
  }
  return mla::util::exit_ok;
}
