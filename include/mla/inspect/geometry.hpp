// mla::inspect geometry: per layer and query head, what the attention's queries and keys look like on a text,
// collected by an observer on the decoder's one forward (model/decoder.hpp: attention_input sees each layer's
// normalised input xn [n, hidden]; everything below is recomputed from it in float64 with the layer's weights):
//   q_norm, k_norm   mean over tokens of ||q_h(t)|| and ||k_h(t)|| over the head's whole query / key, before RoPE
//                    (a rotation; YaRN's attention factor, which scales the rotated vectors, is left out). GQA:
//                    k_h is the key of h's KV group; MLA: the per-head key [W_uk^h c(t), k_pe(t)] of the naive form.
//   q_energy[f], k_energy[f]   per RoPE frequency f, E_t[re^2 + im^2] of the pair (re, im) = (f, f + r/2) of
//                    the RoPE channels (NeoX; (2f, 2f + 1) when interleaved; r = head_dim for GQA, rope_dim for
//                    MLA's decoupled key). This is the quantity the conversion ranks on (convert/rope_strategy.hpp):
//                    RoRoPE's per-frequency PCA sums the re and im second moments, and the 2-norm selection scores
//                    sqrt(q_energy) * sqrt(k_energy). It is computed the same way, from the calibration moments of
//                    xn (convert/calibration.hpp: layer_moments, augmented_weight, affine_second_moment_diag), and
//                    is invariant under RoPE. k_energy is of the key head (GQA: h's group; MLA: the shared k_pe).
//   logit_min, logit_max   range of the pre-softmax logits scale * q_h(t) . k_h(s) (RoPE applied) over the
//                    visible pairs (causal mask and window); a sink logit is not a q.k logit and is left out.
//   entropy_ratio    the effective softmax temperature, as a number in [0, 1]: per query, the entropy of its
//                    attention distribution (over the visible keys, plus the sink as one more outcome when the
//                    head has one) divided by the entropy of the uniform distribution over the same outcomes,
//                    log(outcomes); averaged over queries with at least two outcomes. 1: the head attends
//                    uniformly (a hot softmax), 0: it attends to one key (a cold one).
// One window per forward: positions 0..n-1 (attention_input's first_pos must be 0).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/convert/calibration.hpp"
#include "mla/core/error.hpp"
#include "mla/inspect/csv.hpp"
#include "mla/model/decoder.hpp"
#include "mla/reference/attention_probabilities.hpp"
#include "mla/reference/norms.hpp"
#include "mla/reference/rope.hpp"

namespace mla::inspect {

struct head_geometry {
  double q_norm = 0, k_norm = 0;
  std::vector<double> q_energy, k_energy;  // [rope frequencies]
  double logit_min = 0, logit_max = 0;
  double entropy_ratio = 0;
};

struct layer_geometry {
  int layer = 0;
  model::attention_kind attention = model::attention_kind::gqa;
  std::vector<double> inv_freq;      // [rope frequencies] of the layer's RoPE pairs
  std::vector<head_geometry> heads;  // [n_heads]
};

struct geometry_report {
  std::string model;  // a label (the model's path)
  long tokens = 0;
  std::vector<layer_geometry> layers;  // [n_layers]
};

namespace detail {

using dmat = ref::matrix<double>;
using dvec = ref::vector<double>;

// y = x W^T + b in float64: [n, out].
template <class T>
dmat linear64(const dmat& x, const ref::matrix<T>& w, const ref::vector<T>& b) {
  dmat y = x * w.template cast<double>().transpose();
  if (b.size() != 0) y.rowwise() += b.template cast<double>().transpose();
  return y;
}

// Per-channel second moments E_t[y_c^2] [out] of y = x W^T + b, from the moments of x (the conversion's way).
template <class T>
dvec channel_energy(const convert::layer_moments& mom, const ref::matrix<T>& w, const ref::vector<T>& b) {
  return convert::affine_second_moment_diag(convert::augmented_weight(w, b), mom.augmented_second_moment());
}

// The RoPE pairs of one head: energy[f] = e[re] + e[im], f < rope/2, with (re, im) = offset + (f, f + rope/2)
// (NeoX) or offset + (2f, 2f + 1) (interleaved).
inline std::vector<double> pair_energy(const dvec& e, Eigen::Index offset, int rope, ref::rope_layout layout) {
  std::vector<double> out(static_cast<std::size_t>(rope / 2));
  const bool neox = layout == ref::rope_layout::neox;
  for (int f = 0; f < rope / 2; ++f) {
    const Eigen::Index re = offset + (neox ? f : 2 * f), im = neox ? re + rope / 2 : re + 1;
    out[std::size_t(f)] = e[re] + e[im];
  }
  return out;
}

inline double mean_row_norm(const Eigen::Ref<const dmat>& m) { return m.rowwise().norm().mean(); }

// Logit range and entropy ratio of one head from its unscaled scores q_h(t) . k_h(s) [n, n] (RoPE applied),
// under the layer's mask, scale and sink (the softmax is the reference's: ref::masked_softmax).
inline void attention_stats(const dmat& scores_unscaled, const ref::attention_options& opt, const double* sink,
                            head_geometry& g) {
  const Eigen::Index n = scores_unscaled.rows();
  dmat p = scores_unscaled * opt.softmax_scale;  // [n, n] logits
  g.logit_min = std::numeric_limits<double>::infinity();
  g.logit_max = -std::numeric_limits<double>::infinity();
  for (Eigen::Index t = 0; t < n; ++t)
    for (Eigen::Index s = opt.first_visible(t); s <= t; ++s) {
      g.logit_min = std::min(g.logit_min, p(t, s));
      g.logit_max = std::max(g.logit_max, p(t, s));
    }
  ref::masked_softmax(p, opt, sink, 0);
  double sum = 0;
  long rows = 0;
  for (Eigen::Index t = 0; t < n; ++t) {
    const Eigen::Index lo = opt.first_visible(t);
    const long outcomes = long(t - lo + 1) + (sink ? 1 : 0);
    if (outcomes < 2) continue;
    double h = 0, mass = 0;
    for (Eigen::Index s = lo; s <= t; ++s) {
      const double w = p(t, s);
      mass += w;
      if (w > 0) h -= w * std::log(w);
    }
    if (sink) {
      const double w = std::max(0.0, 1.0 - mass);
      if (w > 0) h -= w * std::log(w);
    }
    sum += h / std::log(double(outcomes));
    ++rows;
  }
  g.entropy_ratio = rows > 0 ? sum / double(rows) : 0.0;
}

template <class T>
layer_geometry gqa_geometry(int l, const ref::gqa_layer<T>& a, const ref::matrix<T>& xn) {
  const int heads = a.n_heads, d = a.head_dim;
  const dmat x = xn.template cast<double>();
  const dmat q = linear64(x, a.wq, a.bq);  // [n, heads*d] pre-RoPE
  const dmat k = linear64(x, a.wk, a.bk);  // [n, g*d]
  convert::layer_moments mom;
  mom.add(xn);
  const dvec q2 = channel_energy(mom, a.wq, a.bq), k2 = channel_energy(mom, a.wk, a.bk);
  const ref::rope<double> rot(a.rope);
  dmat qr = q, kr = k;
  ref::rope_heads(rot, qr, heads, d, 0);
  ref::rope_heads(rot, kr, a.n_kv_heads, d, 0);
  layer_geometry lg;
  lg.layer = l;
  lg.attention = model::attention_kind::gqa;
  lg.inv_freq = rot.inv_freq();
  for (int h = 0; h < heads; ++h) {
    const Eigen::Index j = a.kv_head_of(h);
    head_geometry g;
    g.q_norm = mean_row_norm(q.middleCols(Eigen::Index(h) * d, d));
    g.k_norm = mean_row_norm(k.middleCols(j * d, d));
    g.q_energy = pair_energy(q2, Eigen::Index(h) * d, d, a.rope.layout);
    g.k_energy = pair_energy(k2, j * d, d, a.rope.layout);
    const dmat s = qr.middleCols(Eigen::Index(h) * d, d) * kr.middleCols(j * d, d).transpose();
    const double sink = a.sinks.size() != 0 ? double(a.sinks[h]) : 0.0;
    attention_stats(s, a.attention, a.sinks.size() != 0 ? &sink : nullptr, g);
    lg.heads.push_back(std::move(g));
  }
  return lg;
}

template <class T>
layer_geometry mla_geometry(int l, const ref::mla_layer<T>& a, const ref::matrix<T>& xn) {
  check(!a.uses_latent_rope(), "mla::inspect::geometry: layer ", l,
        " applies RoPE on the latent (latent_rope_offsets); only the decoupled RoPE key is supported");
  const int heads = a.n_heads, nope = a.nope_dim, rd = a.rope_dim, qk = a.qk_head_dim();
  const Eigen::Index n = xn.rows();
  const dmat x = xn.template cast<double>();
  const dmat q = linear64(x, a.wq, a.bq);  // [n, heads*qk] pre-RoPE, per head nope then rope
  dmat c = linear64(x, a.w_dkv, a.b_dkv);  // [n, latent]
  if (a.latent_norm.size() != 0) c = ref::rms_norm(c, dvec(a.latent_norm.template cast<double>()), a.latent_norm_eps);
  const dmat k_pe = rd > 0 ? linear64(x, a.w_kr, a.b_kr) : dmat(n, 0);  // [n, rd] pre-RoPE
  convert::layer_moments mom;
  mom.add(xn);
  const dvec q2 = channel_energy(mom, a.wq, a.bq);
  const dvec kpe2 = rd > 0 ? channel_energy(mom, a.w_kr, a.b_kr) : dvec();
  const ref::rope<double> rot(a.rope);
  dmat qr = q, kr = k_pe;
  for (Eigen::Index t = 0; t < n && rd > 0; ++t) {
    for (int h = 0; h < heads; ++h) rot.apply(qr.data() + t * qr.cols() + Eigen::Index(h) * qk + nope, t);
    rot.apply(kr.data() + t * kr.cols(), t);
  }
  layer_geometry lg;
  lg.layer = l;
  lg.attention = model::attention_kind::mla;
  if (rd > 0) lg.inv_freq = rot.inv_freq();
  for (int h = 0; h < heads; ++h) {
    const dmat k_nope = c * a.w_uk.middleRows(Eigen::Index(h) * nope, nope).template cast<double>().transpose();
    dmat k_h(n, qk);  // [n, qk] the per-head key of the naive form
    k_h << k_nope, k_pe;
    head_geometry g;
    g.q_norm = mean_row_norm(q.middleCols(Eigen::Index(h) * qk, qk));
    g.k_norm = mean_row_norm(k_h);
    if (rd > 0) {
      g.q_energy = pair_energy(q2, Eigen::Index(h) * qk + nope, rd, a.rope.layout);
      g.k_energy = pair_energy(kpe2, 0, rd, a.rope.layout);
    }
    dmat s = qr.middleCols(Eigen::Index(h) * qk, nope) * k_nope.transpose();
    if (rd > 0) s += qr.middleCols(Eigen::Index(h) * qk + nope, rd) * kr.transpose();
    const double sink = a.sinks.size() != 0 ? double(a.sinks[h]) : 0.0;
    attention_stats(s, a.attention, a.sinks.size() != 0 ? &sink : nullptr, g);
    lg.heads.push_back(std::move(g));
  }
  return lg;
}

}  // namespace detail

// The observer: one layer_geometry per layer from the attention input of the forward it watches.
template <class T>
class geometry_observer : public model::observer<T> {
 public:
  explicit geometry_observer(const model::decoder<T>& m) : m_(m) {
    layers_.resize(static_cast<std::size_t>(m.config().n_layers));
  }
  void attention_input(int l, const ref::matrix<T>& xn, long first_pos) override {
    check(first_pos == 0, "mla::inspect::geometry_observer: one window from position 0 per forward, found a chunk at ",
          first_pos);
    const auto li = static_cast<std::size_t>(l);
    const model::layer_weights<T>& lw = m_.weights().layers[li];
    layers_[li] = m_.config().layers[li].attention == model::attention_kind::gqa ? detail::gqa_geometry(l, lw.gqa, xn)
                                                                                 : detail::mla_geometry(l, lw.mla, xn);
  }
  std::vector<layer_geometry> take() { return std::move(layers_); }

 private:
  const model::decoder<T>& m_;
  std::vector<layer_geometry> layers_;
};

// The geometry of `m` on one window of `tokens` (positions 0..n-1).
template <class T>
geometry_report geometry(const model::decoder<T>& m, const std::vector<int>& tokens, const std::string& label = "") {
  check(tokens.size() >= 2, "mla::inspect::geometry: needs at least 2 tokens, found ", tokens.size());
  geometry_observer<T> obs(m);
  model::session<T> s = m.new_session(/*trim_windows=*/false);
  m.hidden_states(s, tokens, &obs);
  geometry_report r;
  r.model = label;
  r.tokens = static_cast<long>(tokens.size());
  r.layers = obs.take();
  return r;
}

// The 2-norm selection's per-frequency score of a head, sqrt(q_energy[f] * k_energy[f]) (rope_strategy.hpp).
inline std::vector<double> frequency_score(const head_geometry& g) {
  std::vector<double> s(g.q_energy.size());
  for (std::size_t f = 0; f < s.size(); ++f) s[f] = std::sqrt(std::max(0.0, g.q_energy[f] * g.k_energy[f]));
  return s;
}

// The score-weighted mean frequency index of a head (0: the fastest pair; r/2 - 1: the slowest).
inline double frequency_centroid(const head_geometry& g) {
  const std::vector<double> s = frequency_score(g);
  double w = 0, m = 0;
  for (std::size_t f = 0; f < s.size(); ++f) w += s[f], m += s[f] * double(f);
  return w > 0 ? m / w : 0.0;
}

// Terminal table: one row per layer and head; `top` lists the 4 frequencies with the highest 2-norm score.
inline std::string geometry_table(const geometry_report& r) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%s: %ld tokens\n", r.model.c_str(), r.tokens);
  out += line;
  out += "layer head attn    |q|      |k|   logit min   logit max  H/Hmax  top frequencies (2-norm score)\n";
  for (const auto& lg : r.layers)
    for (std::size_t h = 0; h < lg.heads.size(); ++h) {
      const head_geometry& g = lg.heads[h];
      const std::vector<double> s = frequency_score(g);
      std::vector<int> order(s.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[std::size_t(a)] > s[std::size_t(b)]; });
      std::string top;
      for (std::size_t i = 0; i < std::min<std::size_t>(4, order.size()); ++i)
        top += (i ? " " : "") + std::to_string(order[i]);
      std::snprintf(line, sizeof line, "%5d %4zu %4s %8.3f %8.3f %11.3f %11.3f %7.3f  %s\n", lg.layer, h,
                    lg.attention == model::attention_kind::gqa ? "gqa" : "mla", g.q_norm, g.k_norm, g.logit_min,
                    g.logit_max, g.entropy_ratio, top.c_str());
      out += line;
    }
  return out;
}

// CSV in long form: one row per (model, layer, head, RoPE frequency), the head's scalars repeated.
inline std::string geometry_csv(const std::vector<geometry_report>& reports) {
  std::string out =
      "model,layer,head,attention,q_norm,k_norm,logit_min,logit_max,entropy_ratio,freq_index,inv_freq,q_energy,"
      "k_energy\n";
  char num[512];
  for (const auto& r : reports)
    for (const auto& lg : r.layers)
      for (std::size_t h = 0; h < lg.heads.size(); ++h) {
        const head_geometry& g = lg.heads[h];
        std::snprintf(num, sizeof num, "%d,%zu,%s,%.9g,%.9g,%.9g,%.9g,%.9g", lg.layer, h,
                      lg.attention == model::attention_kind::gqa ? "gqa" : "mla", g.q_norm, g.k_norm, g.logit_min,
                      g.logit_max, g.entropy_ratio);
        const std::string head = csv_quote(r.model) + "," + num;
        if (g.q_energy.empty()) out += head + ",,,,\n";
        for (std::size_t f = 0; f < g.q_energy.size(); ++f) {
          std::snprintf(num, sizeof num, ",%zu,%.9g,%.9g,%.9g\n", f, lg.inv_freq[f], g.q_energy[f], g.k_energy[f]);
          out += head + num;
        }
      }
  return out;
}

inline nlohmann::json geometry_json(const std::vector<geometry_report>& reports) {
  nlohmann::json models = nlohmann::json::array();
  for (const auto& r : reports) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& lg : r.layers) {
      nlohmann::json heads = nlohmann::json::array();
      for (const auto& g : lg.heads)
        heads.push_back({{"q_norm", g.q_norm},
                         {"k_norm", g.k_norm},
                         {"logit_min", g.logit_min},
                         {"logit_max", g.logit_max},
                         {"entropy_ratio", g.entropy_ratio},
                         {"q_energy", g.q_energy},
                         {"k_energy", g.k_energy}});
      layers.push_back({{"layer", lg.layer},
                        {"attention", lg.attention == model::attention_kind::gqa ? "gqa" : "mla"},
                        {"inv_freq", lg.inv_freq},
                        {"heads", heads}});
    }
    models.push_back({{"model", r.model}, {"tokens", r.tokens}, {"layers", layers}});
  }
  return nlohmann::json{{"geometry", models}};
}

}  // namespace mla::inspect
