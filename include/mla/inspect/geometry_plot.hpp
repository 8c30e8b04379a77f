// mla::inspect geometry pictures: layer x head heatmaps of a geometry report (inspect/geometry.hpp), drawn by
// gnuplot (inspect/gnuplot.hpp) into a directory:
//   <prefix>rope_energy_layer_freq   layer x RoPE frequency: each layer's 2-norm score sqrt(q_energy * k_energy)
//                                     summed over its heads, as a share of the layer's total (rows sum to 1)
//   <prefix>rope_centroid            layer x head: the score-weighted mean frequency index (0 = fastest pair)
//   <prefix>q_norm, <prefix>k_norm   layer x head: mean ||q_h||, ||k_h||
//   <prefix>entropy_ratio            layer x head: attention entropy / uniform entropy (the effective temperature)
// Each as .png and .svg, with the .dat and .gp that drew it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/inspect/geometry.hpp"
#include "mla/inspect/gnuplot.hpp"

namespace mla::inspect {

// The heatmaps of one report (see the header comment); `prefix` starts every file name.
inline std::vector<heatmap> geometry_heatmaps(const geometry_report& r, const std::string& prefix = "") {
  check(!r.layers.empty(), "mla::inspect::geometry_heatmaps: the report has no layers");
  const Eigen::Index layers = Eigen::Index(r.layers.size());
  Eigen::Index heads = 0, freqs = 0;
  for (const auto& lg : r.layers) {
    heads = std::max(heads, Eigen::Index(lg.heads.size()));
    for (const auto& g : lg.heads) freqs = std::max(freqs, Eigen::Index(g.q_energy.size()));
  }
  std::filesystem::path label(r.model);  // the model's file or directory name (a directory may end in '/')
  if (label.filename().empty()) label = label.parent_path();
  const std::string of = label.filename().string() + ", " + std::to_string(r.tokens) + " tokens";
  bool mla = false;  // converted layers number their RoPE pairs with their own frequency table
  for (const auto& lg : r.layers) mla = mla || lg.attention == model::attention_kind::mla;
  auto per_head = [&](const std::string& name, const std::string& title, const std::string& cb, auto value) {
    heatmap hm{prefix + name, title, of, "query head", "layer", cb, ref::matrix<double>::Zero(layers, heads)};
    for (Eigen::Index l = 0; l < layers; ++l)
      for (std::size_t h = 0; h < r.layers[std::size_t(l)].heads.size(); ++h)
        hm.values(l, Eigen::Index(h)) = value(r.layers[std::size_t(l)].heads[h]);
    return hm;
  };
  std::vector<heatmap> out;
  if (freqs > 0) {
    heatmap e{prefix + "rope_energy_layer_freq",
              "RoPE-frequency energy per layer: sqrt(E q^2 E k^2), all heads",
              of,
              mla ? "RoPE pair of the decoupled key (its own frequency table)" : "RoPE frequency index (0 = fastest)",
              "layer",
              "share of the layer's total",
              ref::matrix<double>::Zero(layers, freqs)};
    for (Eigen::Index l = 0; l < layers; ++l) {
      for (const auto& g : r.layers[std::size_t(l)].heads) {
        const std::vector<double> s = frequency_score(g);
        for (std::size_t f = 0; f < s.size(); ++f) e.values(l, Eigen::Index(f)) += s[f];
      }
      const double total = e.values.row(l).sum();
      if (total > 0) e.values.row(l) /= total;
    }
    out.push_back(std::move(e));
    out.push_back(per_head("rope_centroid", "Where each head's RoPE energy sits: score-weighted mean frequency",
                           "mean frequency index (0 = fastest)",
                           [](const head_geometry& g) { return frequency_centroid(g); }));
  }
  out.push_back(per_head("q_norm", "Mean query norm |q|", "|q|", [](const head_geometry& g) { return g.q_norm; }));
  out.push_back(per_head("k_norm", "Mean key norm |k|", "|k|", [](const head_geometry& g) { return g.k_norm; }));
  out.push_back(per_head("entropy_ratio", "Attention entropy / uniform entropy", "H / H_max",
                         [](const head_geometry& g) { return g.entropy_ratio; }));
  return out;
}

// Draws the heatmaps into `dir` (an existing directory); returns the pictures written.
inline std::vector<std::string> plot_geometry(const std::string& gnuplot, const std::string& dir,
                                              const geometry_report& r, const std::string& prefix = "") {
  std::vector<std::string> files;
  for (const heatmap& hm : geometry_heatmaps(r, prefix))
    for (const std::string& f : draw_heatmap(gnuplot, dir, hm)) files.push_back(f);
  return files;
}

}  // namespace mla::inspect
