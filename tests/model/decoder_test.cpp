#include "mla/model/decoder.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "mla/reference/exact_rewrite.hpp"
#include "random.hpp"

namespace {
using mla::model::decoder;
using mla::model::model_config;
using mla::model::model_weights;
using mla::ref::matrix;
using mla::ref::vector;

using mla::test::randn;

// A tiny Llama-shaped model: 2 layers, hidden 48, 6 query heads / 2 KV heads of 8, SwiGLU 64, vocab 50.
template <class T>
std::pair<model_config, model_weights<T>> tiny_llama(std::mt19937_64& rng, bool tied) {
  model_config c;
  c.architecture = "llama";
  c.vocab_size = 50, c.hidden = 48, c.n_layers = 2, c.n_heads = 6, c.n_kv_heads = 2, c.head_dim = 8;
  c.intermediate = 64, c.rms_eps = 1e-5, c.tied_embeddings = tied;
  c.rope = mla::ref::rope_config::smollm2();
  c.rope.dim = 8;
  c.layers.resize(2);
  model_weights<T> w;
  w.embed = randn<T>(rng, c.vocab_size, c.hidden, 1.0);
  if (!tied) w.lm_head = randn<T>(rng, c.vocab_size, c.hidden, 0.2);
  w.final_norm = (vector<T>::Ones(c.hidden) + randn<T>(rng, c.hidden, 1, 0.1).col(0)).eval();
  const double s = 1.0 / std::sqrt(double(c.hidden));
  for (int l = 0; l < 2; ++l) {
    mla::model::layer_weights<T> lw;
    lw.attn_norm = (vector<T>::Ones(c.hidden) + randn<T>(rng, c.hidden, 1, 0.1).col(0)).eval();
    lw.mlp_norm = (vector<T>::Ones(c.hidden) + randn<T>(rng, c.hidden, 1, 0.1).col(0)).eval();
    auto& g = lw.gqa;
    g.hidden = c.hidden, g.n_heads = c.n_heads, g.n_kv_heads = c.n_kv_heads, g.head_dim = c.head_dim;
    g.wq = randn<T>(rng, 48, 48, s), g.wk = randn<T>(rng, 16, 48, s), g.wv = randn<T>(rng, 16, 48, s);
    g.wo = randn<T>(rng, 48, 48, s);
    g.rope = c.rope;
    g.attention.softmax_scale = 1.0 / std::sqrt(8.0);
    lw.mlp.w_gate = randn<T>(rng, 64, 48, s), lw.mlp.w_up = randn<T>(rng, 64, 48, s);
    lw.mlp.w_down = randn<T>(rng, 48, 64, 1.0 / 8.0);
    w.layers.push_back(lw);
  }
  return {c, w};
}

// Independent float64 forward with plain loops (no Eigen products, no library attention).
std::vector<std::vector<double>> naive_forward(const model_config& c, const model_weights<double>& w,
                                               const std::vector<int>& tokens) {
  const int n = static_cast<int>(tokens.size()), H = c.hidden, d = c.head_dim;
  using vec = std::vector<double>;
  auto matvec = [](const matrix<double>& m, const vec& x) {
    vec y(m.rows(), 0.0);
    for (long i = 0; i < m.rows(); ++i)
      for (long j = 0; j < m.cols(); ++j) y[i] += m(i, j) * x[j];
    return y;
  };
  auto norm = [&](const vec& x, const vector<double>& g) {
    double ms = 0;
    for (double v : x) ms += v * v;
    const double inv = 1.0 / std::sqrt(ms / x.size() + c.rms_eps);
    vec y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * g[i];
    return y;
  };
  auto rope = [&](vec& v, int off, int pos) {  // NeoX half-split over d channels
    for (int i = 0; i < d / 2; ++i) {
      const double f = std::pow(c.rope.theta, -2.0 * i / d), a = v[off + i], b = v[off + i + d / 2];
      v[off + i] = a * std::cos(pos * f) - b * std::sin(pos * f);
      v[off + i + d / 2] = b * std::cos(pos * f) + a * std::sin(pos * f);
    }
  };
  std::vector<vec> x(n);
  for (int t = 0; t < n; ++t) x[t] = vec(w.embed.row(tokens[t]).data(), w.embed.row(tokens[t]).data() + H);
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& lw = w.layers[l];
    std::vector<vec> q(n), k(n), v(n);
    for (int t = 0; t < n; ++t) {
      const vec xn = norm(x[t], lw.attn_norm);
      q[t] = matvec(lw.gqa.wq, xn), k[t] = matvec(lw.gqa.wk, xn), v[t] = matvec(lw.gqa.wv, xn);
      for (int h = 0; h < c.n_heads; ++h) rope(q[t], h * d, t);
      for (int h = 0; h < c.n_kv_heads; ++h) rope(k[t], h * d, t);
    }
    for (int t = 0; t < n; ++t) {
      vec attn(c.n_heads * d, 0.0);
      for (int h = 0; h < c.n_heads; ++h) {
        const int g = h / (c.n_heads / c.n_kv_heads);
        vec s(t + 1);
        double m = -1e300, sum = 0;
        for (int j = 0; j <= t; ++j) {
          s[j] = 0;
          for (int i = 0; i < d; ++i) s[j] += q[t][h * d + i] * k[j][g * d + i];
          s[j] /= std::sqrt(double(d));
          m = std::max(m, s[j]);
        }
        for (int j = 0; j <= t; ++j) sum += std::exp(s[j] - m);
        for (int j = 0; j <= t; ++j)
          for (int i = 0; i < d; ++i) attn[h * d + i] += std::exp(s[j] - m) / sum * v[j][g * d + i];
      }
      const vec o = matvec(lw.gqa.wo, attn);
      for (int i = 0; i < H; ++i) x[t][i] += o[i];
      const vec mn = norm(x[t], lw.mlp_norm);
      vec gate = matvec(lw.mlp.w_gate, mn), up = matvec(lw.mlp.w_up, mn);
      for (std::size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      const vec down = matvec(lw.mlp.w_down, gate);
      for (int i = 0; i < H; ++i) x[t][i] += down[i];
    }
  }
  std::vector<vec> logits(n);
  const matrix<double>& unembed = w.lm_head.size() ? w.lm_head : w.embed;
  for (int t = 0; t < n; ++t) logits[t] = matvec(unembed, norm(x[t], w.final_norm));
  return logits;
}

std::vector<int> random_tokens(std::mt19937_64& rng, int n, int vocab) {
  std::vector<int> t(n);
  for (auto& v : t) v = std::uniform_int_distribution<int>(0, vocab - 1)(rng);
  return t;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(model_decoder)

BOOST_AUTO_TEST_CASE(matches_independent_float64_forward) {
  const auto seed = mla::test::test_seed();
  std::mt19937_64 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (bool tied : {true, false}) {
      auto [c, w] = tiny_llama<double>(rng, tied);
      const auto tokens = random_tokens(rng, 13, c.vocab_size);
      const auto expected = naive_forward(c, w, tokens);
      const decoder<double> model(c, w);
      const matrix<double> got = model.forward(tokens);
      for (int t = 0; t < 13; ++t) {
        const Eigen::Map<const mla::ref::row_vector<double>> e(expected[t].data(), c.vocab_size);
        BOOST_TEST(mla::ref::relative_error(got.row(t), e) < 1e-12);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(decode_matches_prefill) {
  const auto seed = mla::test::test_seed();
  std::mt19937_64 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    auto [c, w] = tiny_llama<float>(rng, true);
    const auto tokens = random_tokens(rng, 20, c.vocab_size);
    const decoder<float> model(c, w);
    const matrix<float> full = model.forward(tokens);
    // Prefill the first 7 tokens, then decode the rest one at a time.
    auto s = model.new_session();
    const std::vector<int> head(tokens.begin(), tokens.begin() + 7);
    const matrix<float> first = model.forward(s, head);
    BOOST_TEST(mla::ref::relative_error(first, full.topRows(7)) < 1e-5);
    for (int t = 7; t < 20; ++t) BOOST_TEST(mla::ref::relative_error(model.decode(s, tokens[t]), full.row(t)) < 1e-5);
    BOOST_TEST(s.length == 20);
    // 2 layers x 20 tokens x (k + v) x 2 KV heads x 8 channels, in float.
    BOOST_TEST(s.kv_bytes() == std::size_t(2 * 20 * 2 * 2 * 8 * sizeof(float)));
  }
}

// The exact rewrite applied to every layer leaves the model's logits unchanged (naive and absorbed MLA).
BOOST_AUTO_TEST_CASE(exact_mla_model_keeps_logits) {
  const auto seed = mla::test::test_seed();
  std::mt19937_64 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    auto [c, w] = tiny_llama<double>(rng, true);
    const auto tokens = random_tokens(rng, 16, c.vocab_size);
    const matrix<double> reference = decoder<double>(c, w).forward(tokens);
    model_config mc = c;
    model_weights<double> mw = w;
    for (int l = 0; l < c.n_layers; ++l) {
      mw.layers[l].mla = mla::ref::exact_mla_from_gqa(w.layers[l].gqa);
      mc.layers[l].attention = mla::model::attention_kind::mla;
      mc.layers[l].latent_rank = mw.layers[l].mla.latent_rank;
    }
    for (auto form : {mla::ref::mla_form::naive, mla::ref::mla_form::absorbed}) {
      const decoder<double> converted(mc, mw, form);
      BOOST_TEST(mla::ref::relative_error(converted.forward(tokens), reference) < 1e-12);
      auto s = converted.new_session();
      converted.forward(s, std::vector<int>(tokens.begin(), tokens.begin() + 10));
      for (int t = 10; t < 16; ++t)
        BOOST_TEST(mla::ref::relative_error(converted.decode(s, tokens[t]), reference.row(t)) < 1e-12);
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_inputs_are_named) {
  std::mt19937_64 rng(1);
  auto [c, w] = tiny_llama<float>(rng, true);
  const decoder<float> model(c, w);
  BOOST_CHECK_EXCEPTION(model.forward(std::vector<int>{1, 50}), mla::error, [](const mla::error& e) {
    return std::string(e.what()).find("token id 50 at index 1 is outside the vocabulary") != std::string::npos;
  });
  auto broken = w;
  broken.layers[1].mlp.w_down.resize(10, 10);
  BOOST_CHECK_EXCEPTION((decoder<float>(c, broken)), mla::error, [](const mla::error& e) {
    return std::string(e.what()).find("down projection is [10, 10], expected [48, 64]") != std::string::npos;
  });
}

BOOST_AUTO_TEST_SUITE_END()
