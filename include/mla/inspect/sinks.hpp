// mla::inspect sinks: where each attention head parks its probability mass on a text, per layer and head, from
// an observer on the decoder's one forward (attention_input: each layer's normalised input xn [n, hidden]); the
// attention probabilities are recomputed from xn in float64 with the layer's weights (the reference's softmax,
// ref::attention_probabilities, on float64 queries and keys):
//   sink_mass    mean over queries t = 1..n-1 of p_h(sink | t), the probability of the learned sink logit (gpt-oss;
//                1 - the row's mass on the keys); 0 for heads without a sink.
//   first_mass   mean over the same queries of p_h(key 0 | t), the mass on the first token (0 where a window hides
//                it). Query 0 is left out of both: it sees only key 0 (and the sink).
// A head is flagged when either mass exceeds the threshold. One window per forward: positions 0..n-1.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/inspect/csv.hpp"
#include "mla/inspect/geometry.hpp"
#include "mla/model/decoder.hpp"
#include "mla/reference/attention_probabilities.hpp"
#include "mla/reference/norms.hpp"
#include "mla/reference/rope.hpp"

namespace mla::inspect {

struct head_sinks {
  double sink_mass = 0, first_mass = 0;
};

struct layer_sinks {
  int layer = 0;
  model::attention_kind attention = model::attention_kind::gqa;
  bool has_sinks = false;
  std::vector<head_sinks> heads;  // [n_heads]
};

struct sinks_report {
  std::string model;  // a label (the model's path)
  long tokens = 0;
  std::vector<layer_sinks> layers;  // [n_layers]
};

inline bool flagged(const head_sinks& h, double threshold) {
  return h.sink_mass > threshold || h.first_mass > threshold;
}

namespace detail {

// The two masses of one head from its float64 queries q [n, d] and keys k [n, d] (RoPE applied).
inline head_sinks head_masses(const dmat& q, const dmat& k, const ref::attention_options& opt, const double* sink) {
  const dmat p = ref::attention_probabilities<double>(q, k, opt, sink);  // [n, n]
  const Eigen::Index n = p.rows();
  head_sinks m;
  for (Eigen::Index t = 1; t < n; ++t) {
    if (sink) m.sink_mass += std::max(0.0, 1.0 - p.row(t).sum());
    m.first_mass += p(t, 0);
  }
  m.sink_mass /= double(n - 1), m.first_mass /= double(n - 1);
  return m;
}

template <class T>
layer_sinks gqa_sinks(int l, const ref::gqa_layer<T>& a, const ref::matrix<T>& xn) {
  const int d = a.head_dim;
  const dmat x = xn.template cast<double>();
  dmat q = linear64(x, a.wq, a.bq);  // [n, heads*d]
  dmat k = linear64(x, a.wk, a.bk);  // [n, g*d]
  const ref::rope<double> rot(a.rope);
  ref::rope_heads(rot, q, a.n_heads, d, 0);
  ref::rope_heads(rot, k, a.n_kv_heads, d, 0);
  layer_sinks ls;
  ls.layer = l, ls.attention = model::attention_kind::gqa, ls.has_sinks = a.sinks.size() != 0;
  for (int h = 0; h < a.n_heads; ++h) {
    const double sink = ls.has_sinks ? double(a.sinks[h]) : 0.0;
    ls.heads.push_back(head_masses(q.middleCols(Eigen::Index(h) * d, d),
                                   k.middleCols(Eigen::Index(a.kv_head_of(h)) * d, d), a.attention,
                                   ls.has_sinks ? &sink : nullptr));
  }
  return ls;
}

template <class T>
layer_sinks mla_sinks(int l, const ref::mla_layer<T>& a, const ref::matrix<T>& xn) {
  check(!a.uses_latent_rope(), "mla::inspect::sinks: layer ", l,
        " applies RoPE on the latent (latent_rope_offsets); only the decoupled RoPE key is supported");
  const int nope = a.nope_dim, rd = a.rope_dim, qk = a.qk_head_dim();
  const Eigen::Index n = xn.rows();
  const dmat x = xn.template cast<double>();
  dmat q = linear64(x, a.wq, a.bq);        // [n, heads*qk], per head nope then rope
  dmat c = linear64(x, a.w_dkv, a.b_dkv);  // [n, latent]
  if (a.latent_norm.size() != 0) c = ref::rms_norm(c, dvec(a.latent_norm.template cast<double>()), a.latent_norm_eps);
  dmat k_pe = rd > 0 ? linear64(x, a.w_kr, a.b_kr) : dmat(n, 0);  // [n, rd]
  const ref::rope<double> rot(a.rope);
  for (Eigen::Index t = 0; t < n && rd > 0; ++t) {
    for (int h = 0; h < a.n_heads; ++h) rot.apply(q.data() + t * q.cols() + Eigen::Index(h) * qk + nope, t);
    rot.apply(k_pe.data() + t * k_pe.cols(), t);
  }
  layer_sinks ls;
  ls.layer = l, ls.attention = model::attention_kind::mla, ls.has_sinks = a.sinks.size() != 0;
  for (int h = 0; h < a.n_heads; ++h) {
    dmat k_h(n, qk);  // [n, qk] the per-head key of the naive form: [W_uk^h c(s), k_pe(s)]
    k_h << c * a.w_uk.middleRows(Eigen::Index(h) * nope, nope).template cast<double>().transpose(), k_pe;
    const double sink = ls.has_sinks ? double(a.sinks[h]) : 0.0;
    ls.heads.push_back(
        head_masses(q.middleCols(Eigen::Index(h) * qk, qk), k_h, a.attention, ls.has_sinks ? &sink : nullptr));
  }
  return ls;
}

}  // namespace detail

template <class T>
class sinks_observer : public model::observer<T> {
 public:
  explicit sinks_observer(const model::decoder<T>& m) : m_(m) {
    layers_.resize(static_cast<std::size_t>(m.config().n_layers));
  }
  void attention_input(int l, const ref::matrix<T>& xn, long first_pos) override {
    check(first_pos == 0, "mla::inspect::sinks_observer: one window from position 0 per forward, found a chunk at ",
          first_pos);
    const auto li = static_cast<std::size_t>(l);
    const model::layer_weights<T>& lw = m_.weights().layers[li];
    layers_[li] = m_.config().layers[li].attention == model::attention_kind::gqa ? detail::gqa_sinks(l, lw.gqa, xn)
                                                                                 : detail::mla_sinks(l, lw.mla, xn);
  }
  std::vector<layer_sinks> take() { return std::move(layers_); }

 private:
  const model::decoder<T>& m_;
  std::vector<layer_sinks> layers_;
};

// The sink and first-token masses of `m` on one window of `tokens` (positions 0..n-1).
template <class T>
sinks_report sinks(const model::decoder<T>& m, const std::vector<int>& tokens, const std::string& label = "") {
  check(tokens.size() >= 2, "mla::inspect::sinks: needs at least 2 tokens, found ", tokens.size());
  sinks_observer<T> obs(m);
  model::session<T> s = m.new_session(/*trim_windows=*/false);
  m.hidden_states(s, tokens, &obs);
  sinks_report r;
  r.model = label;
  r.tokens = static_cast<long>(tokens.size());
  r.layers = obs.take();
  return r;
}

namespace detail {
inline void check_same_heads(const std::vector<sinks_report>& reports) {
  for (std::size_t i = 1; i < reports.size(); ++i) {
    check(reports[i].layers.size() == reports[0].layers.size(), "mla::inspect::sinks: '", reports[i].model, "' has ",
          reports[i].layers.size(), " layers, '", reports[0].model, "' ", reports[0].layers.size());
    for (std::size_t l = 0; l < reports[0].layers.size(); ++l)
      check(reports[i].layers[l].heads.size() == reports[0].layers[l].heads.size(), "mla::inspect::sinks: layer ", l,
            " of '", reports[i].model, "' has ", reports[i].layers[l].heads.size(), " heads, of '", reports[0].model,
            "' ", reports[0].layers[l].heads.size());
  }
}
}  // namespace detail

// Terminal table: one row per layer and head, each report's two masses side by side (the first is the original);
// with two reports, the change of each mass; '*' after a report's masses flags the head there.
inline std::string sinks_table(const std::vector<sinks_report>& reports, double threshold) {
  detail::check_same_heads(reports);
  std::string out;
  char line[256];
  for (std::size_t i = 0; i < reports.size(); ++i) {
    std::snprintf(line, sizeof line, "%s %s: %ld tokens\n", i ? "compare" : "model  ", reports[i].model.c_str(),
                  reports[i].tokens);
    out += line;
  }
  std::snprintf(line, sizeof line,
                "mass on the learned sink and on the first token, mean over queries 1..n-1; * above %g\n", threshold);
  out += line;
  out += "layer head";
  for (std::size_t i = 0; i < reports.size(); ++i)
    out += i + 1 < reports.size() ? "  attn     sink    first  " : "  attn     sink    first";
  if (reports.size() == 2) out += "    d(sink) d(first)";
  out += "\n";
  if (reports.empty()) return out;
  std::size_t flagged_heads[2] = {0, 0};
  for (std::size_t l = 0; l < reports[0].layers.size(); ++l)
    for (std::size_t h = 0; h < reports[0].layers[l].heads.size(); ++h) {
      std::snprintf(line, sizeof line, "%5zu %4zu", l, h);
      out += line;
      for (std::size_t i = 0; i < reports.size(); ++i) {
        const layer_sinks& ls = reports[i].layers[l];
        const head_sinks& m = ls.heads[h];
        const bool f = flagged(m, threshold);
        if (f && i < 2) ++flagged_heads[i];
        std::snprintf(line, sizeof line, "  %4s %8.4f %8.4f %c", model::to_string(ls.attention), m.sink_mass,
                      m.first_mass, f ? '*' : ' ');
        out += line;
      }
      if (reports.size() == 2) {
        const head_sinks &a = reports[0].layers[l].heads[h], &b = reports[1].layers[l].heads[h];
        std::snprintf(line, sizeof line, "  %+8.4f %+8.4f", b.sink_mass - a.sink_mass, b.first_mass - a.first_mass);
        out += line;
      }
      while (out.back() == ' ') out.pop_back();
      out += "\n";
    }
  for (std::size_t i = 0; i < std::min<std::size_t>(2, reports.size()); ++i) {
    std::snprintf(line, sizeof line, "%s: %zu heads flagged\n", reports[i].model.c_str(), flagged_heads[i]);
    out += line;
  }
  return out;
}

// CSV in long form: one row per (model, layer, head).
inline std::string sinks_csv(const std::vector<sinks_report>& reports, double threshold) {
  std::string out = "model,layer,head,attention,has_sink,sink_mass,first_mass,flagged\n";
  char num[256];
  for (const auto& r : reports)
    for (const auto& ls : r.layers)
      for (std::size_t h = 0; h < ls.heads.size(); ++h) {
        std::snprintf(num, sizeof num, ",%d,%zu,%s,%d,%.9g,%.9g,%d\n", ls.layer, h, model::to_string(ls.attention),
                      int(ls.has_sinks), ls.heads[h].sink_mass, ls.heads[h].first_mass,
                      int(flagged(ls.heads[h], threshold)));
        out += csv_quote(r.model) + num;
      }
  return out;
}

inline nlohmann::json sinks_json(const std::vector<sinks_report>& reports, double threshold) {
  nlohmann::json models = nlohmann::json::array();
  for (const auto& r : reports) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& ls : r.layers) {
      nlohmann::json heads = nlohmann::json::array();
      for (const auto& m : ls.heads)
        heads.push_back({{"sink_mass", m.sink_mass}, {"first_mass", m.first_mass}, {"flagged", flagged(m, threshold)}});
      layers.push_back({{"layer", ls.layer},
                        {"attention", model::to_string(ls.attention)},
                        {"has_sinks", ls.has_sinks},
                        {"heads", heads}});
    }
    models.push_back({{"model", r.model}, {"tokens", r.tokens}, {"layers", layers}});
  }
  return nlohmann::json{{"threshold", threshold}, {"sinks", models}};
}

}  // namespace mla::inspect
