// mla::inspect sinks pictures: layer x head heatmaps of a sinks report (inspect/sinks.hpp), drawn by gnuplot
// (inspect/gnuplot.hpp) into a directory:
//   <prefix>first_token_mass   mean attention mass on the first token
//   <prefix>sink_mass          mean mass on the learned sink logit (only when some layer has sinks: gpt-oss)
//   change_first_token_mass, change_sink_mass   with two reports (a model and its conversion): second - first
// Each as .png and .svg, with the .dat and .gp that drew it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/inspect/gnuplot.hpp"
#include "mla/inspect/sinks.hpp"

namespace mla::inspect {

namespace detail {
inline std::string sinks_subtitle(const sinks_report& r) {
  std::filesystem::path label(r.model);  // the model's file or directory name (a directory may end in '/')
  if (label.filename().empty()) label = label.parent_path();
  return label.filename().string() + ", " + std::to_string(r.tokens) + " tokens";
}

inline bool any_sinks(const sinks_report& r) {
  return std::any_of(r.layers.begin(), r.layers.end(), [](const layer_sinks& l) { return l.has_sinks; });
}

// [layers, max heads] of value(head) (0 where a layer has fewer heads).
template <class Value>
ref::matrix<double> per_head(const sinks_report& r, Value value) {
  Eigen::Index heads = 0;
  for (const auto& l : r.layers) heads = std::max(heads, Eigen::Index(l.heads.size()));
  ref::matrix<double> m = ref::matrix<double>::Zero(Eigen::Index(r.layers.size()), heads);
  for (std::size_t l = 0; l < r.layers.size(); ++l)
    for (std::size_t h = 0; h < r.layers[l].heads.size(); ++h)
      m(Eigen::Index(l), Eigen::Index(h)) = value(r.layers[l].heads[h]);
  return m;
}
}  // namespace detail

// The heatmaps of one report, or of a model and its conversion with their change (header comment).
inline std::vector<heatmap> sinks_heatmaps(const std::vector<sinks_report>& reports) {
  check(!reports.empty() && reports.size() <= 2, "mla::inspect::sinks_heatmaps: one or two reports, found ",
        reports.size());
  for (const auto& r : reports) check(!r.layers.empty(), "mla::inspect::sinks_heatmaps: the report has no layers");
  if (reports.size() == 2) detail::check_same_heads(reports);
  const auto first = [](const head_sinks& h) { return h.first_mass; };
  const auto sink = [](const head_sinks& h) { return h.sink_mass; };
  const bool sinks = std::any_of(reports.begin(), reports.end(), detail::any_sinks);
  std::vector<heatmap> out;
  for (std::size_t i = 0; i < reports.size(); ++i) {
    const sinks_report& r = reports[i];
    const std::string prefix = reports.size() == 1 ? "" : i == 0 ? "model_" : "compare_";
    const std::string of = detail::sinks_subtitle(r);
    out.push_back({prefix + "first_token_mass", "Attention mass on the first token", of, "query head", "layer",
                   "mean p(key 0)", detail::per_head(r, first)});
    if (sinks)
      out.push_back({prefix + "sink_mass", "Attention mass on the learned sink", of, "query head", "layer",
                     "mean p(sink)", detail::per_head(r, sink)});
  }
  if (reports.size() == 2) {
    const std::string of = detail::sinks_subtitle(reports[1]) + " minus " + detail::sinks_subtitle(reports[0]);
    out.push_back({"change_first_token_mass", "Change of the first-token mass by the conversion", of, "query head",
                   "layer", "difference", detail::per_head(reports[1], first) - detail::per_head(reports[0], first)});
    if (sinks)
      out.push_back({"change_sink_mass", "Change of the sink mass by the conversion", of, "query head", "layer",
                     "difference", detail::per_head(reports[1], sink) - detail::per_head(reports[0], sink)});
  }
  return out;
}

// Draws the heatmaps into `dir` (an existing directory); returns the pictures written.
inline std::vector<std::string> plot_sinks(const std::string& gnuplot, const std::string& dir,
                                           const std::vector<sinks_report>& reports) {
  std::vector<std::string> files;
  for (const heatmap& hm : sinks_heatmaps(reports))
    for (const std::string& f : draw_heatmap(gnuplot, dir, hm)) files.push_back(f);
  return files;
}

}  // namespace mla::inspect
