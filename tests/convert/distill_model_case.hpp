// The model the end-to-end distillation tests train (distill_model_test.cpp, distill_state_test.cpp).
#pragma once

#include <random>
#include <vector>

#include "convert_test_support.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/model/decoder.hpp"

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

}  // namespace mla::test
