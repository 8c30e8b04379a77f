// mla-convert's command line: one option per conversion_recipe field (mla/convert/recipe.hpp), in --help order.
// A new flag is one more add_option line in add_recipe_flags; the few that are not a recipe field as typed (the
// --refit-mode / --distill-mode names, --e2e-cache-gib in GiB) parse into recipe_flag_state, and
// finish_recipe_flags writes them into the recipe once CLI11 has parsed.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstddef>
#include <string>

#include <mla/convert/recipe.hpp>

#include "../common/cli.hpp"

namespace mla_examples {

// What the flags parse into before it becomes a recipe field.
struct recipe_flag_state {
  std::string refit_mode = "teacher", distill_mode = "teacher";  // --refit-mode, --distill-mode
  double e2e_cache_gib = 0;                                      // --e2e-cache-gib
  std::string e2e_train = "attention";                           // --e2e-train
  std::string report_dir;                                        // --report (inspect/conversion_report.hpp)
};

// Every conversion flag, bound to `r` (whose values are the defaults --help shows) and `s`.
inline void add_recipe_flags(CLI::App& app, mla::convert::conversion_recipe& r, recipe_flag_state& s) {
  app.add_option("--model", r.model_path, "GGUF file or checkpoint directory")->required();
  app.add_option("--method", r.layer.factor.method, "joint K/V factorisation")
      ->transform(names(mla::convert::factor_method_names()))
      ->default_str(mla::convert::to_string(r.layer.factor.method));
  app.add_option("--rope", r.layer.rope.strategy,
                 "how the shared RoPE key is cut (TransMLA rorope; MHA2MLA selections; attention: RoRoPE directions "
                 "placed by the output change their cut causes, best with d_R = head_dim and a large latent, "
                 "calibrated on windows as long as the evaluation context)")
      ->transform(names(mla::convert::rope_strategy_names()))
      ->default_str(mla::convert::to_string(r.layer.rope.strategy));
  app.add_option("--rope-dim", r.layer.rope.rope_dim, "decoupled RoPE width d_R (even)")->check(integer());
  app.add_option("--key-weight", r.layer.factor.key_weight, "attention_aware: weight of the score (key) term")
      ->check(number());
  app.add_option("--moment", r.layer.factor.moment,
                 "input moment of the factorisation: tokens, or attention (the second moment of the source "
                 "attention's averages of the inputs, what a value error actually reaches the output through)")
      ->transform(names(mla::convert::moment_names()))
      ->default_str(name_of(mla::convert::moment_names(), r.layer.factor.moment));
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
      ->transform(names(mla::convert::allocation_names()))
      ->default_str(mla::convert::to_string(r.allocation));
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
  app.add_option("--refit-mode", s.refit_mode,
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
  app.add_option("--distill-mode", s.distill_mode,
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
                 "once (0: off); layers left GQA and the MLPs (SwiGLU or MoE) stay frozen")
      ->check(integer(0));
  app.add_option("--e2e-lr", r.e2e.learning_rate, "end-to-end step, relative to each tensor's RMS")
      ->check(number(0, HUGE_VAL, true));
  app.add_option("--e2e-batch", r.e2e.batch_windows, "token windows per end-to-end step")->check(integer(1));
  app.add_option("--e2e-tokens", r.e2e_tokens,
                 "calibration tokens the end-to-end distillation uses, from the start of the calibration stretch "
                 "(a fifth held out)")
      ->check(integer(1));
  s.e2e_cache_gib = double(r.e2e.teacher_cache_bytes) / double(1 << 30);
  app.add_option("--e2e-cache-gib", s.e2e_cache_gib,
                 "memory (GiB) for the source model's next-token distributions on the end-to-end training windows "
                 "(vocab x 4 bytes per token): computed once when they fit, else again at every step")
      ->check(number(0, 1024));
  app.add_option("--e2e-temperature", r.e2e.temperature,
                 "temperature T of the end-to-end loss, T^2 KL(softmax(z_source / T) || softmax(z / T)); the "
                 "held-out KL that picks the returned model is at T = 1")
      ->check(number(0, 1e3, true));
  app.add_option("--e2e-train", s.e2e_train,
                 "what the end-to-end distillation trains: latent (the latent down/up projections, the RoPE-key "
                 "projection and the latent norm) or attention (those and the q and o projections)")
      ->check(one_of({"attention", "latent"}));
  app.add_option("--e2e-teacher-top-k", r.e2e.teacher_top_k,
                 "keep the source model's k most probable next tokens per position and the rest's total (k x 8 + 4 "
                 "bytes per token instead of vocab x 4; the loss is the KL over those k + 1 buckets, the held-out "
                 "KL too); 0: the whole distribution")
      ->check(integer(0));
  app.add_flag("--e2e-train-sinks", r.e2e.train_sinks,
               "the end-to-end distillation also trains the converted layers' attention sinks (gpt-oss)");
  app.add_option("--e2e-checkpoint-every", r.e2e_checkpoint_every,
                 "save the end-to-end stage's state every this many steps (0: never) to <out>.e2e-state.safetensors, "
                 "atomically; the same command run again continues from it (--force: starts over); removed once "
                 "--out is written")
      ->check(integer(0));
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
  app.add_option("--export-width", r.export_width,
                 "widths of --export deepseek_v3: converted, or vllm (the latent zero-padded to 256 or 512 and the "
                 "RoPE key to 64, the widths stock vLLM's MLA backends cache: exact, and the cache grows to them)")
      ->check(one_of({"converted", "vllm"}));
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
  for (const std::string& name : mla::convert::conversion_recipe::options_replaced_by_from()) from->excludes(name);
  app.add_option("--report", s.report_dir,
                 "also write the conversion's report into this new directory: index.html, report.json and pictures "
                 "(PNG, SVG; drawn when gnuplot is installed)");
}

// After parsing: the mode names and the cache size into `r` (an unset --refit-mode stays unset: recipe.hpp's
// refit_mode_used picks it from --refit-drift).
inline void finish_recipe_flags(const CLI::App& app, mla::convert::conversion_recipe& r, const recipe_flag_state& s) {
  using mla::convert::stage_mode;
  r.e2e.teacher_cache_bytes = static_cast<std::size_t>(s.e2e_cache_gib * double(1 << 30));
  r.e2e.train_query = r.e2e.train_output = s.e2e_train == "attention";
  if (app.count("--refit-mode") > 0)
    r.refit_mode = s.refit_mode == "sequential" ? stage_mode::sequential : stage_mode::teacher;
  r.distill_mode = s.distill_mode == "sequential" ? stage_mode::sequential : stage_mode::teacher;
}

}  // namespace mla_examples
