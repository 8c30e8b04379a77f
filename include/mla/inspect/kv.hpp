// mla::inspect kv: the KV-cache bytes of a model per token per layer and in total at given contexts, measured
// on what the decoder allocates rather than read off the config:
//   kv_usage(decoder, contexts)   prefills a fresh session (windows not trimmed) with `probe` tokens and reads
//                                 each layer's cache sizes: bytes per token of layer l = its cached elements /
//                                 probe * sizeof(T). At a context C a layer holds C tokens, or min(C, window)
//                                 where the decoder's trimmed session keeps a ring cache of `window` tokens
//                                 (sliding-window GQA layers; the window is read from decoder::new_session()).
//   kv_table / kv_csv / kv_json   one or more reports (original, converted) as a terminal table, CSV or JSON.
// The numbers are bytes of the decoder's element type T (float: 4 bytes); a deployment in bf16 halves them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/inspect/csv.hpp"
#include "mla/model/decoder.hpp"

namespace mla::inspect {

struct kv_layer {
  int layer = 0;
  model::attention_kind attention = model::attention_kind::gqa;
  long ring_window = 0;                       // tokens a ring cache keeps (0: every token)
  long elements_per_token = 0;                // cached elements per token, as allocated
  std::size_t bytes_per_token = 0;            // elements_per_token * sizeof(T)
  std::vector<std::size_t> bytes_at_context;  // [contexts] bytes held at each context
};

struct kv_report {
  std::string model;                  // a label (the model's path)
  std::size_t element_bytes = 0;      // sizeof(T)
  std::vector<long> contexts;         // [contexts] tokens
  std::vector<kv_layer> layers;       // [n_layers]
  std::size_t bytes_per_token = 0;    // sum over layers (no ring cap)
  std::vector<std::size_t> total_at;  // [contexts] sum over layers of bytes_at_context
};

// Measures the decoder's caches after a prefill of `probe` tokens (token id 0; the ids do not change sizes).
template <class T>
kv_report kv_usage(const model::decoder<T>& m, const std::vector<long>& contexts, const std::string& label = "",
                   int probe = 2) {
  const char* who = "mla::inspect::kv_usage";
  check(probe > 0, who, ": probe must be > 0 tokens, found ", probe);
  for (long c : contexts) check(c > 0, who, ": contexts must be > 0 tokens, found ", c);
  const model::model_config& cfg = m.config();
  model::session<T> full = m.new_session(/*trim_windows=*/false);
  m.hidden_states(full, std::vector<int>(static_cast<std::size_t>(probe), 0));
  const model::session<T> trimmed = m.new_session(/*trim_windows=*/true);

  kv_report r;
  r.model = label;
  r.element_bytes = sizeof(T);
  r.contexts = contexts;
  r.total_at.assign(contexts.size(), 0);
  std::size_t measured_elements = 0;
  for (int l = 0; l < cfg.n_layers; ++l) {
    const auto li = static_cast<std::size_t>(l);
    kv_layer k;
    k.layer = l;
    k.attention = cfg.layers[li].attention;
    long elements = 0;
    if (k.attention == model::attention_kind::gqa) {
      elements = static_cast<long>(full.gqa[li].k.size() + full.gqa[li].v.size());
      k.ring_window = trimmed.gqa[li].window;
    } else {
      elements = static_cast<long>(full.mla[li].c.size() + full.mla[li].k_pe.size());
    }
    measured_elements += static_cast<std::size_t>(elements);
    check(elements % probe == 0, who, ": layer ", l, " holds ", elements, " elements after ", probe,
          " tokens, not a whole number per token");
    k.elements_per_token = elements / probe;
    k.bytes_per_token = static_cast<std::size_t>(k.elements_per_token) * sizeof(T);
    for (std::size_t i = 0; i < contexts.size(); ++i) {
      const long held = k.ring_window > 0 ? std::min(contexts[i], k.ring_window) : contexts[i];
      k.bytes_at_context.push_back(k.bytes_per_token * static_cast<std::size_t>(held));
      r.total_at[i] += k.bytes_at_context.back();
    }
    r.bytes_per_token += k.bytes_per_token;
    r.layers.push_back(std::move(k));
  }
  // The per-layer reading must add up to the session's own count.
  check(measured_elements * sizeof(T) == full.kv_bytes(), who, ": internal: layers hold ",
        measured_elements * sizeof(T), " bytes, the session reports ", full.kv_bytes());
  return r;
}

namespace detail {
inline std::string mib(std::size_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", double(bytes) / 1048576.0);
  return b;
}
inline const char* kind_name(model::attention_kind k) { return k == model::attention_kind::gqa ? "gqa" : "mla"; }
}  // namespace detail

// A terminal table: per layer the bytes per token of each report, then the totals at each context, with the
// ratio of every report to the first.
inline std::string kv_table(const std::vector<kv_report>& reports) {
  check(!reports.empty(), "mla::inspect::kv_table: no reports");
  std::string out;
  char line[256];
  for (std::size_t i = 0; i < reports.size(); ++i) {
    std::snprintf(line, sizeof line, "[%zu] %s (%zu-byte elements)\n", i, reports[i].model.c_str(),
                  reports[i].element_bytes);
    out += line;
  }
  out += "\nbytes per token per layer\nlayer";
  for (std::size_t i = 0; i < reports.size(); ++i) {
    std::snprintf(line, sizeof line, "  %12s", ("[" + std::to_string(i) + "]").c_str());
    out += line;
  }
  out += "\n";
  const std::size_t n_layers = reports.front().layers.size();
  for (std::size_t l = 0; l < n_layers; ++l) {
    std::snprintf(line, sizeof line, "%5zu", l);
    out += line;
    for (const auto& r : reports) {
      if (l < r.layers.size()) {
        const kv_layer& k = r.layers[l];
        std::string cell = std::to_string(k.bytes_per_token) + " " + detail::kind_name(k.attention);
        if (k.ring_window > 0) cell += " w" + std::to_string(k.ring_window);
        std::snprintf(line, sizeof line, "  %12s", cell.c_str());
      } else {
        std::snprintf(line, sizeof line, "  %12s", "-");
      }
      out += line;
    }
    out += "\n";
  }
  out += "  all";
  for (const auto& r : reports) {
    std::snprintf(line, sizeof line, "  %12zu", r.bytes_per_token);
    out += line;
  }
  out += "\n\ntotal per sequence (MiB; ratio to [0])\n    context";
  for (std::size_t i = 0; i < reports.size(); ++i) {
    std::snprintf(line, sizeof line, "  %18s", ("[" + std::to_string(i) + "]").c_str());
    out += line;
  }
  out += "\n";
  const kv_report& base = reports.front();
  for (std::size_t c = 0; c < base.contexts.size(); ++c) {
    std::snprintf(line, sizeof line, "%11ld", base.contexts[c]);
    out += line;
    for (const auto& r : reports) {
      check(r.contexts == base.contexts, "mla::inspect::kv_table: reports for different contexts");
      std::snprintf(line, sizeof line, "  %10s (%5.3f)", detail::mib(r.total_at[c]).c_str(),
                    base.total_at[c] ? double(r.total_at[c]) / double(base.total_at[c]) : 0.0);
      out += line;
    }
    out += "\n";
  }
  return out;
}

// CSV: one row per model and layer, then one row per model with layer "all" (the totals); a bytes_at_<C>
// column per context.
inline std::string kv_csv(const std::vector<kv_report>& reports) {
  check(!reports.empty(), "mla::inspect::kv_csv: no reports");
  std::string out = "model,layer,attention,ring_window,elements_per_token,bytes_per_token";
  for (long c : reports.front().contexts) out += ",bytes_at_" + std::to_string(c);
  out += "\n";
  for (const auto& r : reports) {
    check(r.contexts == reports.front().contexts, "mla::inspect::kv_csv: reports for different contexts");
    long elements = 0;
    for (const auto& k : r.layers) {
      out += csv_quote(r.model) + "," + std::to_string(k.layer) + "," + detail::kind_name(k.attention) + "," +
             std::to_string(k.ring_window) + "," + std::to_string(k.elements_per_token) + "," +
             std::to_string(k.bytes_per_token);
      for (std::size_t b : k.bytes_at_context) out += "," + std::to_string(b);
      out += "\n";
      elements += k.elements_per_token;
    }
    out += csv_quote(r.model) + ",all,,," + std::to_string(elements) + "," + std::to_string(r.bytes_per_token);
    for (std::size_t b : r.total_at) out += "," + std::to_string(b);
    out += "\n";
  }
  return out;
}

inline nlohmann::json kv_json(const std::vector<kv_report>& reports) {
  nlohmann::json models = nlohmann::json::array();
  for (const auto& r : reports) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& k : r.layers)
      layers.push_back({{"layer", k.layer},
                        {"attention", detail::kind_name(k.attention)},
                        {"ring_window", k.ring_window},
                        {"elements_per_token", k.elements_per_token},
                        {"bytes_per_token", k.bytes_per_token},
                        {"bytes_at_context", k.bytes_at_context}});
    models.push_back({{"model", r.model},
                      {"element_bytes", r.element_bytes},
                      {"contexts", r.contexts},
                      {"bytes_per_token", r.bytes_per_token},
                      {"total_bytes_at_context", r.total_at},
                      {"layers", layers}});
  }
  return nlohmann::json{{"kv", models}};
}

}  // namespace mla::inspect
