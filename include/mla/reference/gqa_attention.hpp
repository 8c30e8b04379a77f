// mla::ref GQA attention: the source layers (gpt-oss, Llama/SmolLM2) the library converts from.
//
//   q = x wq^T + bq  [tokens, n_heads*head_dim]      k = x wk^T + bk, v = x wv^T + bv  [tokens, n_kv*head_dim]
//   RoPE on every q and k head (rope.dim == head_dim), at the token's position
//   query head h uses KV head h / (n_heads / n_kv_heads)
//   p = softmax over [scale * q_h . k_j (visible keys j), sink_h]; the sink column is dropped
//   out = (sum_j p_j v_j concatenated over heads) wo^T + bo  [tokens, hidden]
//
// Weights are in PyTorch [out, in] layout. The math follows formats.md §1.4: the sink logit is not
// multiplied by the scale, and key k is visible from query q iff k <= q and (window == 0 or q - window < k).
// Also public here, for code that recomputes pieces of the attention: linear (x w^T + b), rope_heads, and
// gqa_decode_append (the cache-append half of a decode step, for a decode kernel to finish).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/online_softmax.hpp"
#include "mla/reference/rope.hpp"

namespace mla::ref {

// Options shared by the GQA and MLA references.
struct attention_options {
  double softmax_scale = 0;  // multiplies q.k (not the sink); must be set (> 0)
  int sliding_window = 0;    // 0: full causal; w > 0: key k visible from query q iff q - w < k <= q

  bool visible(long query_pos, long key_pos) const {
    return key_pos <= query_pos && (sliding_window == 0 || key_pos > query_pos - sliding_window);
  }
  // The first key position visible from query_pos.
  long first_visible(long query_pos) const {
    return sliding_window == 0 || query_pos < sliding_window ? 0 : query_pos - sliding_window + 1;
  }
  void validate(const char* owner) const {
    check(std::isfinite(softmax_scale) && softmax_scale > 0, owner,
          ": attention.softmax_scale must be finite and > 0, found ", softmax_scale);
    check(sliding_window >= 0, owner, ": attention.sliding_window must be >= 0 (0 = full causal), found ",
          sliding_window);
  }
};

// y = x w^T (+ b): x [tokens, in], w [out, in] (PyTorch layout), b [out] or empty -> [tokens, out].
template <class T>
matrix<T> linear(const matrix<T>& x, const matrix<T>& w, const vector<T>& b) {
  matrix<T> y(x.rows(), w.rows());
  y.noalias() = x * w.transpose();
  if (b.size() != 0) y.rowwise() += b.transpose();
  return y;
}

// Applies RoPE to every head_dim-wide head of every row of m [rows, n_heads*head_dim] in place; row t is at
// position first_pos + t.
template <class T>
void rope_heads(const mla::ref::rope<T>& rot, matrix<T>& m, int n_heads, int head_dim, long first_pos) {
  for (Eigen::Index t = 0; t < m.rows(); ++t)
    for (int h = 0; h < n_heads; ++h) rot.apply(m.data() + t * m.cols() + Eigen::Index(h) * head_dim, first_pos + t);
}

namespace detail {

// Keeps a parameter out of template argument deduction, so that the layer alone fixes T and inputs may be
// any Eigen expression convertible to matrix<T> / row_vector<T> (std::type_identity_t in C++20).
template <class X>
struct non_deduced {
  using type = X;
};
template <class X>
using non_deduced_t = typename non_deduced<X>::type;

// Checks a weight's [rows, cols]; the expected sizes come with the expressions that give them.
template <class M>
void check_weight(const char* owner, const char* field, const M& m, Eigen::Index rows, const char* rows_expr,
                  Eigen::Index cols, const char* cols_expr) {
  check(m.rows() == rows && m.cols() == cols, owner, ": ", field, " has shape [", m.rows(), ", ", m.cols(),
        "], expected [", rows_expr, " = ", rows, ", ", cols_expr, " = ", cols, "]");
}

// Checks an optional vector (bias, sinks): empty means absent, else it has n entries.
template <class V>
void check_optional(const char* owner, const char* field, const V& v, Eigen::Index n, const char* n_expr) {
  check(v.size() == 0 || v.size() == n, owner, ": ", field, " has ", v.size(), " entries, expected 0 (none) or ",
        n_expr, " = ", n);
}

// Appends rows [n, cols] under m [len, cols] (m may be 0 x 0).
template <class T>
void append_rows(matrix<T>& m, const matrix<T>& rows) {
  if (m.rows() == 0) {
    m = rows;
    return;
  }
  const Eigen::Index len = m.rows();
  m.conservativeResize(len + rows.rows(), Eigen::NoChange);
  m.bottomRows(rows.rows()) = rows;
}

// Keys and values of positions [first, first + count) in position order: a block of an unbounded cache, or
// gathered from a ring cache (which must still hold them).
template <class T>
void gather_positions(const matrix<T>& ring, long window, long first, long count, matrix<T>& out) {
  out.resize(count, ring.cols());
  for (long i = 0; i < count; ++i) out.row(i) = ring.row((first + i) % window);
}

// Stores rows [n, kv] for positions first_pos.. into a ring cache of `window` rows (growing it up to that):
// only the last `window` positions are kept.
template <class T>
void store_in_ring(matrix<T>& ring, long window, long first_pos, const matrix<T>& rows) {
  const long total = first_pos + static_cast<long>(rows.rows());
  const long keep = std::min(window, total);
  if (ring.rows() != keep) ring.conservativeResize(keep, rows.cols());
  for (long p = std::max(total - window, first_pos); p < total; ++p) ring.row(p % window) = rows.row(p - first_pos);
}

// Turns one row of scaled logits into attention weights for the query at query_pos, in place. Entry k of
// the row is the key at position first_key_pos + k. Masked keys get 0; a sink (if any) is one more column,
// dropped after the softmax. Max-subtracted softmax in T.
template <class T>
void masked_softmax_row(T* row, long first_key_pos, long n_keys, long query_pos, const attention_options& opt,
                        const T* sink) {
  const long lo = std::max(opt.first_visible(query_pos) - first_key_pos, 0L);  // first visible entry
  const long hi = std::min(query_pos - first_key_pos, n_keys - 1);             // last visible entry
  T m = sink != nullptr ? *sink : -std::numeric_limits<T>::infinity();
  for (long k = lo; k <= hi; ++k) m = row[k] > m ? row[k] : m;
  T sum = sink != nullptr ? std::exp(*sink - m) : T(0);
  for (long k = 0; k < n_keys; ++k) {
    if (k < lo || k > hi) {
      row[k] = T(0);
    } else {
      row[k] = std::exp(row[k] - m);
      sum += row[k];
    }
  }
  // sum >= 1 whenever a key or the sink is present: the max term contributes exp(0) = 1.
  if (sum > T(0))
    for (long k = lo; k <= hi; ++k) row[k] /= sum;
}

// Prefill works on blocks of queries, each against only the keys some query of the block can see, so that
// the causal half is skipped and a sliding window costs O(tokens * window) instead of O(tokens^2).
inline constexpr long prefill_query_block = 32;

struct key_range {
  long n_queries;  // queries in the block
  long first;      // position (= cache row) of the first key
  long count;      // keys from `first` on
};

// The keys needed by the queries [t0, min(t0 + prefill_query_block, n)) of a chunk that starts at first_pos.
inline key_range keys_of_query_block(const attention_options& opt, long first_pos, long t0, long n) {
  const long n_queries = std::min(prefill_query_block, n - t0);
  const long first = opt.first_visible(first_pos + t0);
  return {n_queries, first, first_pos + t0 + n_queries - first};
}

}  // namespace detail

// A GQA attention layer. Biases and sinks are optional: an empty vector means none.
template <class T>
struct gqa_layer {
  int hidden = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  matrix<T> wq;      // [n_heads*head_dim, hidden]
  matrix<T> wk;      // [n_kv_heads*head_dim, hidden]
  matrix<T> wv;      // [n_kv_heads*head_dim, hidden]
  matrix<T> wo;      // [hidden, n_heads*head_dim]
  vector<T> bq;      // [n_heads*head_dim] or empty
  vector<T> bk;      // [n_kv_heads*head_dim] or empty
  vector<T> bv;      // [n_kv_heads*head_dim] or empty
  vector<T> bo;      // [hidden] or empty
  vector<T> sinks;   // [n_heads] per-head sink logits, or empty
  rope_config rope;  // acts on the whole head: rope.dim == head_dim
  attention_options attention;

  int group_size() const { return n_kv_heads > 0 ? n_heads / n_kv_heads : 0; }
  int kv_head_of(int h) const { return h / group_size(); }

  // Throws mla::error naming the first inconsistent field, with expected and found values.
  void validate() const {
    const char* owner = "mla::ref::gqa_layer";
    check(hidden > 0, owner, ": hidden must be > 0, found ", hidden);
    check(n_heads > 0, owner, ": n_heads must be > 0, found ", n_heads);
    check(n_kv_heads > 0, owner, ": n_kv_heads must be > 0, found ", n_kv_heads);
    check(n_heads % n_kv_heads == 0, owner, ": n_heads (", n_heads, ") must be a multiple of n_kv_heads (", n_kv_heads,
          ")");
    check(head_dim > 0, owner, ": head_dim must be > 0, found ", head_dim);
    const Eigen::Index q_dim = Eigen::Index(n_heads) * head_dim;
    const Eigen::Index kv_dim = Eigen::Index(n_kv_heads) * head_dim;
    detail::check_weight(owner, "wq", wq, q_dim, "n_heads*head_dim", hidden, "hidden");
    detail::check_weight(owner, "wk", wk, kv_dim, "n_kv_heads*head_dim", hidden, "hidden");
    detail::check_weight(owner, "wv", wv, kv_dim, "n_kv_heads*head_dim", hidden, "hidden");
    detail::check_weight(owner, "wo", wo, hidden, "hidden", q_dim, "n_heads*head_dim");
    detail::check_optional(owner, "bq", bq, q_dim, "n_heads*head_dim");
    detail::check_optional(owner, "bk", bk, kv_dim, "n_kv_heads*head_dim");
    detail::check_optional(owner, "bv", bv, kv_dim, "n_kv_heads*head_dim");
    detail::check_optional(owner, "bo", bo, hidden, "hidden");
    detail::check_optional(owner, "sinks", sinks, n_heads, "n_heads");
    check(rope.dim == head_dim, owner, ": rope.dim must equal head_dim = ", head_dim,
          " (RoPE covers the whole head), found ", rope.dim);
    const mla::ref::rope<T> check_config(rope);  // throws on a bad RoPE config
    (void)check_config;
    attention.validate(owner);
  }
};

// The GQA KV cache: post-RoPE keys and values, row t = position t.
template <class T>
struct gqa_cache {
  // [rows, n_kv_heads*head_dim], RoPE applied on k. Unbounded (window == 0): row p holds position p. Ring
  // (window w > 0, for a sliding-window layer): the last min(length, w) positions, position p at row p % w,
  // so the cache never holds more than w tokens however long the sequence.
  matrix<T> k;
  matrix<T> v;
  long window = 0;    // 0: keep every token; w > 0: keep the last w (>= the layer's sliding window)
  long consumed = 0;  // tokens appended (ring caches; an unbounded cache counts its rows)

  long length() const { return window > 0 ? consumed : static_cast<long>(k.rows()); }
  void clear() {
    k.resize(0, 0);
    v.resize(0, 0);
    consumed = 0;
  }
};

namespace detail {

template <class T>
void check_gqa_cache(const gqa_layer<T>& layer, const gqa_cache<T>& cache) {
  const Eigen::Index kv_dim = Eigen::Index(layer.n_kv_heads) * layer.head_dim;
  check(cache.k.rows() == cache.v.rows(), "mla::ref::gqa_cache: k has ", cache.k.rows(), " rows but v has ",
        cache.v.rows());
  if (cache.window > 0) {
    check(layer.attention.sliding_window > 0 && cache.window >= layer.attention.sliding_window,
          "mla::ref::gqa_cache: a ring cache of ", cache.window,
          " tokens needs a sliding-window layer with a window "
          "of at most that, found sliding_window = ",
          layer.attention.sliding_window);
    check(cache.consumed >= 0 && cache.k.rows() == std::min(cache.consumed, cache.window),
          "mla::ref::gqa_cache: ring cache holds ", cache.k.rows(), " rows after ", cache.consumed,
          " tokens, expected min(tokens, window = ", cache.window, ")");
  }
  if (cache.k.rows() == 0) return;
  check(cache.k.cols() == kv_dim && cache.v.cols() == kv_dim, "mla::ref::gqa_cache: k/v have ", cache.k.cols(), "/",
        cache.v.cols(), " columns, expected n_kv_heads*head_dim = ", kv_dim);
}

}  // namespace detail

// Prefill of a chunk: x [n, hidden] holds the tokens at positions cache.length() .. cache.length()+n-1.
// Their keys and values are appended to the cache, and each token attends over the whole cache (earlier
// chunks plus this one) with the causal/window mask and the sinks. Returns [n, hidden].
template <class T>
matrix<T> gqa_prefill(const gqa_layer<T>& layer, const detail::non_deduced_t<matrix<T>>& x, gqa_cache<T>& cache) {
  layer.validate();
  detail::check_gqa_cache(layer, cache);
  check(x.cols() == layer.hidden, "mla::ref::gqa_prefill: x has ", x.cols(),
        " columns, expected hidden = ", layer.hidden);
  const int d = layer.head_dim;
  const long first_pos = cache.length();
  const mla::ref::rope<T> rot(layer.rope);

  matrix<T> q = linear(x, layer.wq, layer.bq);  // [n, n_heads*d]
  matrix<T> k = linear(x, layer.wk, layer.bk);  // [n, n_kv*d]
  const matrix<T> v = linear(x, layer.wv, layer.bv);
  rope_heads(rot, q, layer.n_heads, d, first_pos);
  rope_heads(rot, k, layer.n_kv_heads, d, first_pos);
  // The keys this chunk attends over, row r = position key_base + r: the cache itself when unbounded;
  // for a ring cache, the positions it still holds gathered in order, then the chunk.
  const Eigen::Index n = x.rows();
  matrix<T> ring_k, ring_v;
  long key_base = 0;
  if (cache.window > 0) {
    const long held = static_cast<long>(cache.k.rows());
    key_base = first_pos - held;
    detail::gather_positions(cache.k, cache.window, key_base, held, ring_k);
    detail::gather_positions(cache.v, cache.window, key_base, held, ring_v);
    detail::append_rows(ring_k, k);
    detail::append_rows(ring_v, v);
    detail::store_in_ring(cache.k, cache.window, first_pos, k);
    detail::store_in_ring(cache.v, cache.window, first_pos, v);
    cache.consumed = first_pos + static_cast<long>(n);
  } else {
    detail::append_rows(cache.k, k);
    detail::append_rows(cache.v, v);
  }
  const matrix<T>& keys_m = cache.window > 0 ? ring_k : cache.k;
  const matrix<T>& values_m = cache.window > 0 ? ring_v : cache.v;

  const T scale = static_cast<T>(layer.attention.softmax_scale);
  matrix<T> attn(n, Eigen::Index(layer.n_heads) * d);  // [n, n_heads*d], heads concatenated
  matrix<T> p;                                         // [block, keys] one head's weights
  for (int h = 0; h < layer.n_heads; ++h) {
    const Eigen::Index gc = Eigen::Index(layer.kv_head_of(h)) * d;
    const T* sink = layer.sinks.size() != 0 ? &layer.sinks[h] : nullptr;
    for (Eigen::Index t0 = 0; t0 < n; t0 += detail::prefill_query_block) {
      const detail::key_range keys = detail::keys_of_query_block(layer.attention, first_pos, t0, n);
      p.noalias() = q.block(t0, Eigen::Index(h) * d, keys.n_queries, d) *
                    keys_m.block(keys.first - key_base, gc, keys.count, d).transpose();
      p *= scale;
      for (Eigen::Index t = 0; t < keys.n_queries; ++t)
        detail::masked_softmax_row(p.data() + t * keys.count, keys.first, keys.count, first_pos + t0 + t,
                                   layer.attention, sink);
      attn.block(t0, Eigen::Index(h) * d, keys.n_queries, d).noalias() =
          p * values_m.block(keys.first - key_base, gc, keys.count, d);
    }
  }
  return linear(attn, layer.wo, layer.bo);
}

// Prefill of a whole sequence x [tokens, hidden] at positions 0..tokens-1. Returns [tokens, hidden].
template <class T>
matrix<T> gqa_prefill(const gqa_layer<T>& layer, const detail::non_deduced_t<matrix<T>>& x) {
  gqa_cache<T> cache;
  return gqa_prefill(layer, x, cache);
}

// The first half of a decode step, for x [hidden] at position cache.length(): appends its key (RoPE applied)
// and value to the cache and returns its queries [1, n_heads*head_dim], RoPE applied. gqa_decode runs the
// attention over the cache after it; a decode kernel can run it instead (mla/model/attention_backend.hpp).
template <class T>
matrix<T> gqa_decode_append(const gqa_layer<T>& layer, const detail::non_deduced_t<row_vector<T>>& x,
                            gqa_cache<T>& cache) {
  layer.validate();
  detail::check_gqa_cache(layer, cache);
  check(x.size() == layer.hidden, "mla::ref::gqa_decode: x has ", x.size(),
        " entries, expected hidden = ", layer.hidden);
  const int d = layer.head_dim;
  const long pos = cache.length();
  const mla::ref::rope<T> rot(layer.rope);

  const matrix<T> xm = x;                        // [1, hidden]
  matrix<T> q = linear(xm, layer.wq, layer.bq);  // [1, n_heads*d]
  matrix<T> k = linear(xm, layer.wk, layer.bk);  // [1, n_kv*d]
  const matrix<T> v = linear(xm, layer.wv, layer.bv);
  rope_heads(rot, q, layer.n_heads, d, pos);
  rope_heads(rot, k, layer.n_kv_heads, d, pos);
  if (cache.window > 0) {
    detail::store_in_ring(cache.k, cache.window, pos, k);
    detail::store_in_ring(cache.v, cache.window, pos, v);
    cache.consumed = pos + 1;
  } else {
    detail::append_rows(cache.k, k);
    detail::append_rows(cache.v, v);
  }
  return q;
}

// Decode of one token x [hidden] at position cache.length(): appends its key and value to the cache and
// attends over the visible cached keys with the online softmax state. Returns [hidden].
template <class T>
row_vector<T> gqa_decode(const gqa_layer<T>& layer, const detail::non_deduced_t<row_vector<T>>& x,
                         gqa_cache<T>& cache) {
  const long pos = cache.length();
  const matrix<T> q = gqa_decode_append(layer, x, cache);  // [1, n_heads*d]
  const int d = layer.head_dim;
  const long lo = layer.attention.first_visible(pos);
  const Eigen::Index n_vis = pos - lo + 1;
  // Visible keys, row r = position key_base + r (a ring cache's are gathered in position order).
  matrix<T> ring_k, ring_v;
  long key_base = 0;
  if (cache.window > 0) {
    key_base = lo;
    detail::gather_positions(cache.k, cache.window, lo, n_vis, ring_k);
    detail::gather_positions(cache.v, cache.window, lo, n_vis, ring_v);
  }
  const matrix<T>& keys_m = cache.window > 0 ? ring_k : cache.k;
  const matrix<T>& values_m = cache.window > 0 ? ring_v : cache.v;
  const T scale = static_cast<T>(layer.attention.softmax_scale);
  matrix<T> attn(1, Eigen::Index(layer.n_heads) * d);
  vector<T> scores(n_vis);
  softmax_state<T> state;
  for (int h = 0; h < layer.n_heads; ++h) {
    const Eigen::Index gc = Eigen::Index(layer.kv_head_of(h)) * d;
    scores.noalias() = keys_m.block(lo - key_base, gc, n_vis, d) * q.block(0, Eigen::Index(h) * d, 1, d).transpose();
    scores *= scale;
    state.init(d);
    state.update_block(scores, values_m.block(lo - key_base, gc, n_vis, d));
    if (layer.sinks.size() != 0) state.add_sink(layer.sinks[h]);
    attn.block(0, Eigen::Index(h) * d, 1, d) = state.output();
  }
  const matrix<T> out = linear(attn, layer.wo, layer.bo);
  return out.row(0);
}

}  // namespace mla::ref
