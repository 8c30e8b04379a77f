// mla::convert run_conversion: a whole conversion from a validated recipe (recipe.hpp), the stages in order:
//   calibration walks  the source decoder over the plan's windows: statistics, held-out inputs, fit inputs,
//                      the distillation's own inputs
//   factorise          convert_model (pipeline.hpp), with the teacher-forced refit and distillation when asked
//   refit              refit_sequential, when --refit-mode sequential
//   distill            distill_sequential, when --distill-mode sequential
//   e2e                distill_model (distill_model.hpp), when --e2e-steps > 0
//   export             the latent RMS per layer that the DeepSeek-V3 export's constant norm weight needs
// or, resumed from a converted checkpoint (--from), resume_conversion then the end-to-end stage. The result
// holds the conversion, its stage report keyed by `stage`, and what the end-to-end stage measured;
// print_report() writes mla-convert's summary, save_conversion() its outputs.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "mla/convert/calibration.hpp"
#include "mla/convert/distill_model.hpp"
#include "mla/convert/distill_state.hpp"
#include "mla/convert/latent_norm.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/convert/recipe.hpp"
#include "mla/convert/resume.hpp"
#include "mla/core/error.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/deepseek2_gguf.hpp"
#include "mla/model/deepseek_v3.hpp"
#include "mla/model/model_config.hpp"
#include "mla/model/save_checkpoint.hpp"
#include "mla/util/progress_bar.hpp"
#include "mla/util/resources.hpp"

namespace mla::convert {

// The rows of the stage report (pipeline.hpp's header comment, resume.hpp's "checkpoint", distill_model.hpp's
// "e2e"), each the per-layer relative error of attention outputs on the held-out inputs after that stage.
enum class stage { checkpoint, exact, rope_split, factorized, refit, refit_o, latent_norm, distill, e2e };

inline const char* to_string(stage s) {
  switch (s) {
    case stage::checkpoint:
      return "checkpoint";
    case stage::exact:
      return "exact";
    case stage::rope_split:
      return "rope_split";
    case stage::factorized:
      return "factorized";
    case stage::refit:
      return "refit";
    case stage::refit_o:
      return "refit_o";
    case stage::latent_norm:
      return "latent_norm";
    case stage::distill:
      return "distill";
    case stage::e2e:
      return "e2e";
  }
  return "?";
}

inline stage stage_from_string(const std::string& name) {
  for (stage s : {stage::checkpoint, stage::exact, stage::rope_split, stage::factorized, stage::refit, stage::refit_o,
                  stage::latent_norm, stage::distill, stage::e2e})
    if (name == to_string(s)) return s;
  throw error("mla::convert::stage_from_string: unknown stage report row '" + name + "'");
}

// The stage report: one row per stage that ran, in the order they ran.
struct stage_report {
  struct row {
    stage id;
    std::vector<double> per_layer;  // [n_layers], 0 for layers left GQA
  };
  std::vector<row> rows;

  static stage_report from(const std::vector<stage_errors>& report) {
    stage_report r;
    for (const stage_errors& e : report) r.rows.push_back({stage_from_string(e.stage), e.per_layer});
    return r;
  }
  bool has(stage s) const { return find(s) != nullptr; }
  // The row of stage s; throws when that stage did not run (or ran without held-out tokens).
  const std::vector<double>& at(stage s) const {
    const row* r = find(s);
    check(r != nullptr, "mla::convert::stage_report: no '", to_string(s), "' row");
    return r->per_layer;
  }

 private:
  const row* find(stage s) const {
    for (const row& r : rows)
      if (r.id == s) return &r;
    return nullptr;
  }
};

// Progress of run_conversion: a stage with a known amount of work (a progress bar), and lines for the user.
// Every member does nothing by default.
class conversion_progress {
 public:
  virtual ~conversion_progress() = default;
  // A stage starts: `total` units (tokens, layers, steps) are to be done.
  virtual void begin(const std::string& /*stage*/, double /*total*/, const std::string& /*unit*/) {}
  virtual void update(double /*done*/) {}  // the absolute count done
  virtual void end() {}
  virtual void info(const std::string& /*line*/) {}  // what runs ("converting 30 layers (...)")
  virtual void note(const std::string& /*line*/) {}  // a setting the calibration stretch capped
};

inline conversion_progress& silent_progress() {
  static conversion_progress p;
  return p;
}

// A tool's progress on stderr: a util::progress_bar per stage, info lines as they come, notes as
// "<tool>: note: <line>". When a stage ends, a line with its wall time and the memory (resident now, and the
// peak so far), which at full size says which stage binds.
class stderr_progress : public conversion_progress {
 public:
  explicit stderr_progress(std::string tool) : tool_(std::move(tool)) {}
  void begin(const std::string& stage, double total, const std::string& unit) override {
    bar_.emplace(stage, total, unit);
    stage_ = stage;
    start_ = std::chrono::steady_clock::now();
  }
  void update(double done) override { bar_->update(done); }
  void end() override {
    bar_->finish(), bar_.reset();
    took(stage_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  // "<tool>: <what> took <seconds> s; resident <now> GiB, peak <so far> GiB" (also for work without a bar).
  void took(const std::string& what, double seconds) const {
    constexpr double gib = 1024.0 * 1024.0 * 1024.0;
    std::fprintf(stderr, "%s: %s took %.1f s; resident %.2f GiB, peak %.2f GiB\n", tool_.c_str(), what.c_str(), seconds,
                 double(util::current_rss_bytes()) / gib, double(util::peak_rss_bytes()) / gib);
  }
  void info(const std::string& line) override { std::fprintf(stderr, "%s\n", line.c_str()); }
  void note(const std::string& line) override { std::fprintf(stderr, "%s: note: %s\n", tool_.c_str(), line.c_str()); }

 private:
  std::string tool_;
  std::optional<util::progress_bar> bar_;
  std::string stage_;
  std::chrono::steady_clock::time_point start_;
};

// A converted checkpoint to resume from (--from): its config and weights.
template <class T>
struct conversion_start {
  model::model_config config;
  model::model_weights<T> weights;
};

template <class T>
struct conversion_result {
  model_conversion<T> conversion;  // config, weights, ranks, per-layer distillation reports (conversion.distill)
  stage_report report;             // rows of conversion.report, keyed by stage
  std::vector<int> layers;         // the converted layers
  long heldout_tokens = 0;         // tokens behind the report
  distill_report e2e;              // the end-to-end stage's held-out KL (nats per token), when it ran
  std::vector<std::pair<int, double>> e2e_curve;  // (step, held-out KL) at each validation
  int e2e_window = 0;
  // [n_layers] sqrt(E||c||^2 / r_max) on the calibration tokens: the DeepSeek-V3 export's constant latent norm
  // weight (model::deepseek_export_options::latent_rms); empty when the recipe does not export.
  std::vector<double> latent_rms;
};

// Whether every layer of the converted model carries its own latent norm (what recipe.export_description asks).
template <class T>
bool own_latent_norms(const conversion_result<T>& res) {
  const auto& layers = res.conversion.weights.layers;
  return !layers.empty() &&
         std::all_of(layers.begin(), layers.end(), [](const auto& lw) { return lw.mla.latent_norm.size() != 0; });
}

namespace detail {

// Runs the decoder over the windows with the observer, reporting tokens done.
template <class T>
void walk_windows(const model::decoder<T>& dec, const std::vector<std::vector<int>>& windows, model::observer<T>& obs,
                  conversion_progress& progress, const char* label) {
  progress.begin(label, double(windows.size() * windows.front().size()), "tok");
  double done = 0;
  for (const auto& w : windows) {
    auto s = dec.new_session();
    dec.hidden_states(s, w, &obs);
    progress.update(done += double(w.size()));
  }
  progress.end();
}

// The recipe's options of convert_model for the converted layers `todo` and the plan.
inline pipeline_options pipeline_options_of(const conversion_recipe& r, const model::model_config& source,
                                            const std::vector<int>& todo, const calibration_plan& plan) {
  pipeline_options o;
  o.layer = r.layer;
  o.kv_budget = r.kv_budget_elements(source, todo);
  o.allocation = r.allocation;
  o.require_supported_shape = !r.any_rank;
  o.layers = todo;
  o.refit = r.refit_used();
  o.refit_opt = r.refit_opt;
  o.refit_opt.output_projection = r.refit_o_proj_used();
  o.refit_opt.max_windows = plan.refit_windows;
  o.distill = r.distill;
  o.latent_norm = r.latent_norm;
  return o;
}

template <class T>
conversion_result<T> run_conversion_impl(const model::decoder<T>& source, const std::vector<int>& tokens,
                                         const conversion_recipe& r, conversion_progress& progress,
                                         conversion_start<T>* start) {
  const model::model_config& cfg = source.config();
  r.validate_options();
  r.validate(cfg, start ? &start->config : nullptr);
  const bool resumed = start != nullptr;
  conversion_result<T> out;
  out.layers = r.conversion_layers(cfg, start ? &start->config : nullptr);
  const std::vector<int>& todo = out.layers;
  const calibration_plan plan(r, tokens, resumed);
  for (const std::string& n : plan.notes) progress.note(n);
  out.heldout_tokens = plan.heldout_tokens();
  out.e2e_window = plan.e2e_window;

  using inputs = std::vector<std::vector<ref::matrix<T>>>;  // [n_layers][windows] of [tokens, hidden]
  calibration_stats stats;  // what the conversion stages and the export's latent norm read
  if (!resumed || r.exports()) {
    calibration_observer<T> obs(cfg.n_layers);
    walk_windows(source, plan.calibration, obs, progress, "calibration");
    stats = obs.take();
  }
  inputs held_inputs, fit_inputs, own_distill_inputs;
  if (!plan.heldout.empty()) {
    input_recorder<T> rec(cfg.n_layers);
    walk_windows(source, plan.heldout, rec, progress, "held-out");
    held_inputs = rec.take();
  }
  if (!plan.fit.empty()) {
    input_recorder<T> rec(cfg.n_layers);
    walk_windows(source, plan.fit, rec, progress, "fit inputs");
    fit_inputs = rec.take();
  }
  if (plan.own_distill_windows) {
    input_recorder<T> rec(cfg.n_layers);
    walk_windows(source, plan.distill, rec, progress, "distillation inputs");
    own_distill_inputs = rec.take();
  }
  const inputs* held = plan.heldout.empty() ? nullptr : &held_inputs;
  const inputs& distill_inputs = plan.own_distill_windows ? own_distill_inputs : fit_inputs;

  const bool distill = r.distill_used();
  const bool distill_sequentially = distill && r.distill_mode == stage_mode::sequential;
  const pipeline_options o = pipeline_options_of(r, cfg, todo, plan);
  const bool refit_sequentially = o.refit && r.refit_mode_used() == stage_mode::sequential;
  model_conversion<T>& conv = out.conversion;
  const double n_todo = double(todo.size());
  if (resumed) {
    progress.info("resuming from " + r.from_dir + " (" + std::to_string(todo.size()) + " MLA layers)");
    conv = resume_conversion(cfg, source.weights(), start->config, std::move(start->weights), held);
  } else {
    char line[256];
    std::snprintf(line, sizeof line, "converting %zu layers (%s, %s d_R = %d, %s)", todo.size(),
                  to_string(o.layer.factor.method), to_string(o.layer.rope.strategy), o.layer.rope.rope_dim,
                  to_string(o.allocation));
    progress.info(line);
    auto on_layer = [&](int done, int) { progress.update(done); };
    pipeline_options first = o;
    if (distill_sequentially) first.distill.steps = 0;  // distilled below, in layer order
    if (refit_sequentially) first.refit = false;        // refitted below, in layer order
    // A bar per phase of convert_model (the RoPE placement of every layer, then the factorisations and what
    // follows them), moved within a layer after each of its expensive steps.
    std::string phase;
    first.on_step = [&](const char* name, double done, int total) {
      if (phase != name) {
        if (!phase.empty()) progress.end();
        phase = name;
        const bool distills_here = distill && !distill_sequentially && phase == "converting";
        progress.begin(distills_here ? "converting + distilling" : phase, total, "layers");
      }
      progress.update(done);
    };
    conv = convert_model(cfg, source.weights(), stats, first, held, plan.fit.empty() ? nullptr : &fit_inputs,
                         distill ? &distill_inputs : nullptr);
    progress.end();
    if (refit_sequentially) {
      progress.begin("refitting (sequential)", n_todo, "layers");
      refit_sequential(source.weights(), conv, plan.fit, fit_inputs, o.refit_opt, held, on_layer);
      progress.end();
    }
    if (distill_sequentially) {
      progress.begin("distilling (sequential)", n_todo, "layers");
      distill_sequential(source.weights(), conv, plan.distill, distill_inputs, o.distill, held, on_layer);
      progress.end();
    }
  }
  // What only the stages above read is dropped before the end-to-end stage, which at full size needs the room
  // (gpt-oss-20b: the 24 layers' input moments alone are ~1.6 GB); the export still reads the statistics.
  if (!r.exports()) stats = calibration_stats{};
  fit_inputs = inputs{}, own_distill_inputs = inputs{};
  if (r.e2e.steps > 0) {
    // The stage's state is saved beside --out every --e2e-checkpoint-every steps; a saved state of this same
    // run (a rerun of a stopped command) is continued from, one of another run refused (--force: start over).
    distill_checkpointing<T> ckpt;
    distill_model_state<T> saved;
    const std::string state_path = r.e2e_state_path();
    if (!state_path.empty() && r.e2e_checkpoint_every > 0) {
      ckpt.every = r.e2e_checkpoint_every;
      ckpt.save = [&](const distill_model_state<T>& st) { save_distill_state(state_path, st); };
    }
    // What a write of the state killed midway left is only scratch (the state it replaced is whole): removed.
    if (!state_path.empty())
      for (const std::string& p : util::remove_stale_temporaries("--out (its end-to-end state)", state_path))
        progress.note("removed '" + p + "', a killed write of the end-to-end state");
    if (!state_path.empty() && !r.force && std::filesystem::exists(state_path)) {
      saved = load_distill_state<T>(state_path);
      check(saved.fingerprint == distill_model_fingerprint(conv.weights, plan.e2e, r.e2e), "'", state_path,
            "' is the saved end-to-end state of another run (other options, calibration windows or starting "
            "weights): remove it, or pass --force to start the stage over");
      ckpt.resume = &saved;
      progress.note("continuing the end-to-end distillation at step " + std::to_string(saved.step) + " of " +
                    std::to_string(r.e2e.steps) + " from '" + state_path + "'");
    }
    // A resumed stage's bar counts the steps left (a jump to the saved step would inflate the rate and the ETA).
    const int first = ckpt.resume ? saved.step : 0;
    progress.begin("distilling end to end", double(r.e2e.steps - first), "steps");
    auto on_step = [&](int step, int, double) { progress.update(step - first); };
    distill_model(source, conv, plan.e2e, r.e2e, &out.e2e, on_step, held, ckpt);
    out.e2e_curve = out.e2e.curve;
    progress.end();
  }
  if (r.exports()) {
    // The latent norm's constant weight: the RMS a latent has on the calibration tokens (padded rank).
    int r_max = 0;
    for (int l : conv.ranks) r_max = std::max(r_max, l);
    for (int l = 0; l < cfg.n_layers; ++l) {
      const auto li = static_cast<std::size_t>(l);
      const auto& layer = conv.weights.layers[li].mla;
      const double ms =
          layer.latent_rank > 0 ? latent_mean_square(layer, stats.layers[li].augmented_second_moment()) : 1.0;
      out.latent_rms.push_back(std::sqrt(ms / std::max(1, r_max)));
    }
  }
  out.report = stage_report::from(conv.report);
  return out;
}

}  // namespace detail

// Converts the source model (its decoder) by the recipe on a calibration token stream (the recipe's --calib
// text, tokenised; the plan's windows are cut from it). The recipe is validated again here.
template <class T>
conversion_result<T> run_conversion(const model::decoder<T>& source, const std::vector<int>& tokens,
                                    const conversion_recipe& recipe,
                                    conversion_progress& progress = silent_progress()) {
  return detail::run_conversion_impl<T>(source, tokens, recipe, progress, nullptr);
}

// Resumes from a converted checkpoint of the source model (recipe.from_dir names it in messages): the
// conversion stages are skipped; the end-to-end stage and the export preparation run as above.
template <class T>
conversion_result<T> run_conversion(const model::decoder<T>& source, const std::vector<int>& tokens,
                                    const conversion_recipe& recipe, conversion_progress& progress,
                                    conversion_start<T> start) {
  return detail::run_conversion_impl<T>(source, tokens, recipe, progress, &start);
}

// mla-convert's summary on `out`: the distillation reports, the end-to-end curve, the stage report table and
// the KV cache before and after.
template <class T>
void print_report(std::FILE* out, const conversion_recipe& r, const model::model_config& source,
                  const conversion_result<T>& res) {
  const model_conversion<T>& conv = res.conversion;
  if (r.distill_used()) {
    std::fprintf(out,
                 "distillation (%s, %d steps per layer, lr %g, %d windows per step): own held-out loss before -> "
                 "after, best step\n",
                 to_string(r.distill_mode), r.distill.steps, r.distill.learning_rate, r.distill.batch_windows);
    for (int l : res.layers) {
      const auto& d = conv.distill[static_cast<std::size_t>(l)];
      std::fprintf(out, "  layer %2d: %.4e -> %.4e (step %d)\n", l, d.heldout_before, d.heldout_after, d.best_step);
    }
  }
  if (r.e2e.steps > 0)
    std::fprintf(out,
                 "end-to-end distillation (%d steps, lr %g, %d windows of %d tokens per step, temperature %g, "
                 "training %s, teacher %s): held-out KL to the source %.5f -> %.5f nats per token (step %d)\n",
                 r.e2e.steps, r.e2e.learning_rate, r.e2e.batch_windows, res.e2e_window, r.e2e.temperature,
                 r.e2e_trainable().c_str(),
                 r.e2e.teacher_top_k > 0 ? ("top-" + std::to_string(r.e2e.teacher_top_k) + " + rest").c_str()
                                         : "whole distribution",
                 res.e2e.heldout_before, res.e2e.heldout_after, res.e2e.best_step);
  if (r.e2e.steps > 0 && res.e2e.teacher_tokens > 0)
    std::fprintf(out, "  teacher distributions kept: %.2f MiB for %ld tokens (%.0f bytes per token)\n",
                 double(res.e2e.teacher_bytes) / double(1 << 20), res.e2e.teacher_tokens,
                 double(res.e2e.teacher_bytes) / double(res.e2e.teacher_tokens));
  if (!res.e2e_curve.empty()) {
    // At most about 20 points of the held-out curve, the last one always.
    const std::size_t every = (res.e2e_curve.size() + 19) / 20;
    std::fprintf(out, "  held-out KL by step:");
    for (std::size_t i = 0; i < res.e2e_curve.size(); ++i)
      if (i % every == every - 1 || i + 1 == res.e2e_curve.size())
        std::fprintf(out, " %d: %.5f", res.e2e_curve[i].first, res.e2e_curve[i].second);
    std::fprintf(out, "\n");
  }
  std::fprintf(out, "stage report: relative error of attention outputs on %d held-out tokens (teacher-forced)\n",
               static_cast<int>(res.heldout_tokens));
  std::fprintf(out, "%5s %4s %6s %6s %10s", "layer", "kind", "rank", "rope", "KV elem/t");
  for (const auto& row : res.report.rows) std::fprintf(out, " %11s", to_string(row.id));
  std::fprintf(out, "\n");
  long before_elems = 0, after_elems = 0;
  for (int l = 0; l < source.n_layers; ++l) before_elems += source.kv_elements_per_token(l);
  for (int l = 0; l < source.n_layers; ++l) {
    const auto& lc = conv.config.layers[static_cast<std::size_t>(l)];
    after_elems += conv.config.kv_elements_per_token(l);
    std::fprintf(out, "%5d %4s %6d %6d %10ld", l, model::to_string(lc.attention), lc.latent_rank, lc.rope_dim,
                 conv.config.kv_elements_per_token(l));
    for (const auto& row : res.report.rows) std::fprintf(out, " %11.3e", row.per_layer[static_cast<std::size_t>(l)]);
    std::fprintf(out, "\n");
  }
  std::fprintf(out,
               "KV cache per token (all %d layers, float32): before %ld bytes, after %ld bytes (%.1f %% of the "
               "original, %.1f %% saved)\n",
               source.n_layers, before_elems * 4, after_elems * 4, 100.0 * after_elems / before_elems,
               100.0 - 100.0 * after_elems / before_elems);
  const long ctx = r.report_context;
  const double before_ctx = 4.0 * double(source.kv_elements_at_context(ctx)),
               after_ctx = 4.0 * double(conv.config.kv_elements_at_context(ctx));
  std::fprintf(out,
               "KV cache of one %ld-token sequence (float32; sliding-window layers hold only their window): "
               "before %.2f MiB (%.0f bytes per token), after %.2f MiB (%.0f bytes per token), %.1f %% saved\n",
               ctx, before_ctx / 1048576.0, before_ctx / double(ctx), after_ctx / 1048576.0, after_ctx / double(ctx),
               100.0 - 100.0 * after_ctx / before_ctx);
}

// Writes the recipe's outputs: the export first when it asks one (recipe.export_path(): a DeepSeek-V3 directory,
// or with --export gguf llama.cpp's deepseek2 file in --export-type with --model's tokenizer keys, its notes
// through progress.info; the latent norm's constant weight from res.latent_rms unless --no-latent-norm), then the
// checkpoint (recipe.out_dir, in recipe.dtype). A checkpoint that cannot be written takes the export with it (no
// partial output). `files`: the tokenizer files both carry (model::checkpoint_tokenizer_files).
template <class T>
void save_conversion(const conversion_recipe& r, const conversion_result<T>& res,
                     const std::vector<model::checkpoint_file>& files,
                     conversion_progress& progress = silent_progress()) {
  const io::dtype type = r.dtype == "bf16" ? io::dtype::BF16 : io::dtype::F32;
  const std::string export_dir = r.export_path();
  if (r.exports() && r.export_kind_used() == "gguf") {
    model::deepseek2_gguf_options go;
    go.latent_rms = res.latent_rms;
    go.type = r.export_type == "q8_0"  ? io::ggml_type::Q8_0
              : r.export_type == "f16" ? io::ggml_type::F16
                                       : io::ggml_type::F32;
    go.name = std::filesystem::path(r.model_path).stem().string() + " (MLA, mla-convert)";
    go.tokenizer = model::tokenizer_metadata(io::gguf_file::open(r.model_path));
    progress.info("writing " + export_dir);
    for (const std::string& note :
         model::save_deepseek2_gguf(export_dir, res.conversion.config, res.conversion.weights, go))
      progress.info(note);
  } else if (r.exports()) {
    model::deepseek_export_options eo;
    eo.latent_norm = !r.no_latent_norm;
    eo.type = type;
    eo.latent_rms = res.latent_rms;
    eo.vllm_widths = r.export_width == "vllm";
    if (eo.vllm_widths) {
      int r_max = 0;
      for (const auto& lw : res.conversion.weights.layers) r_max = std::max(r_max, lw.mla.latent_rank);
      const int dr = res.conversion.config.layers.at(0).rope_dim;
      const model::deepseek_widths wd = model::export_widths(r_max, dr, eo, "--export-width vllm");
      const double grow = 100.0 * double(wd.latent + wd.rope) / double(r_max + dr) - 100.0;
      char line[256];
      std::snprintf(line, sizeof line,
                    "vLLM widths: kv_lora_rank %d, qk_rope_head_dim %d: %d values cached per token and layer, "
                    "against %d as converted (+%.0f %%; zero padding, exact)",
                    wd.latent, wd.rope, wd.latent + wd.rope, r_max + dr, grow);
      progress.info(line);
    }
    progress.info("writing " + export_dir);
    model::save_deepseek_v3(export_dir, res.conversion.config, res.conversion.weights, eo, files);
  }
  progress.info("writing " + r.out_dir);
  try {
    model::save_checkpoint(r.out_dir, res.conversion.config, res.conversion.weights, files, type);
  } catch (...) {
    std::error_code ec;
    if (r.exports()) std::filesystem::remove_all(export_dir, ec);
    throw;
  }
}

}  // namespace mla::convert
