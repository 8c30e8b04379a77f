#include "mla/inspect/routing.hpp"

#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../convert/convert_test_support.hpp"
#include "expect_error.hpp"
#include "files.hpp"
#include "inspect_test_support.hpp"
#include "mla/inspect/routing_plot.hpp"
#include "mla/model/gpt_oss_checkpoint.hpp"
#include "mla/model/load.hpp"
#include "seed.hpp"

namespace {

using mla::ref::matrix;

// A generated tiny gpt-oss checkpoint (4 layers, 8 experts top-4, MXFP4 experts), loaded as the tools load it.
mla::model::loaded_model routing_tiny_gpt_oss(std::uint64_t seed) {
  const mla::test::temp_dir dir("mla-routing");
  mla::model::write_gpt_oss_checkpoint(dir.path(), mla::model::gpt_oss_shape::tiny(), seed, 1 << 30);
  return mla::model::load_model(dir.path());
}

// Each layer's attention output and output (the next layer's input) of a forward.
struct routing_recorder : mla::model::observer<float> {
  std::vector<matrix<float>> attn, out;
  void attention_output(int l, const matrix<float>& a) override {
    if (int(attn.size()) <= l) attn.resize(std::size_t(l) + 1);
    attn[std::size_t(l)] = a;
  }
  void layer_output(int l, const matrix<float>& h) override {
    if (int(out.size()) <= l) out.resize(std::size_t(l) + 1);
    out[std::size_t(l)] = h;
  }
};

// Every layer's router logits [n, E] in float64, from the recorded layer inputs and the weights: the layer input x
// (embedding rows, or the previous layer's output), h = x + attention output, mn = rms_norm(h) * mlp_norm,
// r = mn w_router^T + b_router.
std::vector<matrix<double>> routing_logits64(const mla::model::decoder<float>& m, const std::vector<int>& tokens,
                                             const routing_recorder& rec) {
  const auto& cfg = m.config();
  const long n = long(tokens.size());
  std::vector<matrix<double>> logits;
  for (int l = 0; l < cfg.n_layers; ++l) {
    const auto& lw = m.weights().layers[std::size_t(l)];
    matrix<double> r(n, cfg.n_experts);
    for (long t = 0; t < n; ++t) {
      std::vector<double> h(std::size_t(cfg.hidden));
      double ms = 0;
      for (int c = 0; c < cfg.hidden; ++c) {
        const double x =
            l == 0 ? double(m.weights().embed(tokens[std::size_t(t)], c)) : double(rec.out[std::size_t(l - 1)](t, c));
        h[std::size_t(c)] = x + double(rec.attn[std::size_t(l)](t, c));
        ms += h[std::size_t(c)] * h[std::size_t(c)];
      }
      const double inv = 1.0 / std::sqrt(ms / cfg.hidden + cfg.rms_eps);
      for (int e = 0; e < cfg.n_experts; ++e) {
        double s = lw.moe.b_router.size() ? double(lw.moe.b_router(e)) : 0.0;
        for (int c = 0; c < cfg.hidden; ++c)
          s += h[std::size_t(c)] * inv * double(lw.mlp_norm(c)) * double(lw.moe.w_router(e, c));
        r(t, e) = s;
      }
    }
    logits.push_back(r);
  }
  return logits;
}

// The statistics of one layer straight from the definitions, on float64 logits r [n, E].
struct routing_direct {
  std::vector<std::vector<int>> sets;  // [n] each token's top-k, ascending id
  std::vector<std::vector<int>> alt;   // [n] the same with the k-th expert replaced by the (k+1)-th
  std::vector<double> margin;          // [n]
  std::vector<long> load;
  double cv = 0, token_entropy = 0, load_entropy = 0, margin_mean = 0, margin_p5 = 0;
};

// Load, its CV and entropy of top-k sets over ne experts.
void routing_load_of(const std::vector<std::vector<int>>& sets, int ne, int k, routing_direct& d) {
  const double n = double(sets.size());
  d.load.assign(std::size_t(ne), 0);
  for (const auto& set : sets)
    for (int e : set) ++d.load[std::size_t(e)];
  const double mean = double(k) * n / double(ne);
  double var = 0;
  d.load_entropy = 0;
  for (long c : d.load) {
    var += (double(c) - mean) * (double(c) - mean) / double(ne);
    const double p = double(c) / (double(k) * n);
    if (p > 0) d.load_entropy -= p * std::log(p);
  }
  d.cv = std::sqrt(var) / mean;
}

routing_direct routing_direct_of(const matrix<double>& r, int k) {
  const long n = long(r.rows()), ne = long(r.cols());
  routing_direct d;
  std::vector<double> margins;
  for (long t = 0; t < n; ++t) {
    std::vector<int> ids(static_cast<std::size_t>(ne));
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return r(t, a) > r(t, b); });
    std::vector<int> set(ids.begin(), ids.begin() + k);
    std::sort(set.begin(), set.end());
    d.sets.push_back(set);
    if (k < ne) {
      set.assign(ids.begin(), ids.begin() + k);
      set.back() = ids[std::size_t(k)];
      std::sort(set.begin(), set.end());
    }
    d.alt.push_back(set);
    double z = 0;
    for (long e = 0; e < ne; ++e) z += std::exp(r(t, e));
    for (long e = 0; e < ne; ++e) {
      const double p = std::exp(r(t, e)) / z;
      d.token_entropy -= p * std::log(p);
    }
    if (k < ne) margins.push_back(r(t, ids[std::size_t(k - 1)]) - r(t, ids[std::size_t(k)]));
    d.margin.push_back(margins.empty() ? 0.0 : margins.back());
  }
  d.token_entropy /= double(n);
  routing_load_of(d.sets, int(ne), k, d);
  for (double v : margins) d.margin_mean += v / double(margins.size());
  std::sort(margins.begin(), margins.end());
  if (!margins.empty()) d.margin_p5 = margins[std::size_t(std::ceil(0.05 * double(margins.size())) - 1)];
  return d;
}

std::vector<int> routing_set(const mla::inspect::layer_routing& lr, int k, long t) {
  std::vector<int> s(lr.experts.begin() + t * k, lr.experts.begin() + (t + 1) * k);
  std::sort(s.begin(), s.end());
  return s;
}

// A decoder with the rows a, b of layer l's router (and its bias entries) swapped: every token that had exactly one
// of the two experts now has the other instead.
mla::model::decoder<float> routing_swapped(const mla::model::decoder<float>& m, int l, int a, int b) {
  mla::model::model_weights<float> w = m.weights();
  auto& moe = w.layers[std::size_t(l)].moe;
  moe.w_router.row(a).swap(moe.w_router.row(b));
  if (moe.b_router.size()) std::swap(moe.b_router(a), moe.b_router(b));
  return mla::model::decoder<float>(m.config(), std::move(w));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(inspect_routing)

// Every layer's histogram, CV, entropies, never-chosen experts and margins against float64 router logits rebuilt
// from the layer input and the router weights. A token whose float64 margin is within float rounding (< 1e-4) may
// be routed either way by the float forward: its set may be either of the two, and the expected counts take the
// one the forward chose.
BOOST_AUTO_TEST_CASE(every_layer_against_float64_router_logits) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    const mla::model::loaded_model lm = routing_tiny_gpt_oss(seed);
    const mla::model::decoder<float>& m = lm.model;
    const int k = m.config().experts_per_token, ne = m.config().n_experts;
    const std::vector<int> tokens = mla::test::random_tokens(gen, m.config().vocab_size, mla::test::pick(gen, 24, 64));
    const mla::inspect::routing_report r = mla::inspect::routing(m, tokens, "tiny");
    routing_recorder rec;
    m.forward(tokens, &rec);
    const std::vector<matrix<double>> logits = routing_logits64(m, tokens, rec);
    BOOST_TEST(r.model == "tiny");
    BOOST_TEST(r.tokens == tokens);
    BOOST_TEST(r.n_experts == ne);
    BOOST_TEST(r.top_k == k);
    BOOST_TEST_REQUIRE(r.layers.size() == logits.size());
    const auto tol = boost::test_tools::tolerance(1e-4);
    for (std::size_t l = 0; l < logits.size(); ++l) {
      BOOST_TEST_CONTEXT("layer " << l) {
        const routing_direct d = routing_direct_of(logits[l], k);
        const mla::inspect::layer_routing& lr = r.layers[l];
        BOOST_TEST(lr.layer == int(l));
        BOOST_TEST_REQUIRE(lr.experts.size() == tokens.size() * std::size_t(k));
        std::vector<std::vector<int>> sets = d.sets;
        for (std::size_t t = 0; t < tokens.size(); ++t) {
          const std::vector<int> got = routing_set(lr, k, long(t));
          if (d.margin[t] < 1e-4 && got == d.alt[t]) {
            BOOST_TEST_MESSAGE("layer " << l << ", token " << t << ": margin " << d.margin[t]
                                        << ", routed the other way");
            sets[t] = got;
          }
          BOOST_TEST(got == sets[t], "token " << t);
        }
        routing_direct counted;
        routing_load_of(sets, ne, k, counted);
        BOOST_TEST(lr.load == counted.load, boost::test_tools::per_element());
        BOOST_TEST(lr.load_cv == counted.cv, boost::test_tools::tolerance(1e-12));
        BOOST_TEST(lr.load_entropy == counted.load_entropy, boost::test_tools::tolerance(1e-12));
        std::vector<int> never;
        for (int e = 0; e < ne; ++e)
          if (counted.load[std::size_t(e)] == 0) never.push_back(e);
        BOOST_TEST(lr.never_chosen == never, boost::test_tools::per_element());
        BOOST_TEST(lr.token_entropy == d.token_entropy, tol);
        BOOST_TEST(lr.margin_mean == d.margin_mean, tol);
        BOOST_TEST(std::abs(lr.margin_p5 - d.margin_p5) < 1e-4);
      }
    }
  }
}

// Identical models route every token alike (0 changed, Jaccard 1); swapping two experts' router rows in the last
// layer changes exactly the tokens that had one of the two (Jaccard (k-1)/(k+1) for them) and no earlier layer.
BOOST_AUTO_TEST_CASE(compare_counts_the_tokens_routed_elsewhere) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    const mla::model::loaded_model lm = routing_tiny_gpt_oss(seed);
    const mla::model::decoder<float>& m = lm.model;
    const int k = m.config().experts_per_token, ne = m.config().n_experts, last = m.config().n_layers - 1;
    const std::vector<int> tokens = mla::test::random_tokens(gen, m.config().vocab_size, mla::test::pick(gen, 24, 64));
    const int a = mla::test::pick(gen, 0, ne - 1), b = (a + mla::test::pick(gen, 1, ne - 1)) % ne;
    const mla::model::decoder<float> same(m.config(), m.weights());
    const mla::model::decoder<float> swapped = routing_swapped(m, last, a, b);
    const mla::inspect::routing_report r0 = mla::inspect::routing(m, tokens, "original");
    const mla::inspect::routing_comparison agree =
        mla::inspect::routing_changes(r0, mla::inspect::routing(same, tokens, "copy"));
    BOOST_TEST(agree.model == "original");
    BOOST_TEST(agree.compare == "copy");
    BOOST_TEST(agree.tokens == long(tokens.size()));
    BOOST_TEST_REQUIRE(agree.layers.size() == std::size_t(last + 1));
    for (const auto& ch : agree.layers) {
      BOOST_TEST(ch.changed == 0.0);
      BOOST_TEST(ch.jaccard == 1.0);
    }

    const mla::inspect::routing_report r1 = mla::inspect::routing(swapped, tokens, "swapped");
    const mla::inspect::routing_comparison c = mla::inspect::routing_changes(r0, r1);
    routing_recorder rec;
    m.forward(tokens, &rec);
    const routing_direct d = routing_direct_of(routing_logits64(m, tokens, rec)[std::size_t(last)], k);
    double changed = 0;  // (a token within float rounding of a tie counts with the set the forward chose)
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      const std::vector<int> s = d.margin[t] < 1e-4 ? routing_set(r0.layers.back(), k, long(t)) : d.sets[t];
      changed += (std::count(s.begin(), s.end(), a) + std::count(s.begin(), s.end(), b)) == 1;
    }
    changed /= double(tokens.size());
    BOOST_TEST_MESSAGE("experts " << a << ", " << b << " swapped: " << changed << " of the tokens change");
    BOOST_TEST(changed > 0.0);  // top-4 of 8: about 4 tokens in 7 hold exactly one of two experts
    for (int l = 0; l < last; ++l) BOOST_TEST(c.layers[std::size_t(l)].changed == 0.0);
    BOOST_TEST(c.layers[std::size_t(last)].changed == changed, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(c.layers[std::size_t(last)].jaccard == 1.0 - changed * (1.0 - double(k - 1) / double(k + 1)),
               boost::test_tools::tolerance(1e-12));
    // The swap moves the counts of a and b and nothing else.
    std::vector<long> load = r0.layers[std::size_t(last)].load;
    std::swap(load[std::size_t(a)], load[std::size_t(b)]);
    BOOST_TEST(r1.layers[std::size_t(last)].load == load, boost::test_tools::per_element());

    mla::inspect::routing_report other = r1;
    other.tokens.back() = (other.tokens.back() + 1) % m.config().vocab_size;
    mla::test::expect_error([&] { mla::inspect::routing_changes(r0, other); },
                            {"'original' and 'swapped' ran on different tokens"});
  }
}

// A hand example through the layer statistics: 3 tokens, 4 experts, top-2, logits with ties (broken to the lower
// id, as the forward breaks them); and top-k = all experts, where no margin exists.
BOOST_AUTO_TEST_CASE(hand_example_with_ties) {
  matrix<float> r(3, 4);
  r << 2, 1, 0, -1,  //
      0, 3, 1, 1,    //
      1, 1, 1, 1;
  const mla::inspect::layer_routing lr = mla::inspect::detail::layer_routing_of(5, r, 2);
  BOOST_TEST(lr.layer == 5);
  BOOST_TEST(lr.experts == (std::vector<int>{0, 1, 1, 2, 0, 1}), boost::test_tools::per_element());
  BOOST_TEST(lr.load == (std::vector<long>{2, 3, 1, 0}), boost::test_tools::per_element());
  BOOST_TEST(lr.never_chosen == std::vector<int>{3}, boost::test_tools::per_element());
  BOOST_TEST(lr.load_cv == std::sqrt(1.25) / 1.5, boost::test_tools::tolerance(1e-12));  // loads 2 3 1 0, mean 1.5
  BOOST_TEST(lr.load_entropy == -(std::log(1.0 / 3) / 3 + std::log(0.5) / 2 + std::log(1.0 / 6) / 6),
             boost::test_tools::tolerance(1e-12));
  BOOST_TEST(lr.margin_mean == 1.0 / 3, boost::test_tools::tolerance(1e-12));  // margins 1, 0, 0
  BOOST_TEST(lr.margin_p5 == 0.0);
  // H of softmax(2, 1, 0, -1): with q_i = e^-i / Z, H = log Z + sum i q_i; softmax(0, 3, 1, 1) likewise; log 4.
  auto h = [](std::vector<double> z) {
    double s = 0, hz = 0;
    for (double v : z) s += std::exp(v);
    for (double v : z) hz -= std::exp(v) / s * (v - std::log(s));
    return hz;
  };
  BOOST_TEST(lr.token_entropy == (h({2, 1, 0, -1}) + h({0, 3, 1, 1}) + std::log(4.0)) / 3,
             boost::test_tools::tolerance(1e-12));
  const mla::inspect::layer_routing all = mla::inspect::detail::layer_routing_of(0, r, 4);
  BOOST_TEST(all.load == (std::vector<long>{3, 3, 3, 3}), boost::test_tools::per_element());
  BOOST_TEST(all.load_cv == 0.0);
  BOOST_TEST(all.load_entropy == std::log(4.0), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(std::isnan(all.margin_mean));
  BOOST_TEST(std::isnan(all.margin_p5));
}

// A model without MoE layers (SmolLM2-shaped: SwiGLU) is refused by name.
BOOST_AUTO_TEST_CASE(a_dense_model_is_refused) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    mla::model::model_config cfg;
    mla::model::model_weights<float> w;
    mla::test::random_model<float>(gen, 2, mla::test::layer_spec{}, cfg, w);
    const mla::model::decoder<float> m(cfg, w);
    mla::test::expect_error(
        [&] {
          mla::inspect::routing(m, {1, 2, 3}, "SmolLM2-135M.gguf");
        },
        {"'SmolLM2-135M.gguf' has no mixture-of-experts layers (its MLP is swiglu)", "routing needs an MoE model"});
  }
}

// The table, CSV and JSON carry the report's numbers; the bars' shares are load / (k n) per layer, written to the
// .dat one block per layer, and gnuplot (when installed) draws them.
BOOST_AUTO_TEST_CASE(outputs_carry_the_reports_numbers) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    const mla::model::loaded_model lm = routing_tiny_gpt_oss(seed);
    const mla::model::decoder<float>& m = lm.model;
    const int ne = m.config().n_experts, k = m.config().experts_per_token, layers = m.config().n_layers;
    const std::vector<int> tokens = mla::test::random_tokens(gen, m.config().vocab_size, mla::test::pick(gen, 16, 40));
    const mla::model::decoder<float> swapped = routing_swapped(m, layers - 1, 0, ne - 1);
    const std::vector<mla::inspect::routing_report> reports{mla::inspect::routing(m, tokens, "dir/orig"),
                                                            mla::inspect::routing(swapped, tokens, "dir/conv/")};
    const mla::inspect::routing_comparison c = mla::inspect::routing_changes(reports[0], reports[1]);

    const nlohmann::json j = mla::inspect::routing_json(reports);
    BOOST_TEST_REQUIRE(j["routing"].size() == 2u);
    for (std::size_t i = 0; i < 2; ++i) {
      BOOST_TEST(j["routing"][i]["tokens"].get<std::size_t>() == tokens.size());
      BOOST_TEST(j["routing"][i]["top_k"].get<int>() == k);
      for (int l = 0; l < layers; ++l) {
        const auto& jl = j["routing"][i]["layers"][std::size_t(l)];
        const auto& lr = reports[i].layers[std::size_t(l)];
        BOOST_TEST(jl["load"].get<std::vector<long>>() == lr.load, boost::test_tools::per_element());
        BOOST_TEST(jl["load_cv"].get<double>() == lr.load_cv);
        BOOST_TEST(jl["token_entropy"].get<double>() == lr.token_entropy);
        BOOST_TEST(jl["margin_p5"].get<double>() == lr.margin_p5);
        BOOST_TEST(jl["never_chosen"].get<std::vector<int>>() == lr.never_chosen, boost::test_tools::per_element());
      }
    }
    BOOST_TEST(j["changes"]["compare"].get<std::string>() == "dir/conv/");
    BOOST_TEST(j["changes"]["layers"][std::size_t(layers - 1)]["changed"].get<double>() == c.layers.back().changed);
    BOOST_TEST(j["changes"]["layers"][std::size_t(layers - 1)]["jaccard"].get<double>() == c.layers.back().jaccard);
    BOOST_TEST(!mla::inspect::routing_json({reports[0]}).contains("changes"));

    const std::string csv = mla::inspect::routing_csv(reports);
    BOOST_TEST(std::count(csv.begin(), csv.end(), '\n') == 1 + 2 * layers * (1 + ne) + layers);
    char row[256];
    std::snprintf(row, sizeof row, "\"dir/orig\",expert,%d,%d,%ld,", layers - 1, ne - 1,
                  reports[0].layers.back().load.back());
    BOOST_TEST(csv.find(row) != std::string::npos, row);
    std::snprintf(row, sizeof row, "\"dir/conv/\",change,%d,,,,,,,,,%.9g,%.9g\n", layers - 1, c.layers.back().changed,
                  c.layers.back().jaccard);
    BOOST_TEST(csv.find(row) != std::string::npos, row);

    const std::string table = mla::inspect::routing_table(reports);
    const auto& lr = reports[1].layers.back();
    std::snprintf(row, sizeof row, "%5d compare %8.4f %8.4f %8.4f %7.4f %7.4f  ", layers - 1, lr.load_cv,
                  lr.token_entropy, lr.load_entropy, lr.margin_mean, lr.margin_p5);
    BOOST_TEST(table.find(row) != std::string::npos, row);
    std::snprintf(row, sizeof row, "\n%5d %8.4f %8.4f\n", layers - 1, c.layers.back().changed, c.layers.back().jaccard);
    BOOST_TEST(table.find(row) != std::string::npos, row);
    std::ostringstream loads;
    loads << "\n    0 model  ";
    long widest = 0;
    for (const auto& rep : reports)
      for (const auto& l : rep.layers) widest = std::max(widest, *std::max_element(l.load.begin(), l.load.end()));
    for (long v : reports[0].layers[0].load)
      loads << std::string(std::to_string(widest).size() + 1 - std::to_string(v).size(), ' ') << v;
    loads << "\n";
    BOOST_TEST(table.find(loads.str()) != std::string::npos, loads.str());

    // The bars: shares per layer, and the .dat blocks that gnuplot reads.
    const matrix<double> share = mla::inspect::expert_load_share(reports[0]);
    BOOST_TEST_REQUIRE(share.rows() == layers);
    BOOST_TEST_REQUIRE(share.cols() == ne);
    for (int l = 0; l < layers; ++l) {
      for (int e = 0; e < ne; ++e)
        BOOST_TEST(share(l, e) == double(reports[0].layers[std::size_t(l)].load[std::size_t(e)]) /
                                      (double(k) * double(tokens.size())));
      BOOST_TEST(share.row(l).sum() == 1.0, boost::test_tools::tolerance(1e-12));
    }
    const mla::test::temp_dir t("mla-routing-plot");
    const std::string script = mla::inspect::write_expert_load(t.path(), reports, "bars");
    BOOST_TEST(script == t.file("bars.gp"));
    std::istringstream dat(mla::test::read_file(t.file("bars.dat")));
    std::string line;
    int block = 0, rows = 0;
    while (std::getline(dat, line)) {
      if (line.empty()) continue;
      if (line[0] == '#') {
        BOOST_TEST(line == "# layer " + std::to_string(block) + ": expert 'orig' 'conv'");
        ++block, rows = 0;
        continue;
      }
      std::istringstream fields(line);
      int e = -1;
      double s0 = -1, s1 = -1;
      fields >> e >> s0 >> s1;
      BOOST_TEST(e == rows);
      BOOST_TEST(s0 == share(block - 1, e), boost::test_tools::tolerance(1e-5));
      BOOST_TEST(s1 == double(reports[1].layers[std::size_t(block - 1)].load[std::size_t(e)]) /
                           (double(k) * double(tokens.size())),
                 boost::test_tools::tolerance(1e-5));
      ++rows;
    }
    BOOST_TEST(block == layers);
    const std::string gp = mla::test::read_file(script);
    BOOST_TEST(gp.find("set multiplot layout 1,4") != std::string::npos);
    BOOST_TEST(gp.find("index 3 using") != std::string::npos);

    const char* path = std::getenv("PATH");
    const std::string gnuplot = mla::inspect::find_gnuplot(path ? path : "");
    if (gnuplot.empty()) {
      BOOST_TEST_MESSAGE("gnuplot is not installed: " << mla::inspect::gnuplot_missing_message());
      return;
    }
    const auto files = mla::inspect::plot_routing(gnuplot, t.path(), reports, "r_");
    BOOST_TEST_REQUIRE(files.size() == 2u);
    BOOST_TEST(files[0] == t.file("r_expert_load.png"));
    BOOST_TEST(mla::test::read_file(files[0]).substr(0, 8) == std::string("\x89PNG\r\n\x1a\n"));
    const std::string svg = mla::test::read_file(files[1]);
    BOOST_TEST(svg.find("<svg") != std::string::npos);
    BOOST_TEST(svg.find("layer 3") != std::string::npos);
  }
}

BOOST_AUTO_TEST_SUITE_END()
