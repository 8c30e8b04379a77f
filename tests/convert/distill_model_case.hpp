// The model the end-to-end distillation tests train (distill_model_test.cpp, distill_state_test.cpp).
#pragma once

#include <random>
#include <vector>

#include "convert_test_support.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/model/decoder.hpp"
#include "random_layers.hpp"

namespace mla::test {

// A two-layer random model with what the backward pass must carry (biases, sinks, a sliding window of 24
// shorter than the windows, gpt-oss YaRN RoPE), its lossy MLA conversion (weight SVD, rank 12, d_R 8) and token
// windows.
template <class T>
struct distill_model_case {
  model::model_config cfg;
  model::model_weights<T> w;
  convert::model_conversion<T> conv;
  std::vector<std::vector<int>> windows, unseen;

  distill_model_case(std::mt19937_64& gen, int n_windows, int tokens) {
    const layer_spec spec = with_gpt_oss_features({}, 24);
    random_model(gen, 2, spec, cfg, w);
    for (auto& lw : w.layers) lw.mlp_norm = (lw.mlp_norm + randn_vec<T>(gen, spec.hidden, 0.2)).eval();
    // Logits of O(1) (not O(sqrt(hidden))), so the next-token distributions are not one-hot.
    w.final_norm = (T(0.25) * (w.final_norm + randn_vec<T>(gen, spec.hidden, 0.2))).eval();
    windows = random_windows(gen, cfg.vocab_size, n_windows, tokens);
    unseen = random_windows(gen, cfg.vocab_size, 8, tokens);
    const model::decoder<T> dec(cfg, w);
    convert::pipeline_options o;
    o.layer.rope = {convert::rope_strategy::rorope, 8, 0};
    o.layer.factor.method = convert::factor_method::weight_svd;
    o.layer.rank = 12;
    o.require_supported_shape = false;
    conv = convert::convert_model(cfg, w, convert::calibrate(dec, windows), o);
  }
};

// A gpt-oss-shaped random model: 4 layers alternating a sliding window of 8 (layers 0 and 2, kept GQA, as the
// conversion does by default) with full attention (layers 1 and 3, converted: weight SVD, rank 12, d_R 8), sinks
// and biases everywhere, YaRN RoPE, and the MoE feed-forward (top-2 of 4 experts, the clamped SwiGLU with a limit
// of 2.5 that engages on about 1 % of the entries: often enough to matter, rarely enough that a finite difference
// seldom straddles a clamp's kink).
template <class T>
struct gpt_oss_distill_case {
  model::model_config cfg;
  model::model_weights<T> w;
  convert::model_conversion<T> conv;
  std::vector<std::vector<int>> windows, unseen;

  gpt_oss_distill_case(std::mt19937_64& gen, int n_windows, int tokens) {
    const layer_spec spec = with_gpt_oss_features({}, 0);
    random_model(gen, 4, spec, cfg, w);
    cfg.architecture = "gpt_oss";
    cfg.attention_bias = cfg.attention_sinks = true;
    cfg.mlp = model::mlp_kind::moe;
    cfg.intermediate = 24;
    cfg.n_experts = 4;
    cfg.experts_per_token = 2;
    cfg.swiglu_limit = 2.5;
    for (int l = 0; l < 4; ++l) {
      auto& lw = w.layers[static_cast<std::size_t>(l)];
      const int window = l % 2 == 0 ? 8 : 0;
      cfg.layers[static_cast<std::size_t>(l)].sliding_window = window;
      lw.gqa.attention.sliding_window = window;
      lw.mlp = {};
      lw.moe =
          random_moe<T>(gen, spec.hidden, cfg.intermediate, cfg.n_experts, cfg.experts_per_token, cfg.swiglu_limit);
      lw.mlp_norm = (lw.mlp_norm + randn_vec<T>(gen, spec.hidden, 0.2)).eval();
    }
    w.final_norm = (T(0.25) * (w.final_norm + randn_vec<T>(gen, spec.hidden, 0.2))).eval();
    windows = random_windows(gen, cfg.vocab_size, n_windows, tokens);
    unseen = random_windows(gen, cfg.vocab_size, 4, tokens);
    const model::decoder<T> dec(cfg, w);
    convert::pipeline_options o;
    o.layer.rope = {convert::rope_strategy::rorope, 8, 0};
    o.layer.factor.method = convert::factor_method::weight_svd;
    o.layer.rank = 12;
    o.layers = {1, 3};
    o.require_supported_shape = false;
    conv = convert::convert_model(cfg, w, convert::calibrate(dec, windows), o);
  }
};

}  // namespace mla::test
