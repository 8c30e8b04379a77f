// Random GQA layers, small random models and correlated synthetic activations for the conversion tests.
#pragma once

#include <Eigen/Core>
#include <Eigen/QR>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "mla/convert/calibration.hpp"
#include "mla/convert/rope_strategy.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/model_config.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/rope.hpp"
#include "random.hpp"
#include "random_layers.hpp"

namespace mla::test {

using ref::matrix;
using ref::vector;

// The layers of the conversion tests' models: RoPE over the whole head, softmax scale 1/sqrt(head_dim).
struct layer_spec {
  int hidden = 64, n_heads = 4, n_kv_heads = 2, head_dim = 16;
  bool biases = false, sinks = false;
  int window = 0;
  ref::rope_config rope = [] {
    ref::rope_config c;
    c.dim = 16;
    c.theta = 10000;
    return c;
  }();
};

// The spec with what gpt-oss adds to a Llama layer: biases, sinks, a sliding window and YaRN RoPE.
inline layer_spec with_gpt_oss_features(layer_spec s, int window) {
  s.biases = s.sinks = true;
  s.window = window;
  s.rope = ref::rope_config::gpt_oss();
  return s;
}

// Weights like a trained model (random_layers.hpp) with biases N(0, 0.3).
template <class T>
ref::gqa_layer<T> random_gqa(std::mt19937_64& gen, const layer_spec& s) {
  ref::rope_config rope = s.rope;
  rope.dim = s.head_dim;
  return random_gqa<T>(gen, gqa_spec{s.hidden, s.n_heads, s.n_kv_heads, s.head_dim, s.biases, s.biases, s.biases,
                                     s.biases, s.sinks, s.window, rope, 1.0 / std::sqrt(double(s.head_dim)), 0.3});
}

// A correlated input distribution: x = mu + z diag(sigma) R^T with a decaying spectrum sigma_i ~ 1/(1+i)
// (a few dominant directions, like real activations) and a random rotation R.
template <class T>
struct correlated_source {
  matrix<double> mix;  // [hidden, hidden] = R diag(sigma)
  vector<double> mu;
  correlated_source(std::mt19937_64& gen, int hidden, double decay = 1.0) {
    const matrix<double> g = randn<double>(gen, hidden, hidden, 1.0);
    const Eigen::HouseholderQR<Eigen::MatrixXd> qr{Eigen::MatrixXd(g)};
    const Eigen::MatrixXd rot = qr.householderQ();
    vector<double> sigma(hidden);
    for (int i = 0; i < hidden; ++i) sigma[i] = 3.0 / std::pow(1.0 + i, decay);
    mix = rot * sigma.asDiagonal();
    mu = randn_vec<double>(gen, hidden, 0.3);
  }
  matrix<T> sample(std::mt19937_64& gen, Eigen::Index tokens) const {
    const matrix<double> z = randn<double>(gen, tokens, mix.cols(), 1.0);
    matrix<double> x = z * mix.transpose();
    x.rowwise() += mu.transpose();
    return x.cast<T>();
  }
  // n independent windows of `tokens` rows each.
  std::vector<matrix<T>> windows(std::mt19937_64& gen, int n, Eigen::Index tokens) const {
    std::vector<matrix<T>> out;
    for (int i = 0; i < n; ++i) out.push_back(sample(gen, tokens));
    return out;
  }
};

template <class T>
convert::layer_moments moments_of(const std::vector<matrix<T>>& windows) {
  convert::layer_moments m;
  for (const auto& x : windows) m.add(x);
  return m;
}

// A small random Llama-style model (for decoder-level calibration and pipeline tests).
template <class T>
void random_model(std::mt19937_64& gen, int n_layers, const layer_spec& s, model::model_config& cfg,
                  model::model_weights<T>& w) {
  cfg = {};
  cfg.architecture = "llama";
  cfg.vocab_size = 97;
  cfg.hidden = s.hidden;
  cfg.n_layers = n_layers;
  cfg.n_heads = s.n_heads;
  cfg.n_kv_heads = s.n_kv_heads;
  cfg.head_dim = s.head_dim;
  cfg.intermediate = 2 * s.hidden;
  cfg.rope = s.rope;
  cfg.rope.dim = s.head_dim;
  cfg.layers.assign(static_cast<std::size_t>(n_layers), model::layer_config{});
  w = {};
  w.embed = randn<T>(gen, cfg.vocab_size, s.hidden, 1.0);
  w.final_norm = vector<T>::Ones(s.hidden);
  cfg.tied_embeddings = true;
  for (int l = 0; l < n_layers; ++l) {
    model::layer_weights<T> lw;
    lw.attn_norm = (vector<T>::Ones(s.hidden) + randn_vec<T>(gen, s.hidden, 0.2)).eval();
    lw.mlp_norm = vector<T>::Ones(s.hidden);
    lw.gqa = random_gqa<T>(gen, s);
    lw.mlp.w_gate = randn<T>(gen, cfg.intermediate, s.hidden, 1.0 / std::sqrt(double(s.hidden)));
    lw.mlp.w_up = randn<T>(gen, cfg.intermediate, s.hidden, 1.0 / std::sqrt(double(s.hidden)));
    lw.mlp.w_down = randn<T>(gen, s.hidden, cfg.intermediate, 1.0 / std::sqrt(double(cfg.intermediate)));
    w.layers.push_back(std::move(lw));
  }
}

// Token windows with structure (a few frequent tokens), so that activations are correlated.
inline std::vector<std::vector<int>> random_windows(std::mt19937_64& gen, int vocab, int n_windows, int len) {
  std::vector<double> p(static_cast<std::size_t>(vocab));
  for (int i = 0; i < vocab; ++i) p[static_cast<std::size_t>(i)] = 1.0 / (1.0 + i);
  std::discrete_distribution<int> pick(p.begin(), p.end());
  std::vector<std::vector<int>> out(static_cast<std::size_t>(n_windows));
  for (auto& w : out)
    for (int t = 0; t < len; ++t) w.push_back(pick(gen));
  return out;
}

// A random layer with biases, `windows` calibration windows of `tokens` correlated inputs, their moments and a
// RoRoPE plan with d_R = 8: the setup of the factorisation tests.
struct calibrated_layer {
  layer_spec spec;
  ref::gqa_layer<double> src;
  correlated_source<double> xs;
  std::vector<matrix<double>> cal;
  convert::layer_moments stats;
  convert::rope_plan plan;
  calibrated_layer(std::mt19937_64& gen, int windows, Eigen::Index tokens)
      : spec(with_biases()),
        src(random_gqa<double>(gen, spec)),
        xs(gen, spec.hidden),
        cal(xs.windows(gen, windows, tokens)),
        stats(moments_of(cal)),
        plan(convert::make_rope_plan(src, stats, {convert::rope_strategy::rorope, 8, 0})) {}

 private:
  static layer_spec with_biases() {
    layer_spec s;
    s.biases = true;
    return s;
  }
};

}  // namespace mla::test
