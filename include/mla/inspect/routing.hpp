// mla::inspect routing: how a mixture-of-experts model (gpt-oss) spreads the tokens of a text over its experts, per
// MoE layer, from an observer on the decoder's one forward (mlp_input: each layer's normalised MLP input mn
// [n, hidden]). The router logits r = mn w_router^T + b_router [n, n_experts] are formed in T exactly as
// ref::moe_block::route forms them, and each token's top-k set is ref::route_top_k's on them: the experts the
// forward itself used. Everything after that is in float64:
//   load[e]         tokens routed to expert e; a token counts once in each of its k experts (sum over e = k n)
//   load_cv         coefficient of variation of load over the experts: population std / mean (0 = even load)
//   token_entropy   mean over tokens of H(softmax(r_t)), the softmax over all experts, in nats (at most ln E)
//   load_entropy    H(load / (k n)), the entropy of the average load, in nats (ln E when every expert gets the same)
//   never_chosen    the experts with load 0
//   margin          per token r_t[k-th largest] - r_t[(k+1)-th largest], how far the last chosen expert is ahead of
//                   the first left out; summarised by its mean and nearest-rank p5 (sorted[ceil(0.05 n) - 1]);
//                   NaN when k = E (nothing is left out)
// routing_changes(a, b): per layer, over the same tokens, the fraction of tokens whose top-k set (as a set) differs
// between two models (the original and its conversion: same router weights, other inputs) and the mean Jaccard
// similarity |A & B| / |A | B| of the two sets.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/inspect/compare.hpp"
#include "mla/inspect/csv.hpp"
#include "mla/model/decoder.hpp"
#include "mla/reference/moe.hpp"

namespace mla::inspect {

struct layer_routing {
  int layer = 0;
  std::vector<long> load;  // [n_experts] tokens routed to each expert
  double load_cv = 0, token_entropy = 0, load_entropy = 0;
  double margin_mean = 0, margin_p5 = 0;  // NaN when top_k = n_experts
  std::vector<int> never_chosen;          // expert ids with load 0, ascending
  std::vector<int> experts;               // [tokens * top_k] each token's experts, by descending logit
};

struct routing_report {
  std::string model;        // a label (the model's path)
  std::vector<int> tokens;  // the token ids the forward ran on
  int n_experts = 0, top_k = 0;
  std::vector<layer_routing> layers;  // [n_layers]
};

struct layer_routing_change {
  int layer = 0;
  double changed = 0;  // fraction of tokens whose top-k set differs
  double jaccard = 0;  // mean over tokens of |A & B| / |A | B|
};

struct routing_comparison {
  std::string model, compare;  // the two reports' labels
  long tokens = 0;
  std::vector<layer_routing_change> layers;  // [n_layers]
};

namespace detail {

// The statistics of one layer from its router logits r [n, E] (in T, as the forward formed them) and top-k.
template <class T>
layer_routing layer_routing_of(int l, const ref::matrix<T>& r, int k) {
  const Eigen::Index n = r.rows(), ne = r.cols();
  layer_routing lr;
  lr.layer = l;
  lr.load.assign(std::size_t(ne), 0);
  std::vector<double> margins;
  std::vector<double> z(static_cast<std::size_t>(ne));
  for (Eigen::Index t = 0; t < n; ++t) {
    const ref::moe_route route = ref::route_top_k(r.row(t), k);
    for (const int e : route.experts) lr.experts.push_back(e), ++lr.load[std::size_t(e)];
    for (Eigen::Index e = 0; e < ne; ++e) z[std::size_t(e)] = double(r(t, e));
    const double m = *std::max_element(z.begin(), z.end());
    double sum = 0, dot = 0;  // sum_e exp(z_e - m), sum_e exp(z_e - m) (z_e - m)
    for (const double v : z) sum += std::exp(v - m), dot += std::exp(v - m) * (v - m);
    lr.token_entropy += std::log(sum) - dot / sum;  // H = log sum - E_p[z - m]
    if (k < ne) {
      std::nth_element(z.begin(), z.begin() + k, z.end(), std::greater<double>());  // z[k]: the (k+1)-th largest
      const double left_out = z[std::size_t(k)];
      const double last_in = *std::min_element(z.begin(), z.begin() + k);
      margins.push_back(last_in - left_out);
    }
  }
  lr.token_entropy /= double(n);
  const double slots = double(k) * double(n), mean = slots / double(ne);
  double var = 0;
  for (Eigen::Index e = 0; e < ne; ++e) {
    const double c = double(lr.load[std::size_t(e)]);
    var += (c - mean) * (c - mean);
    if (c > 0) lr.load_entropy -= c / slots * std::log(c / slots);
    if (c == 0) lr.never_chosen.push_back(int(e));
  }
  lr.load_cv = std::sqrt(var / double(ne)) / mean;
  if (margins.empty()) {
    lr.margin_mean = lr.margin_p5 = std::numeric_limits<double>::quiet_NaN();
  } else {
    double s = 0;
    for (const double v : margins) s += v;
    lr.margin_mean = s / double(margins.size());
    std::sort(margins.begin(), margins.end());
    lr.margin_p5 = nearest_rank(margins, 0.05);
  }
  return lr;
}

inline std::string routing_label(const std::string& label) { return label.empty() ? "the model" : "'" + label + "'"; }

}  // namespace detail

template <class T>
class routing_observer : public model::observer<T> {
 public:
  explicit routing_observer(const model::decoder<T>& m) : m_(m) {
    layers_.resize(static_cast<std::size_t>(m.config().n_layers));
  }
  void mlp_input(int l, const ref::matrix<T>& mn) override {
    const ref::moe_block<T>& moe = m_.weights().layers[std::size_t(l)].moe;
    ref::matrix<T> r;  // [n, n_experts], as ref::moe_block::route forms it
    r.noalias() = mn * moe.w_router.transpose();
    if (moe.b_router.size()) r.rowwise() += moe.b_router.transpose();
    layers_[std::size_t(l)] = detail::layer_routing_of(l, r, moe.experts_per_token);
  }
  std::vector<layer_routing> take() { return std::move(layers_); }

 private:
  const model::decoder<T>& m_;
  std::vector<layer_routing> layers_;
};

// The routing statistics of `m` (an MoE model) on `tokens` (one forward from position 0).
template <class T>
routing_report routing(const model::decoder<T>& m, const std::vector<int>& tokens, const std::string& label = "") {
  const model::model_config& cfg = m.config();
  check(cfg.mlp == model::mlp_kind::moe, "mla::inspect::routing: ", detail::routing_label(label),
        " has no mixture-of-experts layers (its MLP is ", model::to_string(cfg.mlp),
        "); routing needs an MoE model such as gpt-oss");
  check(!tokens.empty(), "mla::inspect::routing: no tokens");
  routing_observer<T> obs(m);
  model::session<T> s = m.new_session();
  m.hidden_states(s, tokens, &obs);
  routing_report r;
  r.model = label;
  r.tokens = tokens;
  r.n_experts = cfg.n_experts;
  r.top_k = cfg.experts_per_token;
  r.layers = obs.take();
  return r;
}

// How often `b` routes a token to another expert set than `a`, per layer (same tokens, same experts and top-k).
inline routing_comparison routing_changes(const routing_report& a, const routing_report& b) {
  const char* o = "mla::inspect::routing_changes";
  check(a.tokens == b.tokens, o, ": '", a.model, "' and '", b.model, "' ran on different tokens (", a.tokens.size(),
        " and ", b.tokens.size(), " ids)");
  check(a.n_experts == b.n_experts && a.top_k == b.top_k && a.layers.size() == b.layers.size(), o, ": '", a.model,
        "' has ", a.layers.size(), " layers of ", a.n_experts, " experts top-", a.top_k, ", '", b.model, "' ",
        b.layers.size(), " of ", b.n_experts, " top-", b.top_k);
  routing_comparison c;
  c.model = a.model, c.compare = b.model;
  c.tokens = long(a.tokens.size());
  const std::size_t k = std::size_t(a.top_k);
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    layer_routing_change ch;
    ch.layer = a.layers[l].layer;
    for (std::size_t t = 0; t < a.tokens.size(); ++t) {
      std::vector<int> x(a.layers[l].experts.begin() + long(t * k), a.layers[l].experts.begin() + long((t + 1) * k));
      std::vector<int> y(b.layers[l].experts.begin() + long(t * k), b.layers[l].experts.begin() + long((t + 1) * k));
      std::sort(x.begin(), x.end());
      std::sort(y.begin(), y.end());
      std::vector<int> both;
      std::set_intersection(x.begin(), x.end(), y.begin(), y.end(), std::back_inserter(both));
      if (x != y) ch.changed += 1;
      ch.jaccard += double(both.size()) / double(2 * k - both.size());
    }
    ch.changed /= double(c.tokens), ch.jaccard /= double(c.tokens);
    c.layers.push_back(ch);
  }
  return c;
}

namespace detail {
inline std::string expert_ids(const std::vector<int>& ids) {
  if (ids.empty()) return "-";
  std::string s;
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}
}  // namespace detail

// Terminal table: per layer a row of statistics for each report (the first is the original), then each layer's load
// histogram; with two reports, the routing change of the second against the first.
inline std::string routing_table(const std::vector<routing_report>& reports) {
  std::string out;
  char line[512];
  if (reports.empty()) return out;
  const routing_report& r0 = reports[0];
  for (std::size_t i = 0; i < reports.size(); ++i) {
    std::snprintf(line, sizeof line, "%s %s: %zu tokens, %d experts, top-%d\n", i ? "compare" : "model  ",
                  reports[i].model.c_str(), reports[i].tokens.size(), reports[i].n_experts, reports[i].top_k);
    out += line;
  }
  std::snprintf(line, sizeof line,
                "entropies in nats (uniform: ln %d = %.4f); margin: k-th minus (k+1)-th router logit, mean and p5\n",
                r0.n_experts, std::log(double(r0.n_experts)));
  out += line;
  out += "layer model    load_cv H(token)  H(load)  margin      p5  never chosen\n";
  for (std::size_t l = 0; l < r0.layers.size(); ++l)
    for (std::size_t i = 0; i < reports.size(); ++i) {
      if (l >= reports[i].layers.size()) continue;
      const layer_routing& lr = reports[i].layers[l];
      std::snprintf(line, sizeof line, "%5d %-7s %8.4f %8.4f %8.4f %7.4f %7.4f  %s\n", lr.layer,
                    i ? "compare" : "model", lr.load_cv, lr.token_entropy, lr.load_entropy, lr.margin_mean,
                    lr.margin_p5, detail::expert_ids(lr.never_chosen).c_str());
      out += line;
    }
  std::snprintf(line, sizeof line, "expert load: tokens routed to experts 0..%d (each token counts in its %d)\n",
                r0.n_experts - 1, r0.top_k);
  out += line;
  long widest = 1;
  for (const auto& r : reports)
    for (const auto& lr : r.layers)
      for (const long c : lr.load) widest = std::max(widest, c);
  const int w = int(std::to_string(widest).size()) + 1;
  for (std::size_t l = 0; l < r0.layers.size(); ++l)
    for (std::size_t i = 0; i < reports.size(); ++i) {
      if (l >= reports[i].layers.size()) continue;
      std::snprintf(line, sizeof line, "%5d %-7s", reports[i].layers[l].layer, i ? "compare" : "model");
      out += line;
      for (const long c : reports[i].layers[l].load) {
        std::snprintf(line, sizeof line, "%*ld", w, c);
        out += line;
      }
      out += "\n";
    }
  if (reports.size() == 2) {
    const routing_comparison c = routing_changes(reports[0], reports[1]);
    std::snprintf(line, sizeof line, "routing change, compare against model over the same %ld tokens:\n", c.tokens);
    out += line;
    out += "layer  changed  jaccard\n";
    for (const auto& ch : c.layers) {
      std::snprintf(line, sizeof line, "%5d %8.4f %8.4f\n", ch.layer, ch.changed, ch.jaccard);
      out += line;
    }
  }
  return out;
}

// CSV in long form: one row per (model, layer) (row "layer": the statistics, never_chosen as a count), one per
// (model, layer, expert) (row "expert": its load), and with two reports one per layer (row "change", model = the
// second report's label).
inline std::string routing_csv(const std::vector<routing_report>& reports) {
  std::string out =
      "model,row,layer,expert,load,load_cv,token_entropy,load_entropy,margin_mean,margin_p5,never_chosen,changed,"
      "jaccard\n";
  char num[512];
  for (const auto& r : reports)
    for (const auto& lr : r.layers) {
      std::snprintf(num, sizeof num, ",layer,%d,,,%.9g,%.9g,%.9g,%.9g,%.9g,%zu,,\n", lr.layer, lr.load_cv,
                    lr.token_entropy, lr.load_entropy, lr.margin_mean, lr.margin_p5, lr.never_chosen.size());
      out += csv_quote(r.model) + num;
      for (std::size_t e = 0; e < lr.load.size(); ++e) {
        std::snprintf(num, sizeof num, ",expert,%d,%zu,%ld,,,,,,,,\n", lr.layer, e, lr.load[e]);
        out += csv_quote(r.model) + num;
      }
    }
  if (reports.size() == 2)
    for (const auto& ch : routing_changes(reports[0], reports[1]).layers) {
      std::snprintf(num, sizeof num, ",change,%d,,,,,,,,,%.9g,%.9g\n", ch.layer, ch.changed, ch.jaccard);
      out += csv_quote(reports[1].model) + num;
    }
  return out;
}

inline nlohmann::json routing_json(const std::vector<routing_report>& reports) {
  // NaN (the margins when k = E) has no JSON form: null.
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json models = nlohmann::json::array();
  for (const auto& r : reports) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& lr : r.layers)
      layers.push_back({{"layer", lr.layer},
                        {"load", lr.load},
                        {"load_cv", lr.load_cv},
                        {"token_entropy", lr.token_entropy},
                        {"load_entropy", lr.load_entropy},
                        {"margin_mean", number(lr.margin_mean)},
                        {"margin_p5", number(lr.margin_p5)},
                        {"never_chosen", lr.never_chosen}});
    models.push_back({{"model", r.model},
                      {"tokens", r.tokens.size()},
                      {"n_experts", r.n_experts},
                      {"top_k", r.top_k},
                      {"layers", layers}});
  }
  nlohmann::json j{{"routing", models}};
  if (reports.size() == 2) {
    const routing_comparison c = routing_changes(reports[0], reports[1]);
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& ch : c.layers)
      layers.push_back({{"layer", ch.layer}, {"changed", ch.changed}, {"jaccard", ch.jaccard}});
    j["changes"] = {{"model", c.model}, {"compare", c.compare}, {"tokens", c.tokens}, {"layers", layers}};
  }
  return j;
}

}  // namespace mla::inspect
