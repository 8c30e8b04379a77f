// SwiGLU feed-forward (Llama family): down( silu(gate x) * (up x) ), weights in [out, in] layout. forward() can
// keep its pre-activations (swiglu_intermediates) for a backward pass (convert/distill_model.hpp).
#pragma once

#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"

namespace mla::ref {

// The pre-activations of one SwiGLU forward: out = (silu(gate) o up) w_down^T.
template <class T>
struct swiglu_intermediates {
  matrix<T> gate;  // [tokens, intermediate] x w_gate^T, before the silu
  matrix<T> up;    // [tokens, intermediate] x w_up^T
};

template <class T>
struct swiglu_mlp {
  matrix<T> w_gate;  // [intermediate, hidden]
  matrix<T> w_up;    // [intermediate, hidden]
  matrix<T> w_down;  // [hidden, intermediate]

  void validate(const char* where) const {
    check(w_gate.rows() > 0 && w_gate.rows() == w_up.rows() && w_gate.cols() == w_up.cols(), where,
          ": gate and up projections must have the same non-empty shape, got [", w_gate.rows(), ", ", w_gate.cols(),
          "] and [", w_up.rows(), ", ", w_up.cols(), "]");
    check(w_down.rows() == w_gate.cols() && w_down.cols() == w_gate.rows(), where, ": down projection is [",
          w_down.rows(), ", ", w_down.cols(), "], expected [", w_gate.cols(), ", ", w_gate.rows(), "]");
  }

  // x [tokens, hidden] -> [tokens, hidden]. keep, when given, gets the intermediates a backward pass needs.
  matrix<T> forward(const matrix<T>& x, swiglu_intermediates<T>* keep = nullptr) const {
    matrix<T> gate, up;
    gate.noalias() = x * w_gate.transpose();
    up.noalias() = x * w_up.transpose();
    if (keep) keep->gate = gate, keep->up = up;
    // silu(g) = g / (1 + exp(-g))
    gate.array() = gate.array() / (T(1) + (-gate.array()).exp());
    gate.array() *= up.array();
    matrix<T> out;
    out.noalias() = gate * w_down.transpose();
    return out;
  }
};

}  // namespace mla::ref
