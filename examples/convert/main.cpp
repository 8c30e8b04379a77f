// mla-convert: GQA -> MLA conversion of a Llama-family or gpt-oss model into the project's MLA checkpoint format
// (config.json with the "mla" fields + safetensors + tokenizer), with the per-layer stage report. A gpt-oss
// directory keeps its sliding-window layers GQA unless --include-sliding or --layers asks otherwise, and its
// MXFP4 experts are copied byte for byte (save_checkpoint.hpp). Flags (recipe_flags.hpp) -> conversion_recipe
// (recipe.hpp) -> validate -> load -> run_conversion (run.hpp) -> print_report -> save.
//
//   mla-convert --model SmolLM2-135M-Instruct.Q4_1.gguf --method attention_aware --kv-budget 0.5 --out smollm2-mla
//   mla-eval --model smollm2-mla --text ../shared/data/wikitext-2-raw-test.txt --ctx 2048
//   mla-convert --model SmolLM2-135M-Instruct.Q4_1.gguf --from smollm2-mla --e2e-steps 300 --e2e-lr 3e-4 --out e2e
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <optional>
#include <mla/convert/calibration_text.hpp>
#include <mla/convert/recipe.hpp>
#include <mla/convert/run.hpp>
#include <mla/inspect/conversion_report.hpp>
#include <mla/model/load.hpp>
#include <mla/util/signal_cleanup.hpp>
#include <string>
#include <filesystem>
#include <vector>
#include "../common/cli.hpp"
#include "../common/environment.hpp"
#include "recipe_flags.hpp"

int main(int argc, char** argv) {
  using namespace mla::convert;
  CLI::App app{"Convert a GQA model (GGUF file or checkpoint directory) to MLA"};
  mla_examples::start(app, "mla-convert");
  conversion_recipe r;
  r.calib_path = default_calibration_text(mla_examples::environment("MLA_DATA_DIR"));
  mla_examples::recipe_flag_state flags;
  mla_examples::add_recipe_flags(app, r, flags);
  MLA_CLI_PARSE(app, argc, argv);
  const mla::util::run_summary summary("mla-convert", mla::util::threads_for_free_cores());  // last line
  mla_examples::finish_recipe_flags(app, r, flags);
  try {
    r.validate();
    if (!flags.report_dir.empty()) mla::inspect::check_report_path(flags.report_dir);
    if (r.force)
      for (const std::string& p : r.remove_stale_outputs())
        std::fprintf(stderr, "mla-convert: removed '%s' (--force)\n", p.c_str());
    mla::check(!r.calib_path.empty(), "--calib: no calibration text given and the default ",
               "../shared/data/wikitext-2-valid-tokenized.txt (or $MLA_DATA_DIR) is absent");
    stderr_progress progress("mla-convert");
    std::fprintf(stderr, "loading %s\n", r.model_path.c_str());
    const auto load_start = std::chrono::steady_clock::now();
    const mla::model::loaded_model m =
        mla::model::load_model(r.model_path, mla_examples::o200k_vocabulary_from_environment());
    progress.took("loading", std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count());
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
    const conversion_result<float> res = start ? run_conversion(m.model, ids, r, progress, std::move(*start))
                                               : run_conversion(m.model, ids, r, progress);
    print_report(stdout, r, cfg, res);
    std::fflush(stdout);  // the summary table ahead of the "writing" lines when both streams go to one file
    const auto save_start = std::chrono::steady_clock::now();
    save_conversion(r, res, mla::model::checkpoint_tokenizer_files(r.model_path), progress);
    progress.took("writing", std::chrono::duration<double>(std::chrono::steady_clock::now() - save_start).count());
    std::printf("wrote %s\n", r.out_dir.c_str());
    if (r.e2e.steps > 0 && std::filesystem::remove(r.e2e_state_path()))  // its work is in --out now
      std::printf("removed the end-to-end state %s\n", r.e2e_state_path().c_str());
    if (r.exports())
      std::printf("wrote %s (%s)\n", r.export_path().c_str(), r.export_description(own_latent_norms(res)).c_str());
    if (!flags.report_dir.empty()) {
      const std::string gnuplot = mla::inspect::find_gnuplot(mla_examples::environment("PATH"));
      mla::inspect::write_conversion_report(flags.report_dir, r, cfg, res, gnuplot, progress);
      std::printf("wrote %s/index.html\n", flags.report_dir.c_str());
    }
    mla::util::check_stdout();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-convert: error: %s\n", e.what());
    return mla::util::exit_failure;
  }
  return mla::util::exit_ok;
}
