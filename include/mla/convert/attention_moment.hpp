// mla::convert::attention_averaged_moment: the input moment that the source layer's attention actually sees.
//
// A factorisation error of the values, e_s = (A_V - P_V D) x_a,s, reaches head h's output at query t as
//   sum_s p_h(t, s) e_s = (A_V - P_V D) xbar_h,t,   xbar_h,t = sum_s p_h(t, s) x_a,s   [hidden+1]
// (p_h the source attention, sinks included), so the value error attention produces is measured by the second
// moment of the attention averages E_{h,t}[xbar xbar^T], not by that of the tokens E_s[x_a x_a^T]: a token
// counts by the attention it receives (the first token of a window often takes most of it), and errors of
// tokens attended together add before they are squared. The factorisation's closed form takes one moment, so
// the heads' moments are averaged: the value term then weighs each head's o_proj rows with every head's averages.
// The key term keeps its query moment; using this moment for its token side too is the approximation.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/attention_probabilities.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/rope.hpp"

namespace mla::convert {

// E_{h,t}[xbar_h,t xbar_h,t^T] [hidden+1, hidden+1] over every query head and query position of the windows
// (each [tokens, hidden], positions from 0), reading windows until max_tokens tokens (<= 0: all).
template <class T>
ref::matrix<double> attention_averaged_moment(const ref::gqa_layer<T>& src, const std::vector<ref::matrix<T>>& windows,
                                              long max_tokens = 0) {
  const char* who = "mla::convert::attention_averaged_moment";
  src.validate();
  check(!windows.empty(), who, ": no calibration windows");
  const int g_heads = src.n_heads, d = src.head_dim, hidden = src.hidden;
  const ref::rope<T> rot(src.rope);
  ref::matrix<double> acc = ref::matrix<double>::Zero(hidden + 1, hidden + 1);
  long used = 0, count = 0;
  for (const ref::matrix<T>& x : windows) {
    if (max_tokens > 0 && used >= max_tokens) break;
    check(x.cols() == hidden, who, ": a window has ", x.cols(), " columns, expected hidden = ", hidden);
    const Eigen::Index n = x.rows();
    used += static_cast<long>(n);
    ref::matrix<T> q = ref::linear(x, src.wq, src.bq);  // [n, heads*d]
    ref::matrix<T> k = ref::linear(x, src.wk, src.bk);  // [n, g*d]
    ref::rope_heads(rot, q, g_heads, d, 0);
    ref::rope_heads(rot, k, src.n_kv_heads, d, 0);
    ref::matrix<double> xa(n, hidden + 1);  // [n, hidden+1]
    xa << x.template cast<double>(), ref::matrix<double>::Ones(n, 1);
    for (int h = 0; h < g_heads; ++h) {
      const T* sink = src.sinks.size() != 0 ? &src.sinks[h] : nullptr;
      const Eigen::Index j = src.kv_head_of(h);
      const ref::matrix<T> p =
          ref::attention_probabilities<T>(q.middleCols(Eigen::Index(h) * d, d), k.middleCols(j * d, d), src.attention,
                                          sink);                        // [n, n]
      const ref::matrix<double> xbar = p.template cast<double>() * xa;  // [n, hidden+1]
      acc.noalias() += xbar.transpose() * xbar;
      count += static_cast<long>(n);
    }
  }
  return acc / static_cast<double>(std::max(count, 1L));
}

}  // namespace mla::convert
