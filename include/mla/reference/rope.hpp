// mla::ref::rope: rotary position embedding in both pair layouts, with default, YaRN and llama3
// frequency scaling. Frequencies and angles are computed in double and cast to T only for the rotation.
//
//   neox (half-split; Llama, gpt-oss checkpoints): channel i pairs with i + dim/2, frequency i.
//   interleaved (DeepSeek storage):                 channel 2i pairs with 2i + 1, frequency i.
//   rotation of a pair (a, b) at position p:  a' = a cos(p f_i) - b sin(p f_i),  b' = b cos(p f_i) + a sin(p f_i)
// YaRN also multiplies cos and sin by an attention factor (gpt-oss: 0.1 ln 32 + 1), so q and k both grow
// by it and logits by its square.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "mla/core/error.hpp"

namespace mla::ref {

enum class rope_layout { neox, interleaved };
enum class rope_scaling { none, yarn, llama3 };

struct rope_config {
  int dim = 64;          // rotated channels (even)
  double theta = 10000;  // base
  rope_layout layout = rope_layout::neox;
  rope_scaling scaling = rope_scaling::none;

  // YaRN and llama3: context extension factor and the original training context.
  double factor = 1.0;
  int original_max_position = 4096;
  // YaRN: correction range from the fast/slow rotation counts; `truncate` floors/ceils the range
  // (transformers' default true; gpt-oss sets false). attention_factor 0 means 0.1 ln(factor) + 1.
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  bool truncate = true;
  double attention_factor = 0.0;
  // llama3: wavelengths above original/low_freq_factor are divided by factor, below
  // original/high_freq_factor kept, and smoothly blended in between.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // Explicit inverse frequencies [dim/2], used as they are (scaling is not applied to them again; YaRN's
  // attention factor still is). Empty: the standard theta^(-2i/dim) ladder, scaled. Converted layers set it
  // when their shared RoPE key keeps source frequencies that are not a standard ladder.
  std::vector<double> inv_freq_override;

  // gpt-oss: head dim 64 all rotated (NeoX), theta 150000, YaRN 32x from 4096, beta 32/1, no truncation.
  static rope_config gpt_oss() {
    rope_config c;
    c.dim = 64;
    c.theta = 150000;
    c.scaling = rope_scaling::yarn;
    c.factor = 32;
    c.original_max_position = 4096;
    c.beta_fast = 32;
    c.beta_slow = 1;
    c.truncate = false;
    return c;
  }
  // SmolLM2 (Llama): head dim 64 all rotated (NeoX), theta 100000, no scaling.
  static rope_config smollm2() {
    rope_config c;
    c.dim = 64;
    c.theta = 100000;
    return c;
  }
  // Llama 3.1: head dim 128, theta 500000, llama3 scaling 8x from 8192 with low/high factors 1/4.
  static rope_config llama3_1() {
    rope_config c;
    c.dim = 128;
    c.theta = 500000;
    c.scaling = rope_scaling::llama3;
    c.factor = 8;
    c.original_max_position = 8192;
    c.low_freq_factor = 1;
    c.high_freq_factor = 4;
    return c;
  }
};

namespace detail {
inline constexpr double pi = 3.14159265358979323846;

inline void validate(const rope_config& c) {
  check(c.dim > 0 && c.dim % 2 == 0, "mla::ref::rope: dim must be positive and even (RoPE rotates pairs), got ", c.dim);
  check(c.theta > 1.0, "mla::ref::rope: theta must be > 1, got ", c.theta);
  if (c.scaling != rope_scaling::none) {
    check(c.factor >= 1.0, "mla::ref::rope: scaling factor must be >= 1, got ", c.factor);
    check(c.original_max_position > 0, "mla::ref::rope: original_max_position must be > 0, got ",
          c.original_max_position);
  }
  if (c.scaling == rope_scaling::yarn)
    check(c.beta_fast > c.beta_slow && c.beta_slow > 0, "mla::ref::rope: YaRN needs beta_fast > beta_slow > 0, got ",
          c.beta_fast, " and ", c.beta_slow);
  if (c.scaling == rope_scaling::llama3)
    check(c.high_freq_factor > c.low_freq_factor && c.low_freq_factor > 0,
          "mla::ref::rope: llama3 needs high_freq_factor > low_freq_factor > 0, got ", c.high_freq_factor, " and ",
          c.low_freq_factor);
  check(c.attention_factor >= 0.0, "mla::ref::rope: attention_factor must be >= 0 (0 = default), got ",
        c.attention_factor);
  if (!c.inv_freq_override.empty()) {
    check(c.inv_freq_override.size() == static_cast<std::size_t>(c.dim / 2), "mla::ref::rope: inv_freq_override has ",
          c.inv_freq_override.size(), " entries, expected dim/2 = ", c.dim / 2);
    for (std::size_t i = 0; i < c.inv_freq_override.size(); ++i)
      check(std::isfinite(c.inv_freq_override[i]) && c.inv_freq_override[i] > 0.0, "mla::ref::rope: inv_freq_override[",
            i, "] must be finite and > 0, got ", c.inv_freq_override[i]);
  }
}

// Inverse frequencies [dim/2] after scaling.
inline std::vector<double> inverse_frequencies(const rope_config& c) {
  if (!c.inv_freq_override.empty()) return c.inv_freq_override;
  const int half = c.dim / 2;
  std::vector<double> inv(half);
  for (int i = 0; i < half; ++i) inv[i] = 1.0 / std::pow(c.theta, 2.0 * i / c.dim);
  if (c.scaling == rope_scaling::yarn) {
    // Dimension index at which a frequency completes `rotations` turns over the original context.
    auto correction_dim = [&](double rotations) {
      return c.dim * std::log(c.original_max_position / (rotations * 2.0 * pi)) / (2.0 * std::log(c.theta));
    };
    double low = correction_dim(c.beta_fast), high = correction_dim(c.beta_slow);
    if (c.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, double(c.dim - 1));
    if (high == low) high += 0.001;  // avoid a zero-width ramp
    for (int i = 0; i < half; ++i) {
      const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      const double extrapolation = 1.0 - ramp;  // 1: keep the original frequency; 0: interpolate
      inv[i] = inv[i] / c.factor * (1.0 - extrapolation) + inv[i] * extrapolation;
    }
  } else if (c.scaling == rope_scaling::llama3) {
    const double low_wavelen = c.original_max_position / c.low_freq_factor;
    const double high_wavelen = c.original_max_position / c.high_freq_factor;
    for (int i = 0; i < half; ++i) {
      const double wavelen = 2.0 * pi / inv[i];
      if (wavelen > low_wavelen) {
        inv[i] /= c.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth =
            (c.original_max_position / wavelen - c.low_freq_factor) / (c.high_freq_factor - c.low_freq_factor);
        inv[i] = (1.0 - smooth) * inv[i] / c.factor + smooth * inv[i];
      }
    }
  }
  return inv;
}

inline double attention_factor(const rope_config& c) {
  if (c.scaling != rope_scaling::yarn) return 1.0;
  if (c.attention_factor > 0.0) return c.attention_factor;
  return c.factor <= 1.0 ? 1.0 : 0.1 * std::log(c.factor) + 1.0;
}
}  // namespace detail

template <class T>
class rope {
 public:
  explicit rope(const rope_config& config) : config_(config) {
    detail::validate(config_);
    inv_freq_ = detail::inverse_frequencies(config_);
    attention_factor_ = detail::attention_factor(config_);
  }

  int dim() const { return config_.dim; }
  const rope_config& config() const { return config_; }
  const std::vector<double>& inv_freq() const { return inv_freq_; }  // [dim/2]
  double attention_factor() const { return attention_factor_; }      // multiplies cos and sin

  // cos and sin [dim/2] at position pos, attention factor included.
  void cos_sin(long pos, T* cos_out, T* sin_out) const {
    for (std::size_t i = 0; i < inv_freq_.size(); ++i) {
      const double angle = static_cast<double>(pos) * inv_freq_[i];
      cos_out[i] = static_cast<T>(std::cos(angle) * attention_factor_);
      sin_out[i] = static_cast<T>(std::sin(angle) * attention_factor_);
    }
  }

  // Rotates dim() contiguous values x[0, dim) in place at position pos, in the configured layout.
  void apply(T* x, long pos) const {
    const int half = config_.dim / 2;
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(pos) * inv_freq_[i];
      const T c = static_cast<T>(std::cos(angle) * attention_factor_);
      const T s = static_cast<T>(std::sin(angle) * attention_factor_);
      T& a = config_.layout == rope_layout::neox ? x[i] : x[2 * i];
      T& b = config_.layout == rope_layout::neox ? x[i + half] : x[2 * i + 1];
      const T a0 = a, b0 = b;
      a = a0 * c - b0 * s;
      b = b0 * c + a0 * s;
    }
  }

 private:
  rope_config config_;
  std::vector<double> inv_freq_;
  double attention_factor_ = 1.0;
};

}  // namespace mla::ref
