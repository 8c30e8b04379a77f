// mla::convert conversion_recipe: every setting of a whole-model conversion (what mla-convert's flags set, with
// its defaults), checked once, and calibration_plan: the token windows every stage reads, cut from one stream.
//
// A recipe is checked in two steps, each failure one message naming the flag to change:
//   validate()                 before anything is loaded: option ranges, combinations, output paths
//   validate(source[, start])  once the source model's config (and a --from checkpoint's) is known, before any
//                              calibration: the layers, the KV budget, what end-to-end distillation and the
//                              exports need of the model (validate_export_source reads --model's metadata
//                              before: architecture, biases, GGUF for --export gguf)
// run.hpp runs a validated recipe.
//
// calibration_plan, from a calibration token stream ([tokens]; every window starts at position 0):
//   calibration  windows [0, n_cal) of --window tokens: the statistics of every stage
//   heldout      windows [n_cal, n_cal + n_held): the stage report (teacher-forced)
//   fit          the first n_fit calibration windows: the refit, the distillation (same windows) and the
//                attention RoPE strategy / moment read their inputs there
//   distill      the layer-wise distillation's token windows: its own (--distill-window) or `fit`
//   e2e          the end-to-end distillation's windows (--e2e-window)
// A stage's own windows come from the start of the calibration stretch, capped at it (with a note).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/convert/convert_layer.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/distill.hpp"
#include "mla/convert/factorize.hpp"
#include "mla/convert/rank_allocation.hpp"
#include "mla/convert/refit.hpp"
#include "mla/convert/rope_strategy.hpp"
#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/io/gguf.hpp"
#include "mla/io/safetensors.hpp"
#include "mla/model/model_config.hpp"
#include "mla/util/output_path.hpp"

namespace mla::convert {

// mla-convert's default --calib: <data_dir>/wikitext-2-valid-tokenized.txt when it exists, else empty (no
// calibration text). The tools pass $MLA_DATA_DIR or ../shared/data (the library reads no environment).
inline std::string default_calibration_text(const std::string& data_dir) {
  const std::string p =
      (data_dir.empty() ? std::string("../shared/data") : data_dir) + "/wikitext-2-valid-tokenized.txt";
  return std::filesystem::exists(p) ? p : std::string();
}

// How a refit or layer-wise distillation sees its inputs: the source model's (teacher-forced), or the converted
// model's own in layer order (sequential, after the conversion).
enum class stage_mode { teacher, sequential };

inline const char* to_string(stage_mode m) { return m == stage_mode::teacher ? "teacher" : "sequential"; }

// The names the tools accept for each choice of the recipe (a wrong name is an error listing these).
inline std::map<std::string, factor_method> factor_method_names() {
  return {{"weight_svd", factor_method::weight_svd},
          {"activation_pca", factor_method::activation_pca},
          {"care", factor_method::care},
          {"attention_aware", factor_method::attention_aware}};
}
inline std::map<std::string, rope_strategy> rope_strategy_names() {
  return {{"rorope", rope_strategy::rorope},     {"high", rope_strategy::high},
          {"low", rope_strategy::low},           {"uniform", rope_strategy::uniform},
          {"two_norm", rope_strategy::two_norm}, {"attention", rope_strategy::attention}};
}
inline std::map<std::string, factor_options::moment_kind> moment_names() {
  return {{"tokens", factor_options::moment_kind::tokens}, {"attention", factor_options::moment_kind::attention}};
}
inline std::map<std::string, rank_allocation> allocation_names() {
  return {{"uniform", rank_allocation::uniform},
          {"spectrum_greedy", rank_allocation::spectrum_greedy},
          {"objective_greedy", rank_allocation::objective_greedy}};
}

struct conversion_recipe {
  std::string model_path;  // --model (named in messages; the caller loads it)
  std::string from_dir;    // --from: resume from this converted checkpoint (the caller loads it); empty: convert

  // The factorisation: --method, --rope, --rope-dim, --key-weight, --moment, --centre, --freqfold, --rank.
  convert_options layer = [] {
    convert_options c;
    c.factor.method = factor_method::attention_aware;
    c.rope.rope_dim = 32;
    return c;
  }();
  double kv_budget = 0;    // --kv-budget: a fraction of the converted layers' cache in (0, 1], or bytes per token
                           // (float32) when > 1; 0: layer.rank in every layer
  bool full_rank = false;  // --full-rank: no budget and no rank asked on purpose (a conversion that saves nothing
                           // is refused unless this says so)
  rank_allocation allocation = rank_allocation::uniform;  // --allocation
  bool any_rank = false;                                  // --any-rank: ranks outside mla::supported_shapes
  std::vector<int> layers;                                // --layers; empty: every full-attention layer
  bool include_sliding = false;                           // --include-sliding

  std::string calib_path;     // --calib (the caller reads and tokenises it; named in messages)
  long calib_tokens = 8192;   // --calib-tokens
  long heldout_tokens = 512;  // --heldout-tokens (0: no stage report)
  int window = 256;           // --window

  bool refit = false;                    // --refit
  std::optional<stage_mode> refit_mode;  // --refit-mode; unset: teacher, or sequential when --refit-drift asks it
  long refit_tokens = 2048;              // --refit-tokens
  refit_options refit_opt;               // output_projection (--refit-o-proj), drift_weight (--refit-drift);
                                         // max_windows is the plan's

  distill_options distill;     // steps (--distill-steps), learning_rate, batch_windows (--distill-lr, -batch)
  long distill_tokens = 4096;  // --distill-tokens
  stage_mode distill_mode = stage_mode::teacher;  // --distill-mode
  int distill_window = 0;                         // --distill-window (0: window)
  bool latent_norm = false;                       // --latent-norm

  // steps (--e2e-steps), learning_rate, batch_windows, teacher_cache_bytes, temperature (--e2e-temperature), and
  // train_query = train_output (--e2e-train attention; latent: both false, the audited toolkit's set), train_sinks
  // (--e2e-train-sinks), teacher_top_k (--e2e-teacher-top-k)
  distill_options e2e = [] {
    distill_options d;
    d.learning_rate = 1e-3;
    d.batch_windows = 1;
    return d;
  }();
  long e2e_tokens = 8192;         // --e2e-tokens
  int e2e_checkpoint_every = 25;  // --e2e-checkpoint-every: steps between saved states (0: none), e2e_state_path()
  int e2e_window = 0;             // --e2e-window (0: window)

  std::string out_dir;                     // --out (must not exist)
  std::string dtype = "f32";               // --dtype: f32 or bf16
  std::string export_kind;                 // --export: "", deepseek_v3 or gguf (llama.cpp's deepseek2)
  std::string export_dir;                  // --export-out (default: <out>-deepseek_v3, <out>-deepseek2.gguf)
  std::string export_type = "f32";         // --export-type: f32, f16 or q8_0 (the GGUF export's tensors)
  std::string export_width = "converted";  // --export-width: converted, or vllm (model::export_widths)
  bool no_latent_norm = false;             // --no-latent-norm
  bool force = false;          // --force: remove what an interrupted run left beside the outputs (<out>.tmp.<pid>)
  long report_context = 8192;  // --report-context

  // What the settings imply: --refit-drift implies --refit-mode sequential and --refit-o-proj, and either of those
  // implies --refit.
  bool resumes() const { return !from_dir.empty(); }
  stage_mode refit_mode_used() const {
    return refit_mode ? *refit_mode : refit_opt.drift_weight > 0 ? stage_mode::sequential : stage_mode::teacher;
  }
  bool refit_o_proj_used() const { return refit_opt.output_projection || refit_opt.drift_weight > 0; }
  bool refit_used() const { return refit || refit_o_proj_used() || refit_mode_used() == stage_mode::sequential; }
  bool distill_used() const { return distill.steps > 0; }
  bool exports() const { return !export_kind.empty() || !export_dir.empty(); }
  // The export written: --export, or deepseek_v3 when only --export-out is given.
  // The flags of the conversion stages that --from replaces (mla-convert refuses them beside it).
  static std::vector<std::string> options_replaced_by_from() {
    return {"--method",         "--rope",
            "--rope-dim",       "--key-weight",
            "--moment",         "--centre",
            "--freqfold",       "--kv-budget",
            "--rank",           "--full-rank",
            "--allocation",     "--any-rank",
            "--layers",         "--include-sliding",
            "--refit",          "--refit-mode",
            "--refit-tokens",   "--refit-o-proj",
            "--refit-drift",    "--distill-steps",
            "--distill-tokens", "--distill-lr",
            "--distill-mode",   "--distill-window",
            "--distill-batch",  "--latent-norm"};
  }
  // What the export written by save_conversion is, and whether it is exact: the line after its path.
  // `own_latent_norms`: every layer of the exported model carries its own latent norm (--latent-norm, or a --from
  // checkpoint that was converted with it), which the export writes as kv_a_layernorm: then it is exact.
  std::string export_description(bool own_latent_norms) const {
    if (export_kind_used() == "gguf")
      return "GGUF deepseek2 for llama.cpp, " + export_type + "; the latent norm line above says if it is exact";
    return std::string("DeepSeek-V3 layout, ") +
           (no_latent_norm     ? "no kv_a_layernorm: exact, needs an engine that skips the latent norm"
            : own_latent_norms ? "kv_a_layernorm from the converted layers' own latent norms: exact"
                               : "kv_a_layernorm with a constant weight: NOT exact, measure it with mla-eval");
  }
  // The end-to-end trainable set's name: attention or latent, "+sinks" when the sinks train too.
  std::string e2e_trainable() const {
    return std::string(e2e.train_query ? "attention" : "latent") + (e2e.train_sinks ? "+sinks" : "");
  }
  // Where the end-to-end stage's state is saved while it runs (removed once --out is written; a rerun of a
  // stopped command continues from it).
  std::string e2e_state_path() const { return out_dir.empty() ? std::string() : out_dir + ".e2e-state.safetensors"; }
  std::string export_kind_used() const { return export_kind.empty() ? "deepseek_v3" : export_kind; }
  std::string export_path() const {
    if (!export_dir.empty() || export_kind.empty()) return export_dir;
    return out_dir + (export_kind == "gguf" ? "-deepseek2.gguf" : "-deepseek_v3");
  }
  // The attention RoPE strategy and the attention moment read calibration inputs.
  bool rope_needs_inputs() const {
    return layer.rope.strategy == rope_strategy::attention ||
           layer.factor.moment == factor_options::moment_kind::attention;
  }
  // Bytes of calibration text to read: 8 per token the plan needs at most.
  std::size_t calibration_text_bytes() const { return std::size_t(calib_tokens + heldout_tokens + window) * 8; }

  // Everything that needs no model: option ranges, combinations, the output paths.
  void validate() const {
    validate_options();
    validate_export_source();
    validate_outputs();
    validate_no_stale_outputs();
  }

  // What an export needs of --model, read from its metadata only (before the model is loaded): a Llama-family
  // model without attention biases, and for --export gguf a GGUF file (its tokenizer is copied).
  void validate_export_source() const {
    namespace fs = std::filesystem;
    if (!exports() || model_path.empty() || !fs::exists(model_path)) return;  // a missing model: the load says so
    const std::string kind = "--export " + export_kind_used();
    std::string arch;
    bool biases = false;
    if (fs::is_directory(model_path)) {
      check(export_kind_used() != "gguf", kind, " copies the tokenizer from a GGUF --model; '", model_path,
            "' is a checkpoint directory: convert the .gguf file, or use --export deepseek_v3");
      std::ifstream in(fs::path(model_path) / "config.json", std::ios::binary);
      const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("model_type") && j["model_type"].is_string()) arch = j["model_type"];
      biases = j.is_object() && j.contains("attention_bias") && j["attention_bias"].is_boolean() &&
               j["attention_bias"].get<bool>();
    } else {
      const io::gguf_file f = io::gguf_file::open(model_path);
      arch = f.get_or<std::string>("general.architecture", "");
      biases = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    }
    check(arch != "gpt_oss" && arch != "gpt-oss", kind, ": '", model_path, "' is a gpt-oss model, whose attention ",
          "sinks, sliding windows and MoE MLPs neither DeepSeek-V3 nor llama.cpp's deepseek2 can express; exports ",
          "take a Llama-family (SwiGLU, no biases) model with every layer converted; convert without --export");
    check(!biases, kind, ": '", model_path, "' has attention biases, which neither DeepSeek-V3 nor llama.cpp's ",
          "deepseek2 has; exports take a Llama-family model without biases; convert without --export");
  }

  void validate_options() const {
    check(window >= 8 && window <= (1 << 16), "--window must be in [8, 65536], found ", window);
    check(calib_tokens > 0, "--calib-tokens must be > 0, found ", calib_tokens);
    check(calib_tokens / window > 0, "--calib-tokens ", calib_tokens, " is less than one window of ", window,
          " tokens");
    check(heldout_tokens >= 0, "--heldout-tokens must be >= 0, found ", heldout_tokens);
    check(kv_budget >= 0, "--kv-budget must be > 0 (a fraction in (0, 1] or bytes per token), found ", kv_budget);
    // No budget and no rank keeps every rank: a lossy conversion (the RoPE split) that shrinks the cache by nothing.
    check(resumes() || kv_budget > 0 || layer.rank > 0 || full_rank,
          "--kv-budget: none given (or 0), so every converted layer would keep its full rank and the KV cache would "
          "not shrink; give --kv-budget (a fraction of the cache in (0, 1], e.g. 0.5, or bytes per token) or --rank "
          "N, or ask for a full-rank conversion explicitly with --full-rank");
    check(layer.rank >= 0, "--rank must be >= 0, found ", layer.rank);
    check(layer.rope.rope_dim > 0 && layer.rope.rope_dim % 2 == 0, "--rope-dim must be positive and even, found ",
          layer.rope.rope_dim);
    if (!any_rank && !resumes()) {
      // The d_R of mla::supported_shapes, ascending: the converted layers must be one of its shapes.
      std::vector<int> dims;
      for (const runtime_shape& s : supported_runtime_shapes()) dims.push_back(s.rope_dim);
      std::sort(dims.begin(), dims.end());
      dims.erase(std::unique(dims.begin(), dims.end()), dims.end());
      std::string allowed;
      for (int d : dims) allowed += (allowed.empty() ? "" : ", ") + std::to_string(d);
      check(std::find(dims.begin(), dims.end(), layer.rope.rope_dim) != dims.end(), "--rope-dim ", layer.rope.rope_dim,
            " is not a d_R of mla::supported_shapes (allowed: ", allowed,
            "); pass --any-rank to convert to a shape outside the list");
    }
    check(layer.rope.freqfold >= 0, "--freqfold must be >= 0, found ", layer.rope.freqfold);
    check(!refit_mode || *refit_mode == stage_mode::sequential || refit_opt.drift_weight <= 0,
          "--refit-drift needs --refit-mode sequential (the drift is the converted model's own)");
    check(refit_opt.drift_weight >= 0 && refit_opt.drift_weight <= 1, "--refit-drift must be in [0, 1], found ",
          refit_opt.drift_weight);
    check(refit_tokens > 0, "--refit-tokens must be > 0, found ", refit_tokens);
    check(distill.steps >= 0, "--distill-steps must be >= 0, found ", distill.steps);
    check(distill_tokens > 0, "--distill-tokens must be > 0, found ", distill_tokens);
    check(distill.learning_rate > 0, "--distill-lr must be > 0, found ", distill.learning_rate);
    check(distill.batch_windows > 0, "--distill-batch must be > 0, found ", distill.batch_windows);
    check(distill_window >= 0 && distill_window <= (1 << 16), "--distill-window must be in [0, 65536], found ",
          distill_window);
    check(refit_mode_used() != stage_mode::sequential || !distill_used() || distill_mode == stage_mode::sequential,
          "--refit-mode sequential runs after the conversion, so a distillation must come after it too: add "
          "--distill-mode sequential");
    check(e2e.steps >= 0, "--e2e-steps must be >= 0, found ", e2e.steps);
    check(e2e.learning_rate > 0, "--e2e-lr must be > 0, found ", e2e.learning_rate);
    check(e2e.batch_windows > 0, "--e2e-batch must be > 0, found ", e2e.batch_windows);
    check(e2e_tokens > 0, "--e2e-tokens must be > 0, found ", e2e_tokens);
    check(e2e_checkpoint_every >= 0, "--e2e-checkpoint-every must be >= 0, found ", e2e_checkpoint_every);
    check(e2e.temperature > 0 && std::isfinite(e2e.temperature), "--e2e-temperature must be > 0, found ",
          e2e.temperature);
    check(!e2e.train_sinks || e2e.steps > 0, "--e2e-train-sinks needs --e2e-steps > 0");
    check(e2e.teacher_top_k >= 0, "--e2e-teacher-top-k must be >= 0 (0: the whole distribution), found ",
          e2e.teacher_top_k);
    check(e2e.train_query == e2e.train_output,
          "the end-to-end trainable set is attention (q and o projections too) "
          "or latent (neither): q and o apart is not an option");
    check(e2e_window >= 0 && e2e_window <= (1 << 16), "--e2e-window must be in [0, 65536], found ", e2e_window);
    check(report_context > 0, "--report-context must be > 0, found ", report_context);
    check(dtype == "f32" || dtype == "bf16", "--dtype must be f32 or bf16, found '", dtype, "'");
    check(export_kind.empty() || export_kind == "deepseek_v3" || export_kind == "gguf",
          "--export must be deepseek_v3 (Hugging Face DeepseekV3ForCausalLM) or gguf (llama.cpp's deepseek2), found '",
          export_kind, "'");
    check(export_type == "f32" || export_type == "f16" || export_type == "q8_0",
          "--export-type must be f32, f16 or q8_0, found '", export_type, "'");
    check(export_type == "f32" || export_kind == "gguf", "--export-type ", export_type,
          " applies to --export gguf (the DeepSeek-V3 export follows --dtype)");
    check(export_width == "converted" || export_width == "vllm", "--export-width must be converted or vllm, found '",
          export_width, "'");
    check(export_width == "converted" || (exports() && export_kind_used() == "deepseek_v3"),
          "--export-width vllm applies to --export deepseek_v3 (the layout vLLM's DeepSeek loader reads)",
          exports() ? ", not to --export " + export_kind_used() : std::string(", and no --export was asked"));
    check(export_width == "converted" || resumes() || layer.rope.rope_dim <= 0 ||
              (layer.rope.rope_dim <= 64 && 64 % layer.rope.rope_dim == 0),
          "--export-width vllm: --rope-dim ", layer.rope.rope_dim,
          " does not divide 64, so its RoPE frequencies have no place on vLLM's 64-wide ladder (use 2, 4, 8, 16, "
          "32 or 64)");
    check(export_kind != "gguf" || !no_latent_norm,
          "--export gguf cannot drop the latent norm: llama.cpp's deepseek2 always applies attn_kv_a_norm; ",
          "drop --no-latent-norm (or use --export deepseek_v3)");
    check(!(latent_norm && no_latent_norm), "--latent-norm and --no-latent-norm exclude each other");
    check(!exports() || layer.rope.strategy != rope_strategy::attention, "--export ", export_kind_used(),
          " needs the standard RoPE frequency ladder, which --rope attention does not keep ",
          "(its pairs sit on the frequencies that need them); use --rope rorope or an MHA2MLA selection");
    check(!exports() || !layer.factor.centre, "--export ", export_kind_used(),
          " cannot carry --centre: the folded value mean is an o_proj bias, which DeepSeek-V3 engines (llama.cpp's ",
          "deepseek2 included) do not load; convert without --centre for an export");
    check(layer.factor.moment != factor_options::moment_kind::attention ||
              layer.factor.method != factor_method::weight_svd,
          "--moment attention does not apply to --method weight_svd, which factors the weights alone (M = I); ",
          "drop --moment or pick an activation method");
    if (resumes()) {
      // --from replaces the conversion stages: their settings would be ignored, so they must keep their defaults.
      const conversion_recipe d;
      auto unused = [&](bool same, const char* flag) {
        check(same, "--from: ", flag, " sets a conversion stage that '", from_dir, "' already went through; ",
              "drop it (only the end-to-end stage continues from a checkpoint)");
      };
      unused(layer.factor.method == d.layer.factor.method, "--method");
      unused(layer.rope.strategy == d.layer.rope.strategy, "--rope");
      unused(layer.rope.rope_dim == d.layer.rope.rope_dim, "--rope-dim");
      unused(layer.factor.key_weight == d.layer.factor.key_weight, "--key-weight");
      unused(layer.factor.moment == d.layer.factor.moment, "--moment");
      unused(layer.factor.centre == d.layer.factor.centre, "--centre");
      unused(layer.rope.freqfold == d.layer.rope.freqfold, "--freqfold");
      unused(kv_budget == d.kv_budget, "--kv-budget");
      unused(layer.rank == d.layer.rank, "--rank");
      unused(allocation == d.allocation, "--allocation");
      unused(any_rank == d.any_rank, "--any-rank");
      unused(layers == d.layers, "--layers");
      unused(include_sliding == d.include_sliding, "--include-sliding");
      unused(!refit_used() && refit_tokens == d.refit_tokens, "--refit (or --refit-mode, -tokens, -o-proj, -drift)");
      unused(distill.steps == d.distill.steps && distill_tokens == d.distill_tokens &&
                 distill.learning_rate == d.distill.learning_rate && distill_mode == d.distill_mode &&
                 distill_window == d.distill_window && distill.batch_windows == d.distill.batch_windows,
             "--distill-steps (or --distill-tokens, -lr, -mode, -window, -batch)");
      unused(latent_norm == d.latent_norm, "--latent-norm");
    }
  }

  // The output paths must not exist (nothing is overwritten) and must be creatable: not empty, their parent an
  // existing writable directory (probed with a file created and removed there), so that a bad path fails before
  // the model is loaded.
  void validate_outputs() const {
    namespace fs = std::filesystem;
    check(out_dir.empty() || !fs::exists(out_dir), "--out: '", out_dir, "' already exists (nothing is overwritten)");
    util::check_can_create("--out", out_dir);
    if (exports()) {
      check(!fs::exists(export_path()), "--export-out: '", export_path(), "' already exists (nothing is overwritten)");
      util::check_can_create(export_dir.empty() ? "--out (its export beside it)" : "--export-out", export_path());
    }
  }

  // What an interrupted or killed run left beside an output (`<out>.tmp.<pid>`) is named, unless --force asks to
  // remove it (remove_stale_outputs(), before the work).
  void validate_no_stale_outputs() const {
    if (force) return;
    util::check_no_stale_temporary("--out", out_dir);
    if (exports()) util::check_no_stale_temporary("--export-out", export_path());
    const std::string st = e2e_state_path();
    if (e2e.steps == 0 || st.empty()) return;
    if (std::filesystem::exists(st)) {  // to be continued from: readable, and of this format (run.hpp checks the rest)
      bool ok = false;
      std::string why = "its metadata names no 'mla end-to-end distillation state 1' format";
      try {
        const io::safetensors_file f = io::safetensors_file::open(st);
        const auto it = f.metadata().find("format");
        ok = it != f.metadata().end() && it->second == "mla end-to-end distillation state 1";
      } catch (const std::exception& e) {
        why = e.what();
      }
      check(ok, "--out: '", st,
            "' is where this run's end-to-end state is saved and continued from, but it is not a "
            "saved state (",
            why, "); remove it, or pass --force");
    }
  }
  // --force: removes those leftovers (not a running process's); returns their paths.
  std::vector<std::string> remove_stale_outputs() const {
    std::vector<std::string> removed = util::remove_stale_temporaries("--out", out_dir);
    // A saved end-to-end state: --force starts the stage over.
    if (const std::string st = e2e_state_path(); !st.empty() && std::filesystem::exists(st)) {
      std::filesystem::remove(st);
      removed.push_back(st);
    }
    if (exports())
      for (std::string& p : util::remove_stale_temporaries("--export-out", export_path())) removed.push_back(p);
    return removed;
  }

  // The layers the conversion turns into MLA ([converted layers], ascending as given): --layers, or with --from
  // the checkpoint's MLA layers, or every full-attention layer (with --include-sliding: every layer).
  std::vector<int> conversion_layers(const model::model_config& source,
                                     const model::model_config* start = nullptr) const {
    std::vector<int> todo = layers;
    if (start) {
      for (int l = 0; l < start->n_layers; ++l)
        if (start->layers[static_cast<std::size_t>(l)].attention == model::attention_kind::mla) todo.push_back(l);
      check(!todo.empty(), "--from: '", from_dir, "' has no MLA layer; it is not a converted checkpoint");
    }
    if (todo.empty()) {
      // gpt-oss alternates full attention with 128-token windows; a window's cache is already bounded, so by
      // default only the full-attention layers are converted (all layers when the model has no windows).
      for (int l = 0; l < source.n_layers; ++l)
        if (include_sliding || source.layers[static_cast<std::size_t>(l)].sliding_window == 0) todo.push_back(l);
      check(!todo.empty(), "every layer of '", model_path, "' has a sliding window; pass --include-sliding or ",
            "--layers to convert some");
    }
    return todo;
  }

  // --kv-budget in cached elements per token summed over the converted layers (0: no budget).
  long kv_budget_elements(const model::model_config& source, const std::vector<int>& todo) const {
    if (kv_budget <= 0) return 0;
    long converted_elems = 0;
    for (int l : todo) converted_elems += source.kv_elements_per_token(l);
    return kv_budget <= 1 ? static_cast<long>(kv_budget * double(converted_elems))
                          : static_cast<long>(kv_budget / sizeof(float));
  }

  // What needs the model (and, with --from, the checkpoint's config): run before any calibration.
  void validate(const model::model_config& source, const model::model_config* start = nullptr) const {
    const std::vector<int> todo = conversion_layers(source, start);
    for (int l : todo)
      check(l >= 0 && l < source.n_layers, "--layers: layer ", l, " is outside [0, ", source.n_layers, ")");
    const bool all = int(todo.size()) == source.n_layers;
    check(e2e.teacher_top_k < source.vocab_size, "--e2e-teacher-top-k ", e2e.teacher_top_k,
          " keeps the whole vocabulary of '", model_path, "' (", source.vocab_size,
          " tokens): leave it at 0 for the whole distribution");
    check(!e2e.train_sinks || source.attention_sinks, "--e2e-train-sinks: '", model_path,
          "' has no attention sinks to train (gpt-oss has them; Llama-family models do not)");
    check(!exports() || (all && source.architecture == "llama" && source.mlp == model::mlp_kind::swiglu), "--export ",
          export_kind_used(), " needs a Llama-family (SwiGLU) model with every layer converted (here ", todo.size(),
          " of ", source.n_layers, " layers of a ", source.architecture, " model)");
    check(!exports() || !source.attention_bias, "--export ", export_kind_used(), ": '", model_path,
          "' has attention biases, which the export cannot carry; convert without --export");
    const long budget = kv_budget_elements(source, todo);
    check(kv_budget <= 0 || budget >= long(todo.size()) * (layer.rope.rope_dim + 32), "--kv-budget ", kv_budget,
          " gives ", budget, " elements per token for ", todo.size(),
          " layers: less than rope_dim + the smallest rank");
  }
};

// The token windows of every stage, cut from one calibration token stream (the header comment).
struct calibration_plan {
  int window = 0;                             // --window
  std::vector<std::vector<int>> calibration;  // [n_cal][window]
  std::vector<std::vector<int>> heldout;      // [n_held][window]
  std::vector<std::vector<int>> fit;          // [n_fit][window], empty when no stage reads inputs
  int refit_windows = 0;                      // refit_options::max_windows: the refit's share of `fit` (0: all)
  bool own_distill_windows = false;           // the distillation records inputs on its own windows
  std::vector<std::vector<int>> distill;      // the layer-wise distillation's windows (own, or `fit`)
  int e2e_window = 0;                         // --e2e-window, or --window
  std::vector<std::vector<int>> e2e;          // the end-to-end distillation's windows
  std::vector<std::string> notes;             // settings the stretch capped

  calibration_plan() = default;

  // `resumed`: the conversion stages are skipped (no fit inputs).
  calibration_plan(const conversion_recipe& r, const std::vector<int>& tokens, bool resumed) {
    window = r.window;
    const int n_cal = static_cast<int>(r.calib_tokens / window), n_held = static_cast<int>(r.heldout_tokens / window);
    check(n_cal > 0, "--calib-tokens ", r.calib_tokens, " is less than one window of ", window, " tokens");
    check(long(tokens.size()) >= long(n_cal + n_held) * window, "--calib: '", r.calib_path, "' has ", tokens.size(),
          " tokens, fewer than --calib-tokens + --heldout-tokens = ", long(n_cal + n_held) * window);
    calibration = token_windows(tokens, window, 0, n_cal);
    if (n_held > 0) heldout = token_windows(tokens, window, n_cal, n_held);

    const bool distills = r.distill_used(), refit = r.refit_used();
    const int distill_len = r.distill_window == 0 ? window : r.distill_window;
    own_distill_windows = distills && distill_len != window;
    if (!resumed && (refit || distills || r.rope_needs_inputs())) {
      // The stages read the first windows of the calibration stretch (the refit its first --refit-tokens; the
      // attention RoPE strategy at most 4096 tokens).
      const long fit_tokens =
          std::max({refit ? r.refit_tokens : 0L, distills && !own_distill_windows ? r.distill_tokens : 0L,
                    r.rope_needs_inputs() ? 4096L : 0L});
      const int n_fit = std::max(2, std::min(n_cal, static_cast<int>(fit_tokens / window)));
      fit = token_windows(tokens, window, 0, n_fit);
      // The refit keeps its own (smaller) share; the other stages then see all windows.
      if (refit && r.refit_tokens < fit_tokens)
        refit_windows = std::max(2, std::min(n_fit, static_cast<int>(r.refit_tokens / window)));
    }
    const long stretch = long(n_cal) * window;
    if (own_distill_windows)
      distill = stage_windows(tokens, stretch, r.distill_tokens, distill_len, "distill", "distillation");
    else if (distills)
      distill = fit;
    e2e_window = r.e2e_window == 0 ? window : r.e2e_window;
    if (r.e2e.steps > 0)
      e2e = stage_windows(tokens, stretch, r.e2e_tokens, e2e_window, "e2e", "end-to-end distillation");
  }

  long heldout_tokens() const { return long(heldout.size()) * window; }

 private:
  // Token windows of `len` for a training stage, from the start of the calibration stretch: `tokens` of them
  // (--<flag>-tokens), capped at the stretch with a note, and at least 2 (a fifth is held out).
  std::vector<std::vector<int>> stage_windows(const std::vector<int>& ids, long stretch, long tokens, int len,
                                              const char* flag, const char* stage) {
    if (tokens > stretch) {
      char line[256];
      std::snprintf(line, sizeof line,
                    "--%s-tokens %ld is more than the %ld calibration tokens (--calib-tokens); "
                    "the %s uses %ld",
                    flag, tokens, stretch, stage, stretch);
      notes.emplace_back(line);
    }
    const int n = static_cast<int>(std::min(tokens, stretch) / len);
    check(n >= 2, "--", flag, "-window ", len, ": the ", stage, " needs 2 windows within ", std::min(tokens, stretch),
          " calibration tokens (--", flag, "-tokens, --calib-tokens)");
    return token_windows(ids, len, 0, n);
  }
};

}  // namespace mla::convert
