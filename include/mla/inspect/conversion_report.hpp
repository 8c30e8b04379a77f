// mla::inspect conversion report: what mla-convert --report DIR writes about one conversion (convert/run.hpp's
// conversion_result, the recipe that ran it and the source model's config), into a new directory DIR built as
// DIR.tmp.<pid> and renamed when complete (io/atomic_directory.hpp):
//   report.json    conversion_report_json(): the settings, per layer the kind, rank, d_R and KV-cache bytes
//                  original vs converted, the stage report's rows (relative error of attention outputs on the
//                  held-out tokens after each stage), the layer-wise distillation's held-out losses, the
//                  end-to-end stage's held-out KL and its curve, the KV-cache totals, the pictures' names
//   index.html     conversion_report_html(): the same numbers, rendered from that JSON (one page, inline style,
//                  nothing fetched), and an <img> of each picture
//   pictures       drawn by gnuplot (inspect/gnuplot.hpp), each <name>.png and <name>.svg beside the <name>.dat
//                  and <name>.gp that drew it: stage_error (per-layer error, one line per stage, log y), kv_bytes
//                  (per-layer KV bytes per token, original vs converted, bars), distill (the layer-wise
//                  distillation's held-out loss before -> after, when it ran) and e2e_kl (the end-to-end
//                  held-out KL by step, when that stage ran)
// Without gnuplot (an empty path) the JSON and HTML are still written; the page says how to get the pictures and
// the progress gets one note.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/convert/recipe.hpp"
#include "mla/convert/run.hpp"
#include "mla/core/error.hpp"
#include "mla/inspect/gnuplot.hpp"
#include "mla/io/atomic_directory.hpp"
#include "mla/model/model_config.hpp"
#include "mla/util/output_path.hpp"

namespace mla::inspect {

// Bytes per cached element in the report's KV-cache numbers (float32, as print_report counts them).
inline constexpr long report_kv_bytes_per_element = 4;

// The report's numbers (see the header comment). Doubles keep every bit (nlohmann/json writes the shortest
// representation that reads back the same); a non-finite value becomes null.
template <class T>
nlohmann::ordered_json conversion_report_json(const convert::conversion_recipe& r, const model::model_config& source,
                                              const convert::conversion_result<T>& res) {
  using json = nlohmann::ordered_json;
  const model::model_config& conv = res.conversion.config;
  check(conv.n_layers == source.n_layers, "mla::inspect::conversion_report_json: the conversion has ", conv.n_layers,
        " layers, the source ", source.n_layers);
  std::string moment;
  for (const auto& [name, m] : convert::moment_names())
    if (m == r.layer.factor.moment) moment = name;
  json s;  // the run's settings, by flag
  s["--model"] = r.model_path;
  if (r.resumes()) s["--from"] = r.from_dir;
  s["--method"] = convert::to_string(r.layer.factor.method);
  s["--rope"] = convert::to_string(r.layer.rope.strategy);
  s["--rope-dim"] = r.layer.rope.rope_dim;
  s["--moment"] = moment;
  s["--centre"] = r.layer.factor.centre;
  if (r.kv_budget > 0) s["--kv-budget"] = r.kv_budget;
  if (r.layer.rank > 0) s["--rank"] = r.layer.rank;
  if (r.full_rank) s["--full-rank"] = true;
  s["--allocation"] = convert::to_string(r.allocation);
  s["--calib"] = r.calib_path;
  s["--calib-tokens"] = r.calib_tokens;
  s["--heldout-tokens"] = r.heldout_tokens;
  s["--window"] = r.window;
  if (r.refit_used()) {
    s["--refit-mode"] = convert::to_string(r.refit_mode_used());
    s["--refit-o-proj"] = r.refit_o_proj_used();
    s["--refit-tokens"] = r.refit_tokens;
  }
  if (r.distill_used()) {
    s["--distill-steps"] = r.distill.steps;
    s["--distill-lr"] = r.distill.learning_rate;
    s["--distill-mode"] = convert::to_string(r.distill_mode);
    s["--distill-batch"] = r.distill.batch_windows;
    s["--distill-tokens"] = r.distill_tokens;
  }
  s["--latent-norm"] = r.latent_norm;
  if (r.e2e.steps > 0) {
    s["--e2e-steps"] = r.e2e.steps;
    s["--e2e-lr"] = r.e2e.learning_rate;
    s["--e2e-batch"] = r.e2e.batch_windows;
    s["--e2e-tokens"] = r.e2e_tokens;
  }
  s["--out"] = r.out_dir;
  s["--dtype"] = r.dtype;
  if (r.exports()) s["--export"] = r.export_kind_used();

  json j;
  j["settings"] = s;
  j["model"] = {{"architecture", source.architecture}, {"n_layers", source.n_layers}, {"n_heads", source.n_heads},
                {"n_kv_heads", source.n_kv_heads},     {"head_dim", source.head_dim}, {"hidden", source.hidden}};
  j["heldout_tokens"] = res.heldout_tokens;
  j["converted_layers"] = res.layers;
  json layers = json::array();
  long before = 0, after = 0;
  for (int l = 0; l < source.n_layers; ++l) {
    const model::layer_config& lc = conv.layers[std::size_t(l)];
    const long b = source.kv_elements_per_token(l) * report_kv_bytes_per_element,
               a = conv.kv_elements_per_token(l) * report_kv_bytes_per_element;
    before += b, after += a;
    layers.push_back({{"layer", l},
                      {"attention", model::to_string(lc.attention)},
                      {"latent_rank", lc.latent_rank},
                      {"rope_dim", lc.rope_dim},
                      {"kv_bytes_original", b},
                      {"kv_bytes_converted", a}});
  }
  j["layers"] = layers;
  json stages = json::array();
  for (const auto& row : res.report.rows) {
    json v = json::array();
    for (double e : row.per_layer) v.push_back(std::isfinite(e) ? json(e) : json());
    stages.push_back({{"stage", convert::to_string(row.id)}, {"per_layer", v}});
  }
  j["stages"] = stages;
  const long ctx = r.report_context;
  j["kv_cache"] = {{"bytes_per_token_original", before},
                   {"bytes_per_token_converted", after},
                   {"context", ctx},
                   {"bytes_at_context_original", source.kv_elements_at_context(ctx) * report_kv_bytes_per_element},
                   {"bytes_at_context_converted", conv.kv_elements_at_context(ctx) * report_kv_bytes_per_element}};
  if (r.distill_used()) {
    json d = json::array();
    for (int l : res.layers) {
      const convert::distill_report& dr = res.conversion.distill.at(std::size_t(l));
      d.push_back({{"layer", l},
                   {"heldout_before", dr.heldout_before},
                   {"heldout_after", dr.heldout_after},
                   {"best_step", dr.best_step}});
    }
    j["distill"] = d;
  }
  if (r.e2e.steps > 0) {
    json curve = json::array();
    for (const auto& [step, kl] : res.e2e_curve) curve.push_back({step, kl});
    j["e2e"] = {{"heldout_kl_before", res.e2e.heldout_before},
                {"heldout_kl_after", res.e2e.heldout_after},
                {"best_step", res.e2e.best_step},
                {"window", res.e2e_window},
                {"temperature", r.e2e.temperature},
                {"trainable", r.e2e_trainable()},
                {"teacher_top_k", r.e2e.teacher_top_k},
                {"curve", curve}};
  }
  j["pictures"] = json::array();
  return j;
}

namespace detail {

inline std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A report number as the page shows it: "%.3e" for errors and losses, "%.5f" for KL, integers as they are.
inline std::string report_number(const nlohmann::ordered_json& v, const char* format = "%.3e") {
  if (v.is_null()) return "n/a";
  if (v.is_number_integer() || v.is_number_unsigned()) return std::to_string(v.get<long long>());
  if (v.is_number()) {
    char buf[48];
    std::snprintf(buf, sizeof buf, format, v.get<double>());
    return buf;
  }
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

// A data value gnuplot skips on a log axis: non-positive or non-finite values become NaN.
inline std::string gp_log_value(double v) {
  if (!(v > 0) || !std::isfinite(v)) return "NaN";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// The head of a report picture's script: both terminals share the settings, the plot command follows.
inline std::string report_script_head(const std::string& name, const std::string& title, const std::string& xlabel,
                                      const std::string& ylabel) {
  std::string gp;
  gp +=
      "# drawn by mla-convert --report (mla::inspect::write_conversion_report); redraw with: gnuplot " + name + ".gp\n";
  gp += "if (!exists('suffix')) suffix = ''  # run_gnuplot sets '.tmp' and renames the outputs afterwards\n";
  gp += "set title " + gp_quote(title) + " noenhanced\n";
  gp += "set xlabel " + gp_quote(xlabel) + " noenhanced\n";
  gp += "set ylabel " + gp_quote(ylabel) + " noenhanced\n";
  gp += "set grid ytics lc rgb '#dddddd'\nset key outside right top noenhanced\nset tics font ',10'\n";
  gp += "set datafile missing 'NaN'\n";
  return gp;
}

// The tail: the plot command drawn into <name>.png (pngcairo) and <name>.svg, 900 x 500 pixels.
inline std::string report_script_tail(const std::string& name, const std::string& plot) {
  std::string gp;
  gp += "set terminal pngcairo size 900,500 font 'DejaVu Sans,11' noenhanced\n";
  gp += "set output " + gp_quote(name + ".png") + ".suffix\n";
  gp += plot + "\n";
  gp += "set terminal svg size 900,500 font 'DejaVu Sans,11' noenhanced background '#ffffff'\n";
  gp += "set output " + gp_quote(name + ".svg") + ".suffix\n";
  gp += "replot\nunset output\n";
  return gp;
}

struct report_picture {
  std::string name;     // file stem
  std::string caption;  // what it shows (the page's caption)
  std::string data;     // <name>.dat
  std::string script;   // <name>.gp
};

// The pictures of a report (its JSON), in the page's order; a picture with nothing to draw is left out.
inline std::vector<report_picture> report_pictures(const nlohmann::ordered_json& j) {
  std::vector<report_picture> out;
  const std::string tokens = std::to_string(j.at("heldout_tokens").get<long>()) + " held-out tokens";
  const auto& layers = j.at("layers");
  const std::size_t n = layers.size();
  {  // stage error per layer: one column per stage with a positive value somewhere
    std::vector<std::size_t> drawn;
    const auto& stages = j.at("stages");
    for (std::size_t s = 0; s < stages.size(); ++s)
      for (const auto& v : stages[s].at("per_layer"))
        if (v.is_number() && v.get<double>() > 0) {
          drawn.push_back(s);
          break;
        }
    if (!drawn.empty()) {
      report_picture p{
          "stage_error",
          "Relative error of attention outputs per layer after each stage (" + tokens + ", teacher-forced; log scale)",
          "", ""};
      p.data = "# layer";
      for (std::size_t s : drawn) p.data += " " + stages[s].at("stage").get<std::string>();
      p.data += "\n";
      for (std::size_t l = 0; l < n; ++l) {
        p.data += std::to_string(l);
        for (std::size_t s : drawn) {
          const auto& v = stages[s].at("per_layer").at(l);
          p.data += " " + gp_log_value(v.is_number() ? v.get<double>() : 0.0);
        }
        p.data += "\n";
      }
      // A marker per stage: a stage that changed nothing (e2e that kept step 0) hides the line under it.
      const int point_types[6] = {7, 5, 9, 11, 13, 3};
      std::string plot = "plot ";
      for (std::size_t i = 0; i < drawn.size(); ++i)
        plot += std::string(i ? ", " : "") + "'stage_error.dat' using 1:" + std::to_string(i + 2) +
                " with linespoints pt " + std::to_string(point_types[i % 6]) + " ps 0.8 lw 1.5 title " +
                gp_quote(stages[drawn[i]].at("stage").get<std::string>());
      p.script = report_script_head(p.name, "Stage report: relative error of attention outputs", "layer",
                                    "relative error (log)") +
                 "set logscale y\nset format y '%.0e'\nset xrange [-0.5:" + std::to_string(n) + "-0.5]\n" +
                 report_script_tail(p.name, plot);
      out.push_back(std::move(p));
    }
  }
  {  // KV bytes per layer, original vs converted
    report_picture p{"kv_bytes", "KV-cache bytes per token of each layer (float32): original vs converted", "", ""};
    p.data = "# layer original converted\n";
    for (std::size_t l = 0; l < n; ++l)
      p.data += std::to_string(l) + " " + std::to_string(layers[l].at("kv_bytes_original").get<long>()) + " " +
                std::to_string(layers[l].at("kv_bytes_converted").get<long>()) + "\n";
    const std::string every = std::to_string(n > 16 ? 5 : 1);
    const std::string plot = "plot 'kv_bytes.dat' using 2:xtic(int($1) % " + every +
                             " == 0 ? stringcolumn(1) : '') title 'original' lc rgb '#9e9e9e', "
                             "'' using 3 title 'converted' lc rgb '#1f77b4'";
    const auto& kv = j.at("kv_cache");
    const double share =
        100.0 * kv.at("bytes_per_token_converted").get<double>() / kv.at("bytes_per_token_original").get<double>();
    char title[160];
    std::snprintf(title, sizeof title, "KV cache per token and layer: converted %.1f %% of the original", share);
    p.script = report_script_head(p.name, title, "layer", "bytes per token (float32)") +
               "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.9 border -1\n"
               "set yrange [0:*]\n" +
               report_script_tail(p.name, plot);
    out.push_back(std::move(p));
  }
  if (j.contains("distill") && !j.at("distill").empty()) {
    report_picture p{"distill", "Layer-wise distillation: each layer's own held-out loss before and after (log scale)",
                     "", ""};
    p.data = "# layer before after\n";
    for (const auto& d : j.at("distill"))
      p.data += std::to_string(d.at("layer").get<int>()) + " " + gp_log_value(d.at("heldout_before").get<double>()) +
                " " + gp_log_value(d.at("heldout_after").get<double>()) + "\n";
    const std::string plot =
        "plot 'distill.dat' using 1:2 with linespoints pt 7 ps 0.6 lw 1.5 title 'before', "
        "'' using 1:3 with linespoints pt 7 ps 0.6 lw 1.5 title 'after'";
    p.script = report_script_head(p.name, "Layer-wise distillation: held-out relative squared error", "layer",
                                  "held-out loss (log)") +
               "set logscale y\nset format y '%.0e'\nset autoscale xfix\nset offsets 0.5, 0.5, 0, 0\n" +
               report_script_tail(p.name, plot);
    out.push_back(std::move(p));
  }
  if (j.contains("e2e") && !j.at("e2e").at("curve").empty()) {
    report_picture p{
        "e2e_kl",
        "End-to-end distillation: held-out KL to the source model (nats per token) by step, step 0 before the first",
        "", ""};
    p.data = "# step heldout_kl (step 0: before the first step)\n";
    const auto& e2e = j.at("e2e");
    if (e2e.at("curve").at(0).at(0).get<int>() > 0 && e2e.at("heldout_kl_before").is_number()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "0 %.9g\n", e2e.at("heldout_kl_before").get<double>());
      p.data += buf;
    }
    for (const auto& pt : e2e.at("curve")) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%d %.9g\n", pt.at(0).get<int>(), pt.at(1).get<double>());
      p.data += buf;
    }
    const std::string plot = "plot 'e2e_kl.dat' using 1:2 with linespoints pt 7 ps 0.6 lw 1.5 title 'held-out KL'";
    p.script = report_script_head(p.name, "End-to-end distillation: held-out KL to the source", "step",
                                  "KL (nats per token)") +
               "set autoscale xfix\nset offsets 0.5, 0.5, graph 0.05, graph 0.05\n" + report_script_tail(p.name, plot);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace detail

// The page: the KV-cache summary, the pictures (or how to get them when `gnuplot_found` is false), the per-layer
// table (kind, rank, d_R, KV bytes, one column per stage; each stage cell has id "err-<stage>-<layer>"), the
// distillation's and the end-to-end stage's numbers, and the settings.
inline std::string conversion_report_html(const nlohmann::ordered_json& j, bool gnuplot_found) {
  using detail::html_escape;
  using detail::report_number;
  std::string h;
  const auto& s = j.at("settings");
  const std::string model = s.at("--model").get<std::string>();
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<title>mla-convert report: " + html_escape(std::filesystem::path(model).filename().string()) + "</title>\n";
  h += "<style>\n"
       "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#222;max-width:1150px}\n"
       "h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}\n"
       "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\n"
       "th{background:#f0f0f0}td.k{text-align:left;font-family:monospace}\n"
       "tr.mla td{background:#f4f9ff}figure{margin:16px 0}img{max-width:100%;border:1px solid #ddd}\n"
       ".note{background:#fff4d6;border:1px solid #e0c060;padding:8px}code{background:#f4f4f4;padding:1px 3px}\n"
       "</style>\n</head>\n<body>\n";
  h += "<h1>mla-convert report: " + html_escape(model) + "</h1>\n";

  const auto& kv = j.at("kv_cache");
  const double before = kv.at("bytes_per_token_original").get<double>(),
               after = kv.at("bytes_per_token_converted").get<double>();
  char line[512];
  std::snprintf(line, sizeof line,
                "<p id=\"kv-summary\">KV cache per token (all %d layers, float32): original <b>%lld</b> bytes, "
                "converted <b>%lld</b> bytes (%.1f %% of the original, %.1f %% saved). One %lld-token sequence: "
                "%.2f MiB &rarr; %.2f MiB.</p>\n",
                j.at("model").at("n_layers").get<int>(), kv.at("bytes_per_token_original").get<long long>(),
                kv.at("bytes_per_token_converted").get<long long>(), 100.0 * after / before,
                100.0 - 100.0 * after / before, kv.at("context").get<long long>(),
                kv.at("bytes_at_context_original").get<double>() / 1048576.0,
                kv.at("bytes_at_context_converted").get<double>() / 1048576.0);
  h += line;
  if (j.contains("e2e")) {
    const auto& e = j.at("e2e");
    h += "<p id=\"e2e-summary\">End-to-end distillation: held-out KL to the source " +
         report_number(e.at("heldout_kl_before"), "%.5f") + " &rarr; " +
         report_number(e.at("heldout_kl_after"), "%.5f") + " nats per token (best step " +
         report_number(e.at("best_step")) + ", windows of " + report_number(e.at("window")) + " tokens).</p>\n";
  }

  h += "<h2>Pictures</h2>\n";
  if (!gnuplot_found)
    h += "<p class=\"note\" id=\"no-gnuplot\">No pictures: gnuplot was not found when this report was written. "
         "Install it (Debian/Ubuntu: <code>apt-get install gnuplot-nox</code>) and run mla-convert --report again; "
         "the numbers below are complete without them.</p>\n";
  else {
    const auto pics = detail::report_pictures(j);
    for (const auto& p : pics)
      h += "<figure><img src=\"" + p.name + ".png\" alt=\"" + html_escape(p.caption) + "\"><figcaption>" +
           html_escape(p.caption) + " (<a href=\"" + p.name + ".svg\">SVG</a>, data <a href=\"" + p.name + ".dat\">" +
           p.name + ".dat</a>)</figcaption></figure>\n";
  }

  const auto& stages = j.at("stages");
  h += "<h2>Stage report</h2>\n<p>Relative error of attention outputs on " + report_number(j.at("heldout_tokens")) +
       " held-out tokens after each stage (teacher-forced; 0 for layers left GQA)" +
       (stages.empty() ? std::string(": none (--heldout-tokens 0)") : std::string()) + ".</p>\n";
  h += "<table id=\"stages\">\n<tr><th>layer</th><th>kind</th><th>rank</th><th>d_R</th><th>KV bytes original</th>"
       "<th>KV bytes converted</th>";
  for (const auto& st : stages) h += "<th>" + html_escape(st.at("stage").get<std::string>()) + "</th>";
  h += "</tr>\n";
  const auto& layers = j.at("layers");
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const auto& ly = layers[l];
    const std::string kind = ly.at("attention").get<std::string>();
    h += "<tr class=\"" + kind + "\"><td>" + std::to_string(l) + "</td><td>" + kind + "</td><td>" +
         report_number(ly.at("latent_rank")) + "</td><td>" + report_number(ly.at("rope_dim")) + "</td><td>" +
         report_number(ly.at("kv_bytes_original")) + "</td><td>" + report_number(ly.at("kv_bytes_converted")) + "</td>";
    for (const auto& st : stages)
      h += "<td id=\"err-" + st.at("stage").get<std::string>() + "-" + std::to_string(l) + "\">" +
           report_number(st.at("per_layer").at(l)) + "</td>";
    h += "</tr>\n";
  }
  h += "</table>\n";

  if (j.contains("distill")) {
    h += "<h2>Layer-wise distillation</h2>\n<p>Each layer's own held-out loss (relative squared error of its "
         "attention output) before and after, and the step kept.</p>\n<table id=\"distill\">\n"
         "<tr><th>layer</th><th>before</th><th>after</th><th>best step</th></tr>\n";
    for (const auto& d : j.at("distill")) {
      const std::string l = std::to_string(d.at("layer").get<int>());
      h += "<tr><td>" + l + "</td><td id=\"distill-before-" + l + "\">" + report_number(d.at("heldout_before")) +
           "</td><td id=\"distill-after-" + l + "\">" + report_number(d.at("heldout_after")) + "</td><td>" +
           report_number(d.at("best_step")) + "</td></tr>\n";
    }
    h += "</table>\n";
  }
  if (j.contains("e2e") && !j.at("e2e").at("curve").empty()) {
    h += "<h2>End-to-end distillation</h2>\n<p>Held-out KL to the source model (nats per token) at each "
         "validation.</p>\n<table id=\"e2e\">\n<tr><th>step</th><th>held-out KL</th></tr>\n";
    for (const auto& pt : j.at("e2e").at("curve")) {
      const std::string step = report_number(pt.at(0));
      h += "<tr><td>" + step + "</td><td id=\"e2e-" + step + "\">" + report_number(pt.at(1), "%.5f") + "</td></tr>\n";
    }
    h += "</table>\n";
  }
  h += "<h2>Settings</h2>\n<table>\n";
  for (auto it = s.begin(); it != s.end(); ++it)
    h += "<tr><td class=\"k\">" + html_escape(it.key()) + "</td><td class=\"k\">" +
         html_escape(report_number(it.value(), "%g")) + "</td></tr>\n";
  const auto& m = j.at("model");
  h += "<tr><td class=\"k\">source model</td><td class=\"k\">" + html_escape(m.at("architecture").get<std::string>()) +
       ", " + report_number(m.at("n_layers")) + " layers, " + report_number(m.at("n_heads")) + " heads / " +
       report_number(m.at("n_kv_heads")) + " KV heads x " + report_number(m.at("head_dim")) + ", hidden " +
       report_number(m.at("hidden")) + "</td></tr>\n</table>\n";

  h += "<p style=\"color:#777;font-size:11px;margin-top:28px\">Written by mla-convert --report; the same numbers "
       "are in <a href=\"report.json\">report.json</a>.</p>\n</body>\n</html>\n";
  return h;
}

// Fails before any work when DIR cannot be created: its parent must be a writable directory and DIR must not
// exist (nothing is overwritten). `flag` names the option in the message.
inline void check_report_path(const std::string& dir, const std::string& flag = "--report") {
  util::check_can_create(flag, dir);
  io::check_new_output_path(dir, flag);
}

// What write_conversion_report wrote: the directory's file names (report.json, index.html, then the pictures).
struct conversion_report_files {
  std::vector<std::string> files;
  bool pictures = false;  // gnuplot drew them
};

// Writes the report of one conversion into the new directory `dir` (see the header comment). `gnuplot`: the
// executable (find_gnuplot), empty when there is none: then no pictures, and `progress` gets one note saying how
// to install it. An error removes the partial directory.
template <class T>
conversion_report_files write_conversion_report(const std::string& dir, const convert::conversion_recipe& r,
                                                const model::model_config& source,
                                                const convert::conversion_result<T>& res, const std::string& gnuplot,
                                                convert::conversion_progress& progress = convert::silent_progress()) {
  namespace fs = std::filesystem;
  io::atomic_directory out(dir, "--report");
  progress.info("writing " + dir);
  nlohmann::ordered_json j = conversion_report_json(r, source, res);
  conversion_report_files written;
  written.files = {"report.json", "index.html"};
  if (!gnuplot.empty()) {
    for (const detail::report_picture& p : detail::report_pictures(j)) {
      const std::string stem = out.file(p.name);
      out.write_file(p.name + ".dat", p.data);
      out.write_file(p.name + ".gp", p.script);
      run_gnuplot(gnuplot, stem + ".gp", {stem + ".png", stem + ".svg"});
      j["pictures"].push_back(p.name + ".png");
      j["pictures"].push_back(p.name + ".svg");
      written.files.push_back(p.name + ".png");
      written.files.push_back(p.name + ".svg");
    }
    written.pictures = true;
  } else {
    progress.note("--report: " + gnuplot_missing_message());
  }
  out.write_file("report.json", j.dump(2) + "\n");
  out.write_file("index.html", conversion_report_html(j, written.pictures));
  out.commit();
  return written;
}

}  // namespace mla::inspect
