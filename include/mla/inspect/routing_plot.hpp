// mla::inspect routing pictures: the expert load of one or two routing reports (inspect/routing.hpp) as bars, drawn
// by gnuplot (inspect/gnuplot.hpp) into a directory:
//   <prefix>expert_load   one panel per MoE layer; a bar per expert: its share of the layer's routed slots,
//                         load[e] / (k n) (the shares of a layer sum to 1), a second report's bars beside the
//                         first's, and a dashed line at the even share 1 / n_experts; the subtitle names the
//                         models with their colours (no key inside the panels, where it would cover bars)
// As .png and .svg, with the .dat (one block per layer: expert, share of each report) and the .gp that drew it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/inspect/gnuplot.hpp"
#include "mla/inspect/routing.hpp"
#include "mla/util/output_path.hpp"

namespace mla::inspect {

// Each layer's load as shares of its routed slots: [n_layers, n_experts], rows sum to 1.
inline ref::matrix<double> expert_load_share(const routing_report& r) {
  check(!r.layers.empty() && r.n_experts > 0 && !r.tokens.empty(), "mla::inspect::expert_load_share: the report of '",
        r.model, "' is empty");
  ref::matrix<double> s(Eigen::Index(r.layers.size()), r.n_experts);
  const double slots = double(r.top_k) * double(r.tokens.size());
  for (std::size_t l = 0; l < r.layers.size(); ++l) {
    check(r.layers[l].load.size() == std::size_t(r.n_experts), "mla::inspect::expert_load_share: layer ", l, " of '",
          r.model, "' has ", r.layers[l].load.size(), " loads, expected ", r.n_experts);
    for (int e = 0; e < r.n_experts; ++e) s(Eigen::Index(l), e) = double(r.layers[l].load[std::size_t(e)]) / slots;
  }
  return s;
}

namespace detail {
// The model's file or directory name (a directory may end in '/').
inline std::string expert_load_label(const std::string& path) {
  std::filesystem::path p(path);
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}
}  // namespace detail

// Writes <dir>/<name>.dat and <dir>/<name>.gp for the expert-load bars of one or two reports (same layers and
// experts: the first is the original); returns the script's path.
inline std::string write_expert_load(const std::string& dir, const std::vector<routing_report>& reports,
                                     const std::string& name = "expert_load") {
  namespace fs = std::filesystem;
  check(reports.size() == 1 || reports.size() == 2, "mla::inspect::write_expert_load: one or two reports, found ",
        reports.size());
  std::vector<ref::matrix<double>> shares;
  for (const auto& r : reports) shares.push_back(expert_load_share(r));
  if (reports.size() == 2)
    check(shares[1].rows() == shares[0].rows() && shares[1].cols() == shares[0].cols(),
          "mla::inspect::write_expert_load: '", reports[1].model, "' has ", shares[1].rows(), " layers of ",
          shares[1].cols(), " experts, '", reports[0].model, "' ", shares[0].rows(), " of ", shares[0].cols());
  const long layers = long(shares[0].rows()), experts = long(shares[0].cols());
  std::string data;
  char num[64];
  double top = 1.0 / double(experts);
  for (long l = 0; l < layers; ++l) {
    data += l ? "\n\n" : "";
    std::snprintf(num, sizeof num, "# layer %d: expert", reports[0].layers[std::size_t(l)].layer);
    data += num;
    for (const auto& r : reports) data += " '" + detail::expert_load_label(r.model) + "'";
    data += "\n";
    for (long e = 0; e < experts; ++e) {
      std::snprintf(num, sizeof num, "%ld", e);
      data += num;
      for (const auto& s : shares) {
        std::snprintf(num, sizeof num, " %.6g", s(l, e));
        data += num;
        top = std::max(top, s(l, e));
      }
      data += "\n";
    }
  }
  const std::string stem = (fs::path(dir) / name).string();
  util::write_file("--plot", stem + ".dat", data);

  const long cols = std::min(layers, 4L), rows = (layers + cols - 1) / cols;
  long xstep = 1;  // at most 8 labels under a panel (a few hundred pixels wide)
  for (const long s : {2L, 4L, 5L, 8L, 10L, 16L, 20L, 32L, 50L, 64L, 100L})
    if (experts > 8 * xstep) xstep = s;
  std::string of = detail::expert_load_label(reports[0].model);
  if (reports.size() == 2)  // the subtitle is the key: a key inside a panel would cover its bars
    of += " (blue, left bars) and " + detail::expert_load_label(reports[1].model) + " (green, right bars)";
  of += ", " + std::to_string(reports[0].tokens.size()) + " tokens, top-" + std::to_string(reports[0].top_k) + " of " +
        std::to_string(experts) + " experts";
  std::string body;  // the multiplot, drawn once per terminal
  body += "set multiplot layout " + std::to_string(rows) + "," + std::to_string(cols) + " title " +
          detail::gp_quote("Expert load per MoE layer: share of the routed slots (dashed: even share)") + ".\"\\n\"." +
          detail::gp_quote(of) + " font ',14' noenhanced\n";
  const double bar = reports.size() == 2 ? 0.4 : 0.8;
  char even[64];
  std::snprintf(even, sizeof even, "%.9g", 1.0 / double(experts));
  for (long l = 0; l < layers; ++l) {
    body += "set title " + detail::gp_quote("layer " + std::to_string(reports[0].layers[std::size_t(l)].layer)) +
            " noenhanced\n";
    body += "plot ";
    for (std::size_t i = 0; i < reports.size(); ++i) {
      std::snprintf(num, sizeof num, "($1%+.2f):%zu:(%.2f)", reports.size() == 2 ? (i ? 0.2 : -0.2) : 0.0, i + 2, bar);
      body += std::string(i ? ", '' " : detail::gp_quote(name + ".dat") + " ") + "index " + std::to_string(l) +
              " using " + num + " with boxes lc rgb '" + (i ? "#5ec962" : "#3b528b") + "' title " +
              detail::gp_quote(detail::expert_load_label(reports[i].model));
    }
    body += std::string(", ") + even + " with lines dt 2 lw 1.5 lc rgb '#444444' title 'even share'\n";
  }
  body += "unset multiplot\n";

  char range[160];
  std::string gp;
  gp += "# drawn by mla-inspect (mla::inspect::write_expert_load); redraw with: gnuplot " + name + ".gp\n";
  gp += "if (!exists('suffix')) suffix = ''  # run_gnuplot sets '.tmp' and renames the outputs afterwards\n";
  gp += "set style fill solid 0.85 noborder\nunset key\n";
  std::snprintf(range, sizeof range, "set xrange [-0.6:%ld.4]\nset yrange [0:%.4g]\n", experts - 1, top * 1.15);
  gp += range;
  gp += "set xtics 0," + std::to_string(xstep) + " out nomirror font ',10'\nset ytics out nomirror font ',10'\n";
  gp += "set grid ytics lc rgb '#dddddd'\nset xlabel 'expert' noenhanced\nset ylabel 'share' noenhanced\n";
  const std::string size = "size 1200," + std::to_string(120 + 280 * rows);
  gp += "set terminal pngcairo " + size + " font 'DejaVu Sans,12' noenhanced\n";
  gp += "set output " + detail::gp_quote(name + ".png") + ".suffix\n" + body;
  gp += "set terminal svg " + size + " font 'DejaVu Sans,12' noenhanced background '#ffffff'\n";
  gp += "set output " + detail::gp_quote(name + ".svg") + ".suffix\n" + body + "unset output\n";
  util::write_file("--plot", stem + ".gp", gp);
  return stem + ".gp";
}

// Draws the expert-load bars of one or two reports into `dir` (an existing directory); returns the pictures.
inline std::vector<std::string> plot_routing(const std::string& gnuplot, const std::string& dir,
                                             const std::vector<routing_report>& reports,
                                             const std::string& prefix = "") {
  const std::string name = prefix + "expert_load";
  const std::string script = write_expert_load(dir, reports, name);
  const std::string stem = (std::filesystem::path(dir) / name).string();
  const std::vector<std::string> outputs{stem + ".png", stem + ".svg"};
  run_gnuplot(gnuplot, script, outputs);
  return outputs;
}

}  // namespace mla::inspect
