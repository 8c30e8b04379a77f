// mla::convert latent norm (optional stage): DeepSeek's kv_a_layernorm added to a converted layer, with the
// latent's calibration RMS as its constant weight, so that a token of typical RMS keeps its latent and the
// layer changes only by the per-token normalisation (the cost a DeepSeek-V3 export pays; distill.hpp can then
// train through it).
//
// Both functions read the calibration moment M_aug = E[x_a x_a^T] of the layer's attention input augmented by a
// constant 1 ([hidden+1, hidden+1], calibration.hpp), so that the bias enters exactly:
//   E||c||^2 = E||w_dkv x + b_dkv||^2 = tr(D M_aug D^T),  D = [w_dkv, b_dkv]  [latent_rank, hidden+1]
#pragma once

#include <cmath>

#include "mla/core/error.hpp"
#include "mla/model/mla_config.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/mla_attention.hpp"

namespace mla::convert {

// E||c||^2 per token of the layer's latent (before any latent norm) under the calibration moment m_aug.
template <class T>
double latent_mean_square(const ref::mla_layer<T>& m, const ref::matrix<double>& m_aug) {
  check(m_aug.rows() == m.hidden + 1 && m_aug.cols() == m.hidden + 1, "latent_mean_square: calibration moment is ",
        m_aug.rows(), "x", m_aug.cols(), ", expected ", m.hidden + 1, "x", m.hidden + 1, " (hidden + 1)");
  ref::matrix<double> d(m.latent_rank, m.hidden + 1);
  d.leftCols(m.hidden) = m.w_dkv.template cast<double>();
  if (m.b_dkv.size() != 0)
    d.col(m.hidden) = m.b_dkv.template cast<double>();
  else
    d.col(m.hidden).setZero();
  return (d * m_aug * d.transpose()).trace();
}

// Gives `m` the latent RMSNorm with the constant weight sqrt(E||c||^2 / latent_rank) and the format's epsilon.
template <class T>
void add_latent_norm(ref::mla_layer<T>& m, const ref::matrix<double>& m_aug) {
  const double rms = std::sqrt(latent_mean_square(m, m_aug) / m.latent_rank);
  m.latent_norm = ref::vector<T>::Constant(m.latent_rank, static_cast<T>(rms));
  m.latent_norm_eps = model::mla_latent_norm_eps;
}

}  // namespace mla::convert
