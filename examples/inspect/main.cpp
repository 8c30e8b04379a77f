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
#include <mla/inspect/compare.hpp>
#include <mla/inspect/geometry.hpp>
#include <mla/inspect/geometry_plot.hpp>
#include <mla/inspect/gnuplot.hpp>
#include <mla/inspect/kv.hpp>
#include <mla/inspect/routing.hpp>
#include <mla/inspect/routing_plot.hpp>
#include <mla/inspect/sinks.hpp>
#include <mla/inspect/sinks_plot.hpp>
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

// "csv" or "json" from --out's extension.
std::string out_format(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  mla::check(ext == ".csv" || ext == ".json", "--out: '", path, "' must end in .csv or .json, found '", ext, "'");
  return ext.substr(1);
}

mla::model::loaded_model load(const std::string& path) {
  std::fprintf(stderr, "loading %s\n", path.c_str());
  return mla::model::load_model(path, mla_examples::o200k_vocabulary_from_environment());
}

// The first max_tokens tokens of the corpus in m's tokenizer.
std::vector<int> window_of(const mla::model::loaded_model& m, const std::string& path, const std::string& corpus,
                           const std::string& text_path, long max_tokens) {
  mla::check(m.has_tokenizer, path, " has no usable tokenizer: ", m.tokenizer_note);
  const auto ids32 = m.tokenizer.encode(corpus);
  mla::check(ids32.size() >= 2, "--text: '", text_path, "' has ", ids32.size(), " tokens, at least 2 needed");
  return std::vector<int>(ids32.begin(), ids32.begin() + std::min<long>(max_tokens, long(ids32.size())));
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
    const std::string format = out_path.empty() ? "" : out_format(out_path);
    if (!out_path.empty()) mla::util::check_can_create("--out", out_path);
    std::string gnuplot;
    if (!plot_dir.empty()) {
      mla::util::check_can_create("--plot", plot_dir);
      gnuplot = mla::inspect::find_gnuplot(mla_examples::environment("PATH"));
    }
    std::vector<std::string> paths{model_path};
    if (!compare_path.empty()) paths.push_back(compare_path);
    // Draws the pictures draw() returns into --plot, or says how to get gnuplot.
    auto plot = [&](auto&& draw) {
      if (plot_dir.empty()) return;
      if (gnuplot.empty()) {
        std::fprintf(stderr, "mla-inspect: %s\n", mla::inspect::gnuplot_missing_message().c_str());
        return;
      }
      std::filesystem::create_directories(plot_dir);
      for (const auto& f : draw()) std::printf("wrote %s\n", f.c_str());
    };

    std::string text;
    if (kv->parsed()) {
      std::vector<mla::inspect::kv_report> reports;
      for (const auto& p : paths) reports.push_back(mla::inspect::kv_usage(load(p).model, contexts, p));
      std::fputs(mla::inspect::kv_table(reports).c_str(), stdout);
      if (format == "csv") text = mla::inspect::kv_csv(reports);
      if (format == "json") text = mla::inspect::kv_json(reports).dump(2) + "\n";
    } else if (cmp->parsed()) {
      const std::string corpus = read_file(text_path);
      const mla::model::loaded_model teacher = load(model_path), student = load(compare_path);
      const std::vector<int> ids = window_of(teacher, model_path, corpus, text_path, max_tokens);
      mla::inspect::compare_options opt;
      opt.worst = worst, opt.context = context;
      opt.decode = [&](const std::vector<int>& t) {
        return teacher.tokenizer.decode(std::vector<std::int32_t>(t.begin(), t.end()));
      };
      const mla::inspect::compare_report r =
          mla::inspect::compare(teacher.model, student.model, ids, opt, model_path, compare_path);
      std::fputs(mla::inspect::compare_table(r).c_str(), stdout);
      if (format == "csv") text = mla::inspect::compare_csv(r, ids);
      if (format == "json") text = mla::inspect::compare_json(r).dump(2) + "\n";
    } else if (snk->parsed()) {
      const std::string corpus = read_file(text_path);
      std::vector<mla::inspect::sinks_report> reports;
      for (const auto& p : paths) {
        const mla::model::loaded_model m = load(p);
        reports.push_back(mla::inspect::sinks(m.model, window_of(m, p, corpus, text_path, max_tokens), p));
      }
      std::fputs(mla::inspect::sinks_table(reports, threshold).c_str(), stdout);
      if (format == "csv") text = mla::inspect::sinks_csv(reports, threshold);
      if (format == "json") text = mla::inspect::sinks_json(reports, threshold).dump(2) + "\n";
      plot([&] { return mla::inspect::plot_sinks(gnuplot, plot_dir, reports); });
    } else if (rt->parsed()) {
      // Both models run on the original's tokens, so that their routes line up token by token.
      const std::string corpus = read_file(text_path);
      std::vector<mla::inspect::routing_report> reports;
      std::vector<int> ids;
      for (const auto& p : paths) {
        const mla::model::loaded_model m = load(p);
        if (ids.empty()) ids = window_of(m, p, corpus, text_path, max_tokens);
        reports.push_back(mla::inspect::routing(m.model, ids, p));
      }
      std::fputs(mla::inspect::routing_table(reports).c_str(), stdout);
      if (format == "csv") text = mla::inspect::routing_csv(reports);
      if (format == "json") text = mla::inspect::routing_json(reports).dump(2) + "\n";
      plot([&] { return mla::inspect::plot_routing(gnuplot, plot_dir, reports); });
    } else {
      const std::string corpus = read_file(text_path);
      std::vector<mla::inspect::geometry_report> reports;
      for (const auto& p : paths) {
        const mla::model::loaded_model m = load(p);
        const std::vector<int> ids = window_of(m, p, corpus, text_path, max_tokens);
        reports.push_back(mla::inspect::geometry(m.model, ids, p));
        std::fputs(mla::inspect::geometry_table(reports.back()).c_str(), stdout);
      }
      if (format == "csv") text = mla::inspect::geometry_csv(reports);
      if (format == "json") text = mla::inspect::geometry_json(reports).dump(2) + "\n";
      plot([&] {
        std::vector<std::string> files;
        for (std::size_t i = 0; i < reports.size(); ++i)
          for (const auto& f : mla::inspect::plot_geometry(gnuplot, plot_dir, reports[i],
                                                           reports.size() > 1 ? (i ? "compare_" : "model_") : ""))
            files.push_back(f);
        return files;
      });
    }
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
