// mla::inspect inspections: what mla-inspect's subcommands do between parsing and printing, one function each,
// over one model or a model and a second one (--compare, e.g. its conversion):
//   inspect_kv / inspect_geometry / inspect_compare / inspect_sinks / inspect_routing
// each loads the models through `load`, runs the report, and returns an inspection: the terminal table, the same
// numbers as CSV and JSON, and the pictures' drawing step where the report has pictures. The text-taking ones read
// one window: the first max_tokens tokens of the corpus in the (first) model's tokenizer.
//   text_window_options    the corpus, its path (for messages) and the window length
//   report_format(path)    "csv" or "json" from an --out path's extension
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/inspect/compare.hpp"
#include "mla/inspect/geometry.hpp"
#include "mla/inspect/geometry_plot.hpp"
#include "mla/inspect/kv.hpp"
#include "mla/inspect/routing.hpp"
#include "mla/inspect/routing_plot.hpp"
#include "mla/inspect/sinks.hpp"
#include "mla/inspect/sinks_plot.hpp"
#include "mla/model/load.hpp"

namespace mla::inspect {

struct inspection {
  std::string table;  // what the terminal shows
  std::string csv;
  nlohmann::json json;
  // Draws the pictures into an existing directory with the given gnuplot; returns their paths. Empty: none.
  std::function<std::vector<std::string>(const std::string& gnuplot, const std::string& dir)> draw;

  // The --out text: CSV, or JSON (bytes that are not UTF-8, as in a token cut inside a character, replaced).
  std::string text(const std::string& format) const {
    return format == "csv" ? csv : json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
};

using model_loader = std::function<model::loaded_model(const std::string& path)>;

struct text_window_options {
  std::string corpus;     // the text
  std::string text_path;  // where it came from (named in messages)
  long max_tokens = 256;  // window length
};

// "csv" or "json" from the extension of an --out path.
inline std::string report_format(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  check(ext == ".csv" || ext == ".json", "--out: '", path, "' must end in .csv or .json, found '", ext, "'");
  return ext.substr(1);
}

// The first max_tokens tokens of the corpus in m's tokenizer (at least 2).
inline std::vector<int> text_window(const model::loaded_model& m, const std::string& path,
                                    const text_window_options& w) {
  check(m.has_tokenizer, path, " has no usable tokenizer: ", m.tokenizer_note);
  const auto ids32 = m.tokenizer.encode(w.corpus);
  check(ids32.size() >= 2, "--text: '", w.text_path, "' has ", ids32.size(), " tokens, at least 2 needed");
  return std::vector<int>(ids32.begin(), ids32.begin() + std::min<long>(w.max_tokens, long(ids32.size())));
}

inline inspection inspect_kv(const std::vector<std::string>& paths, const model_loader& load,
                             const std::vector<long>& contexts) {
  std::vector<kv_report> reports;
  for (const auto& p : paths) reports.push_back(kv_usage(load(p).model, contexts, p));
  return {kv_table(reports), kv_csv(reports), kv_json(reports), {}};
}

// Per model its own window; one table per model; heatmaps prefixed model_ / compare_ when there are two.
inline inspection inspect_geometry(const std::vector<std::string>& paths, const model_loader& load,
                                   const text_window_options& w) {
  std::vector<geometry_report> reports;
  inspection out;
  for (const auto& p : paths) {
    const model::loaded_model m = load(p);
    reports.push_back(geometry(m.model, text_window(m, p, w), p));
    out.table += geometry_table(reports.back());
  }
  out.csv = geometry_csv(reports), out.json = geometry_json(reports);
  out.draw = [reports](const std::string& gnuplot, const std::string& dir) {
    std::vector<std::string> files;
    for (std::size_t i = 0; i < reports.size(); ++i)
      for (const auto& f :
           plot_geometry(gnuplot, dir, reports[i], reports.size() > 1 ? (i ? "compare_" : "model_") : ""))
        files.push_back(f);
    return files;
  };
  return out;
}

// paths = {teacher, student}; the worst tokens shown with the teacher's tokenizer.
inline inspection inspect_compare(const std::vector<std::string>& paths, const model_loader& load,
                                  const text_window_options& w, compare_options opt) {
  check(paths.size() == 2, "compare needs --model and --compare");
  const model::loaded_model teacher = load(paths[0]), student = load(paths[1]);
  const std::vector<int> ids = text_window(teacher, paths[0], w);
  opt.decode = [&](const std::vector<int>& t) {
    return teacher.tokenizer.decode(std::vector<std::int32_t>(t.begin(), t.end()));
  };
  const compare_report r = compare(teacher.model, student.model, ids, opt, paths[0], paths[1]);
  return {compare_table(r), compare_csv(r, ids), compare_json(r), {}};
}

inline inspection inspect_sinks(const std::vector<std::string>& paths, const model_loader& load,
                                const text_window_options& w, double threshold) {
  std::vector<sinks_report> reports;
  for (const auto& p : paths) {
    const model::loaded_model m = load(p);
    reports.push_back(sinks(m.model, text_window(m, p, w), p));
  }
  return {sinks_table(reports, threshold), sinks_csv(reports, threshold), sinks_json(reports, threshold),
          [reports](const std::string& gnuplot, const std::string& dir) { return plot_sinks(gnuplot, dir, reports); }};
}

// Both models run on the first model's tokens, so that their routes line up token by token.
inline inspection inspect_routing(const std::vector<std::string>& paths, const model_loader& load,
                                  const text_window_options& w) {
  std::vector<routing_report> reports;
  std::vector<int> ids;
  for (const auto& p : paths) {
    const model::loaded_model m = load(p);
    if (ids.empty()) ids = text_window(m, p, w);
    reports.push_back(routing(m.model, ids, p));
  }
  return {
      routing_table(reports), routing_csv(reports), routing_json(reports),
      [reports](const std::string& gnuplot, const std::string& dir) { return plot_routing(gnuplot, dir, reports); }};
}

}  // namespace mla::inspect
