// mla::ref attention probabilities: the softmax weights p_h(t, s) that the GQA and MLA references attend with,
// for code that needs them rather than the attention output (conversion: attention-weighted moments, the RoPE
// cut costs, distillation backward passes; diagnostics).
//
//   masked_softmax(scores, opt, sink, first_query_pos)   scaled scores [rows, keys] -> probabilities, in place
//   attention_probabilities(q_h, k_h, opt, sink, first_query_pos)
//                                    one head: softmax(scale * q_h k_h^T) with the mask and sink  [rows, keys]
//   attention_probabilities(gqa_layer, x) / attention_probabilities(mla_layer, x)
//                                    every head of a layer on a window x [n, hidden] at positions 0..n-1:
//                                    [n_heads] of [n, n] (the MLA scores in the naive form)
//
// Row r is the query at position first_query_pos + r, column s the key at position s (keys from 0). The mask
// is the layers' (formats.md §1.4): key s is visible from query t iff s <= t and, with a window w, t - w < s.
// A sink adds one unscaled logit to each row's softmax and is dropped, so a row sums to 1 - p(sink). Masked
// entries are 0. The softmax subtracts the row's maximum and runs in T, exactly as the prefills do.
#pragma once

#include <Eigen/Core>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"
#include "mla/reference/rope.hpp"

namespace mla::ref {

// Scaled scores [rows, keys] (row r: query at first_query_pos + r; column s: key at position s) ->
// attention probabilities in place. sink: the head's sink logit, or null.
template <class T>
void masked_softmax(matrix<T>& scores, const attention_options& opt, const T* sink, long first_query_pos = 0) {
  check(first_query_pos >= 0, "mla::ref::masked_softmax: first_query_pos must be >= 0, found ", first_query_pos);
  // Rows of a row-major matrix are contiguous, as masked_softmax_row needs.
  const Eigen::Index keys = scores.cols();
  for (Eigen::Index r = 0; r < scores.rows(); ++r)
    detail::masked_softmax_row(scores.data() + r * keys, 0, keys, first_query_pos + r, opt, sink);
}

// One head's probabilities [rows, keys]: q [rows, d] its queries (RoPE applied; row r at position
// first_query_pos + r), k [keys, d] the keys it reads (RoPE applied; row s at position s).
template <class T>
matrix<T> attention_probabilities(const Eigen::Ref<const matrix<T>>& q, const Eigen::Ref<const matrix<T>>& k,
                                  const attention_options& opt, const T* sink, long first_query_pos = 0) {
  check(q.cols() == k.cols(), "mla::ref::attention_probabilities: queries have ", q.cols(), " channels, keys ",
        k.cols());
  matrix<T> p;
  p.noalias() = q * k.transpose();
  p *= static_cast<T>(opt.softmax_scale);
  masked_softmax(p, opt, sink, first_query_pos);
  return p;
}

// Every query head's probabilities of a GQA layer on a window x [n, hidden] (positions 0..n-1):
// [n_heads] of [n, n]; head h reads KV head h / (n_heads / n_kv_heads).
template <class T>
std::vector<matrix<T>> attention_probabilities(const gqa_layer<T>& layer, const detail::non_deduced_t<matrix<T>>& x) {
  layer.validate();
  check(x.cols() == layer.hidden, "mla::ref::attention_probabilities: x has ", x.cols(),
        " columns, expected hidden = ", layer.hidden);
  const int d = layer.head_dim;
  const mla::ref::rope<T> rot(layer.rope);
  matrix<T> q = linear(x, layer.wq, layer.bq);  // [n, n_heads*d]
  matrix<T> k = linear(x, layer.wk, layer.bk);  // [n, n_kv*d]
  rope_heads(rot, q, layer.n_heads, d, 0);
  rope_heads(rot, k, layer.n_kv_heads, d, 0);
  std::vector<matrix<T>> p(static_cast<std::size_t>(layer.n_heads));
  for (int h = 0; h < layer.n_heads; ++h)
    p[static_cast<std::size_t>(h)] = attention_probabilities<T>(
        q.middleCols(Eigen::Index(h) * d, d), k.middleCols(Eigen::Index(layer.kv_head_of(h)) * d, d), layer.attention,
        layer.sinks.size() != 0 ? &layer.sinks[h] : nullptr);
  return p;
}

// Every head's probabilities of an MLA layer on a window x [n, hidden] (positions 0..n-1): [n_heads] of
// [n, n], the scores scale * (q_nope,h . W_uk^h c_s + q_rope,h . k_pe_s) (naive form; latent RoPE included).
template <class T>
std::vector<matrix<T>> attention_probabilities(const mla_layer<T>& layer, const detail::non_deduced_t<matrix<T>>& x) {
  mla_cache<T> cache;
  detail::check_mla_input(layer, cache, x.cols(), "attention_probabilities");
  const mla::ref::rope<T> rot(layer.rope);
  detail::mla_compress(layer, rot, x, cache);
  const matrix<T> q = detail::mla_queries(layer, rot, x, 0);  // [n, n_heads*qk]
  const int nope = layer.nope_dim, rd = layer.rope_dim, qk = layer.qk_head_dim();
  std::vector<matrix<T>> p(static_cast<std::size_t>(layer.n_heads));
  matrix<T> k_h;
  for (int h = 0; h < layer.n_heads; ++h) {
    matrix<T>& ph = p[static_cast<std::size_t>(h)];
    k_h.noalias() = cache.c * layer.w_uk.middleRows(Eigen::Index(h) * nope, nope).transpose();  // [n, nope]
    ph.noalias() = q.middleCols(Eigen::Index(h) * qk, nope) * k_h.transpose();
    if (rd > 0) ph.noalias() += q.middleCols(Eigen::Index(h) * qk + nope, rd) * cache.k_pe.transpose();
    ph *= static_cast<T>(layer.attention.softmax_scale);
    masked_softmax(ph, layer.attention, layer.sinks.size() != 0 ? &layer.sinks[h] : nullptr);
  }
  return p;
}

}  // namespace mla::ref
