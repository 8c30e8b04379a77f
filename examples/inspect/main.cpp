// mla-inspect: what a model's attention holds and does, on the original and a converted model side by side
// (logic in include/mla/inspect/):
//   kv        KV-cache bytes per token per layer and in total at --ctx contexts, measured on the decoder's caches
//   geometry  per layer and head over a text: q/k norms, per-RoPE-frequency energy of q and k, logit range,
//             attention entropy relative to uniform (the effective softmax temperature); --plot DIR draws heatmaps
//   compare   teacher (--model) vs student (--compare) over a text: per-token KL and top-1 agreement, per-layer
//             attention-output error on the teacher's inputs, the worst tokens with their context
//   sinks     per layer and head: attention mass on the learned sink and on the first token, heads above
//             --threshold flagged, and the change with --compare; --plot DIR draws their heatmaps
//   routing   per MoE layer (gpt-oss): expert-load histogram, load CV, router entropy, never-chosen experts, top-k
//             margin, and with --compare how often the converted model picks another expert set; --plot DIR draws
//             the expert-load bars
//
//   mla-inspect kv --model SmolLM2-135M-Instruct.Q4_1.gguf --compare converted/ --ctx 4096,32768
//   mla-inspect geometry --model SmolLM2-135M-Instruct.Q4_1.gguf --text valid.txt --max-tokens 256 --plot pics
//   mla-inspect compare --model SmolLM2-135M-Instruct.Q4_1.gguf --compare converted/ --text valid.txt
//   mla-inspect sinks --model SmolLM2-135M-Instruct.Q4_1.gguf --compare converted/ --text valid.txt
//   mla-inspect routing --model gpt-oss-20b/ --compare converted/ --text valid.txt --plot pics
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mla/inspect/gnuplot.hpp>
#include <mla/inspect/inspection.hpp>
#include <mla/model/load.hpp>
#include <mla/util/output_path.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../common/environment.hpp"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  mla::check(static_cast<bool>(in), "--text: cannot open '", path, "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "What a model's attention holds and does: KV-cache sizes (kv), query/key geometry (geometry), "
      "teacher vs student (compare), attention sinks (sinks), MoE routing (routing)"};
  app.require_subcommand(1);
  std::string model_path, compare_path, out_path;
  auto common = [&](CLI::App* sub) {
    sub->add_option("--model", model_path, "GGUF file or checkpoint directory")->required();
    sub->add_option("--compare", compare_path, "a second model (e.g. the converted checkpoint), reported beside it");
    sub->add_option("--out", out_path, "also write the report to this file: .csv or .json (atomically)");
  };
  CLI::App* kv = app.add_subcommand("kv", "KV-cache bytes per token per layer and in total at --ctx contexts");
  common(kv);
  std::vector<long> contexts{4096, 32768};
  kv->add_option("--ctx", contexts, "contexts in tokens, comma-separated")
      ->delimiter(',')
      ->check(CLI::Range(1L, 1L << 40));
  CLI::App* geo = app.add_subcommand("geometry",
                                     "per layer and head: q/k norms, RoPE-frequency energy, logit range, "
                                     "attention entropy (one window from the start of --text)");
  common(geo);
  std::string text_path, plot_dir;
  long max_tokens = 256;
  geo->add_option("--text", text_path, "UTF-8 text file; its first --max-tokens tokens are one window")->required();
  geo->add_option("--max-tokens", max_tokens,
                  "window length in tokens (at most 8192: each head's attention is formed whole, [tokens, tokens] in "
                  "float64)")
      ->check(CLI::Range(2L, 8192L));
  geo->add_option("--plot", plot_dir, "draw layer x head heatmaps (PNG and SVG, with gnuplot) into this directory");
  // compare and sinks read one window from the start of --text, like geometry.
  auto text_window = [&](CLI::App* sub) {
    sub->add_option("--text", text_path, "UTF-8 text file; its first --max-tokens tokens are one window")->required();
    sub->add_option("--max-tokens", max_tokens, "window length in tokens (at most 8192)")->check(CLI::Range(2L, 8192L));
  };
  CLI::App* cmp = app.add_subcommand("compare",
                                     "teacher (--model) vs student (--compare): per-token KL, top-1 agreement, "
                                     "per-layer attention error on the teacher's inputs, worst tokens");
  common(cmp);
  cmp->get_option("--compare")->required();
  text_window(cmp);
  int worst = 5, context = 8;
  cmp->add_option("--worst", worst, "how many of the tokens with the largest KL to list")->check(CLI::Range(0, 1000));
  cmp->add_option("--context", context, "tokens of context shown with each (the token itself included)")
      ->check(CLI::Range(1, 1000));
  CLI::App* snk = app.add_subcommand("sinks",
                                     "per layer and head: attention mass on the learned sink and on the first "
                                     "token, heads above --threshold flagged");
  common(snk);
  text_window(snk);
  double threshold = 0.5;
  snk->add_option("--threshold", threshold, "flag heads whose sink or first-token mass exceeds this")
      ->check(CLI::Range(0.0, 1.0));
  snk->add_option("--plot", plot_dir,
                  "draw layer x head heatmaps of the first-token and sink masses, and with --compare their change "
                  "(PNG and SVG, with gnuplot), into this directory");
  CLI::App* rt = app.add_subcommand("routing",
                                    "per MoE layer: expert load, load CV, router entropy, never-chosen experts, "
                                    "top-k margin; with --compare, the tokens routed to other experts");
  common(rt);
  text_window(rt);
  rt->add_option("--plot", plot_dir, "draw the expert-load bars (PNG and SVG, with gnuplot) into this directory");
  CLI11_PARSE(app, argc, argv);

  try {
    // Outputs that cannot be written fail before any model is loaded.
    const std::string format = out_path.empty() ? "" : mla::inspect::report_format(out_path);
    if (!out_path.empty()) mla::util::check_can_create("--out", out_path);
    std::string gnuplot;
    if (!plot_dir.empty()) {
      mla::util::check_can_create("--plot", plot_dir);
      gnuplot = mla::inspect::find_gnuplot(mla_examples::environment("PATH"));
    }
    std::vector<std::string> paths{model_path};
    if (!compare_path.empty()) paths.push_back(compare_path);
    const mla::inspect::model_loader load = [](const std::string& path) {
      std::fprintf(stderr, "loading %s\n", path.c_str());
      return mla::model::load_model(path, mla_examples::o200k_vocabulary_from_environment());
    };
    mla::inspect::text_window_options window;
    window.max_tokens = max_tokens;
    if (!kv->parsed()) window.corpus = read_file(text_path), window.text_path = text_path;
    mla::inspect::compare_options compare_opt;
    compare_opt.worst = worst, compare_opt.context = context;
    const mla::inspect::inspection r = kv->parsed()    ? mla::inspect::inspect_kv(paths, load, contexts)
                                       : cmp->parsed() ? mla::inspect::inspect_compare(paths, load, window, compare_opt)
                                       : snk->parsed() ? mla::inspect::inspect_sinks(paths, load, window, threshold)
                                       : rt->parsed()  ? mla::inspect::inspect_routing(paths, load, window)
                                                       : mla::inspect::inspect_geometry(paths, load, window);
    std::fputs(r.table.c_str(), stdout);
    // The pictures into --plot, or how to get gnuplot.
    if (!plot_dir.empty() && r.draw) {
      if (gnuplot.empty()) {
        std::fprintf(stderr, "mla-inspect: %s\n", mla::inspect::gnuplot_missing_message().c_str());
      } else {
        std::filesystem::create_directories(plot_dir);
        for (const auto& f : r.draw(gnuplot, plot_dir)) std::printf("wrote %s\n", f.c_str());
      }
    }
    const std::string text = format.empty() ? "" : r.text(format);
    if (!out_path.empty()) {
      mla::util::write_file("--out", out_path, text);
      std::printf("wrote %s\n", out_path.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-inspect: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
