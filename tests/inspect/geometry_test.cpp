#include "mla/inspect/geometry.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "inspect_test_support.hpp"
#include "seed.hpp"

namespace {

using dvec_list = std::vector<double>;
using mla::ref::matrix;

// The attention inputs xn [n, hidden] of every layer, as the decoder's forward shows them.
struct xn_recorder : mla::model::observer<float> {
  std::vector<matrix<float>> xn;
  void attention_input(int l, const matrix<float>& x, long) override {
    if (int(xn.size()) <= l) xn.resize(std::size_t(l) + 1);
    xn[std::size_t(l)] = x;
  }
};

// One head's query / key rows in float64 [n][dim], pre-RoPE, and which channel pairs rotate.
struct head_qk {
  std::vector<dvec_list> q, k;
  int rope_offset = 0, rope = 0;  // RoPE channels [rope_offset, rope_offset + rope), NeoX halves
};

// y_t = W x_t + b, rows [row0, row0 + count), by plain loops.
dvec_list affine_rows(const matrix<float>& w, const mla::ref::vector<float>& b, const matrix<float>& x, long t,
                      long row0, long count) {
  dvec_list y(std::size_t(count), 0.0);
  for (long r = 0; r < count; ++r) {
    double s = b.size() ? double(b[row0 + r]) : 0.0;
    for (long c = 0; c < x.cols(); ++c) s += double(w(row0 + r, c)) * double(x(t, c));
    y[std::size_t(r)] = s;
  }
  return y;
}

// NeoX rotation of channels [off, off + r) by position t, inv_freq_f = 10000^(-2f/r).
void rotate(dvec_list& v, int off, int r, long t) {
  for (int f = 0; f < r / 2; ++f) {
    const double a = double(t) * std::pow(10000.0, -2.0 * f / r);
    const double re = v[std::size_t(off + f)], im = v[std::size_t(off + f + r / 2)];
    v[std::size_t(off + f)] = re * std::cos(a) - im * std::sin(a);
    v[std::size_t(off + f + r / 2)] = re * std::sin(a) + im * std::cos(a);
  }
}

double dot(const dvec_list& a, const dvec_list& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Every number of one head by the definitions in geometry.hpp, directly.
mla::inspect::head_geometry direct(const head_qk& hq, double scale, int window, const double* sink) {
  const long n = long(hq.q.size());
  mla::inspect::head_geometry g;
  const int half = hq.rope / 2;
  g.q_energy.assign(std::size_t(half), 0.0);
  g.k_energy.assign(std::size_t(half), 0.0);
  for (long t = 0; t < n; ++t) {
    g.q_norm += std::sqrt(dot(hq.q[std::size_t(t)], hq.q[std::size_t(t)])) / double(n);
    g.k_norm += std::sqrt(dot(hq.k[std::size_t(t)], hq.k[std::size_t(t)])) / double(n);
    for (int f = 0; f < half; ++f) {
      const auto re = std::size_t(hq.rope_offset + f), im = std::size_t(hq.rope_offset + f + half);
      const auto& q = hq.q[std::size_t(t)];
      const auto& k = hq.k[std::size_t(t)];
      g.q_energy[std::size_t(f)] += (q[re] * q[re] + q[im] * q[im]) / double(n);
      g.k_energy[std::size_t(f)] += (k[re] * k[re] + k[im] * k[im]) / double(n);
    }
  }
  std::vector<dvec_list> qr = hq.q, kr = hq.k;
  for (long t = 0; t < n; ++t) {
    rotate(qr[std::size_t(t)], hq.rope_offset, hq.rope, t);
    rotate(kr[std::size_t(t)], hq.rope_offset, hq.rope, t);
  }
  g.logit_min = std::numeric_limits<double>::infinity();
  g.logit_max = -g.logit_min;
  double ratio_sum = 0;
  long ratio_rows = 0;
  for (long t = 0; t < n; ++t) {
    std::vector<double> logits;
    for (long s = 0; s <= t; ++s) {
      if (window > 0 && s <= t - window) continue;
      logits.push_back(scale * dot(qr[std::size_t(t)], kr[std::size_t(s)]));
      g.logit_min = std::min(g.logit_min, logits.back());
      g.logit_max = std::max(g.logit_max, logits.back());
    }
    if (sink) logits.push_back(*sink);
    if (logits.size() < 2) continue;
    double z = 0;
    for (double l : logits) z += std::exp(l);
    double h = 0;
    for (double l : logits) h -= std::exp(l) / z * std::log(std::exp(l) / z);
    ratio_sum += h / std::log(double(logits.size()));
    ++ratio_rows;
  }
  g.entropy_ratio = ratio_sum / double(ratio_rows);
  return g;
}

void check_close(double got, double want, const char* what) {
  BOOST_TEST_CONTEXT(what) { BOOST_TEST(std::abs(got - want) <= 1e-9 * (1.0 + std::abs(want)), got << " vs " << want); }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(inspect_geometry)

// Every number of every head of a GQA layer with biases and sinks, a windowed GQA layer and an MLA layer with a
// latent norm and sinks, against loops in float64 over the attention inputs the decoder's forward produced.
BOOST_AUTO_TEST_CASE(every_head_against_a_direct_computation) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    mla::test::inspect_model im = mla::test::random_inspect_model(gen);
    const mla::model::decoder<float> m(im.cfg, im.w);
    const int n = mla::test::pick(gen, 12, 40);
    const std::vector<int> tokens = mla::test::random_tokens(gen, im.cfg.vocab_size, n);
    const mla::inspect::geometry_report r = mla::inspect::geometry(m, tokens, "random");
    xn_recorder rec;
    m.forward(tokens, &rec);
    BOOST_TEST(r.tokens == n);
    BOOST_TEST_REQUIRE(r.layers.size() == 3u);
    const int d = im.cfg.head_dim;
    for (int l = 0; l < 3; ++l) {
      const auto& lg = r.layers[std::size_t(l)];
      const auto& lw = im.w.layers[std::size_t(l)];
      const matrix<float>& x = rec.xn[std::size_t(l)];
      BOOST_TEST_REQUIRE(lg.heads.size() == std::size_t(im.cfg.n_heads));
      for (int h = 0; h < im.cfg.n_heads; ++h) {
        BOOST_TEST_CONTEXT("layer " << l << " head " << h) {
          head_qk hq;
          double scale = 0, sink = 0;
          int window = 0;
          bool has_sink = false;
          if (l < 2) {
            const auto& a = lw.gqa;
            const int j = h / (a.n_heads / a.n_kv_heads);
            for (long t = 0; t < n; ++t) {
              hq.q.push_back(affine_rows(a.wq, a.bq, x, t, long(h) * d, d));
              hq.k.push_back(affine_rows(a.wk, a.bk, x, t, long(j) * d, d));
            }
            hq.rope = d;
            scale = a.attention.softmax_scale;
            window = a.attention.sliding_window;
            has_sink = a.sinks.size() != 0;
            if (has_sink) sink = a.sinks[h];
          } else {
            const auto& a = lw.mla;
            const int nope = a.nope_dim, rd = a.rope_dim, qk = nope + rd;
            for (long t = 0; t < n; ++t) {
              hq.q.push_back(affine_rows(a.wq, a.bq, x, t, long(h) * qk, qk));
              dvec_list c = affine_rows(a.w_dkv, a.b_dkv, x, t, 0, a.latent_rank);
              double ms = 0;
              for (double v : c) ms += v * v / double(c.size());
              for (std::size_t i = 0; i < c.size(); ++i)
                c[i] *= double(a.latent_norm[long(i)]) / std::sqrt(ms + a.latent_norm_eps);
              dvec_list k(std::size_t(qk), 0.0);
              for (int i = 0; i < nope; ++i)
                for (int s = 0; s < a.latent_rank; ++s)
                  k[std::size_t(i)] += double(a.w_uk(long(h) * nope + i, s)) * c[std::size_t(s)];
              const dvec_list kpe = affine_rows(a.w_kr, a.b_kr, x, t, 0, rd);
              for (int i = 0; i < rd; ++i) k[std::size_t(nope + i)] = kpe[std::size_t(i)];
              hq.k.push_back(k);
            }
            hq.rope_offset = nope;
            hq.rope = rd;
            scale = a.attention.softmax_scale;
            has_sink = true;
            sink = a.sinks[h];
          }
          const mla::inspect::head_geometry want = direct(hq, scale, window, has_sink ? &sink : nullptr);
          const mla::inspect::head_geometry& got = lg.heads[std::size_t(h)];
          check_close(got.q_norm, want.q_norm, "q_norm");
          check_close(got.k_norm, want.k_norm, "k_norm");
          check_close(got.logit_min, want.logit_min, "logit_min");
          check_close(got.logit_max, want.logit_max, "logit_max");
          check_close(got.entropy_ratio, want.entropy_ratio, "entropy_ratio");
          BOOST_TEST_REQUIRE(got.q_energy.size() == want.q_energy.size());
          BOOST_TEST_REQUIRE(got.k_energy.size() == want.k_energy.size());
          for (std::size_t f = 0; f < want.q_energy.size(); ++f) {
            check_close(got.q_energy[f], want.q_energy[f], "q_energy");
            check_close(got.k_energy[f], want.k_energy[f], "k_energy");
          }
        }
      }
      const int r_dim = l < 2 ? d : 4;
      BOOST_TEST_REQUIRE(lg.inv_freq.size() == std::size_t(r_dim / 2));
      for (int f = 0; f < r_dim / 2; ++f)
        check_close(lg.inv_freq[std::size_t(f)], std::pow(10000.0, -2.0 * f / r_dim), "inv_freq");
    }
  }
}

// The 2-norm score and its centroid, the table and the CSV / JSON forms.
BOOST_AUTO_TEST_CASE(score_table_csv_and_json) {
  mla::inspect::head_geometry g;
  g.q_energy = {4.0, 1.0, 0.0};
  g.k_energy = {1.0, 9.0, 5.0};
  const std::vector<double> s = mla::inspect::frequency_score(g);
  BOOST_TEST(s == (std::vector<double>{2.0, 3.0, 0.0}), boost::test_tools::per_element());
  BOOST_TEST(mla::inspect::frequency_centroid(g) == 0.6, boost::test_tools::tolerance(1e-12));

  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    mla::test::inspect_model im = mla::test::random_inspect_model(gen);
    const mla::model::decoder<float> m(im.cfg, im.w);
    const std::vector<mla::inspect::geometry_report> rs{
        mla::inspect::geometry(m, mla::test::random_tokens(gen, im.cfg.vocab_size, 16), "m")};
    std::istringstream csv(mla::inspect::geometry_csv(rs));
    std::string line;
    long rows = 0;
    std::getline(csv, line);
    BOOST_TEST(line ==
               "model,layer,head,attention,q_norm,k_norm,logit_min,logit_max,entropy_ratio,freq_index,"
               "inv_freq,q_energy,k_energy");
    while (std::getline(csv, line)) ++rows;
    const long heads = im.cfg.n_heads;
    BOOST_TEST(rows == 2 * heads * (im.cfg.head_dim / 2) + heads * 2);  // two GQA layers, then MLA's 2 frequencies
    const nlohmann::json j = mla::inspect::geometry_json(rs);
    BOOST_TEST(j["geometry"][0]["layers"][2]["attention"] == "mla");
    BOOST_TEST(j["geometry"][0]["layers"][1]["heads"][3]["q_norm"].get<double>() == rs[0].layers[1].heads[3].q_norm);
    const std::string table = mla::inspect::geometry_table(rs[0]);
    BOOST_TEST(table.find("m: 16 tokens") == 0u);
    long table_rows = 0;
    for (char c : table) table_rows += c == '\n';
    BOOST_TEST(table_rows == 2 + 3 * heads);
  }
}

BOOST_AUTO_TEST_CASE(rejects_a_single_token) {
  std::mt19937_64 gen(2);
  mla::test::inspect_model im = mla::test::random_inspect_model(gen);
  const mla::model::decoder<float> m(im.cfg, im.w);
  BOOST_CHECK_EXCEPTION(mla::inspect::geometry(m, {1}), mla::error, [](const mla::error& e) {
    return std::string(e.what()).find("at least 2 tokens, found 1") != std::string::npos;
  });
}

BOOST_AUTO_TEST_SUITE_END()
