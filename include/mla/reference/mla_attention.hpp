// mla::ref MLA attention (DeepSeek-V2/V3 layout, runtime-sized), in two mathematically equal forms.
//
//   q = x wq^T + bq  [tokens, n_heads*(nope_dim+rope_dim)], per head [q_nope (nope_dim), q_rope (rope_dim)]
//   c = x w_dkv^T + b_dkv  [tokens, latent_rank]          the cached latent
//   k_pe = RoPE(x w_kr^T + b_kr)  [tokens, rope_dim]       the cached RoPE key, shared by all heads
//   head h: W_uk^h = w_uk rows [h*nope_dim, (h+1)*nope_dim)  [nope_dim, latent_rank]
//           W_uv^h = w_uv rows [h*v_head_dim, (h+1)*v_head_dim)  [v_head_dim, latent_rank]
//   score_h(q, t) = scale * (q_nope,h . W_uk^h c_t + RoPE(q_rope,h) . k_pe_t)
//   o_h = sum_t p_h(t) W_uv^h c_t;  out = [o_0 .. o_{H-1}] wo^T + bo  [tokens, hidden]
// with the causal/sliding-window mask and optional per-head sinks as in gqa_attention.hpp.
//
// naive form:    expands per-head keys W_uk^h c_t and values W_uv^h c_t (standard attention).
// absorbed form: q~_h = W_uk^h^T q_nope,h [latent_rank]; score = scale*(q~_h . c_t + q_rope,h . k_pe_t);
//                x_h = sum_t p c_t [latent_rank]; o_h = W_uv^h x_h (formats.md §2.5). Never expands keys.
// Both are plain Eigen in every type (the oracle the kernels are checked against). A decode step also comes
// in pieces, mla_decode_append -> mla_absorb_query -> (attention over the cache) -> mla_latent_output, so
// that the model can run the middle on a kernel (mla/model/attention_backend.hpp).
//
// Latent RoPE (the exact, uncompressed rewrite of a GQA layer, TransMLA stage 1; see exact_rewrite.hpp):
// when latent_rope_offsets is non-empty, RoPE of width rope.dim rotates latent channels [off, off+rope.dim)
// of c_t at position t before caching, rope_dim is 0, and the query's content channels (nope_dim ==
// rope.dim) are rotated at the query position. The identity q.W_uk^h c stays exact, but such a layer has no
// decoupled key and is not an mla_shape.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/norms.hpp"
#include "mla/reference/online_softmax.hpp"
#include "mla/reference/rope.hpp"

namespace mla::ref {

// An MLA attention layer. Biases and sinks are optional: an empty vector means none.
template <class T>
struct mla_layer {
  int hidden = 0;
  int n_heads = 0;
  int nope_dim = 0;     // qk_nope_head_dim: content channels per query head
  int rope_dim = 0;     // qk_rope_head_dim: decoupled RoPE channels per query head and of k_pe (0 with latent RoPE)
  int latent_rank = 0;  // kv_lora_rank
  int v_head_dim = 0;
  matrix<T> wq;     // [n_heads*(nope_dim+rope_dim), hidden], per head nope first, then rope
  vector<T> bq;     // [n_heads*(nope_dim+rope_dim)] or empty
  matrix<T> w_dkv;  // [latent_rank, hidden] latent down-projection
  vector<T> b_dkv;  // [latent_rank] or empty
  matrix<T> w_kr;   // [rope_dim, hidden] shared RoPE key (no rows when rope_dim == 0)
  vector<T> b_kr;   // [rope_dim] or empty
  matrix<T> w_uk;   // [n_heads*nope_dim, latent_rank] key up-projection
  matrix<T> w_uv;   // [n_heads*v_head_dim, latent_rank] value up-projection
  matrix<T> wo;     // [hidden, n_heads*v_head_dim]
  vector<T> bo;     // [hidden] or empty
  vector<T> sinks;  // [n_heads] or empty
  // DeepSeek's kv_a_layernorm: when non-empty, c = RMSNorm(x w_dkv^T + b_dkv) * latent_norm before caching
  // (the cache holds the normalised latent, so both forms stay equal). Empty: no latent norm.
  vector<T> latent_norm;  // [latent_rank] or empty
  double latent_norm_eps = 1e-6;
  rope_config rope;  // decoupled: rope.dim == rope_dim; latent RoPE: rope.dim == nope_dim
  attention_options attention;
  std::vector<int> latent_rope_offsets;  // latent RoPE blocks [off, off+rope.dim); empty = decoupled layout

  int qk_head_dim() const { return nope_dim + rope_dim; }
  bool uses_latent_rope() const { return !latent_rope_offsets.empty(); }
  // Values cached per token: c and k_pe.
  int cached_elements_per_token() const { return latent_rank + rope_dim; }

  // The layer's mla_shape as a runtime value {nope+rope, rope, latent}. The exact latent-RoPE form has no
  // decoupled RoPE key and is not an mla_shape, so this throws for it.
  runtime_shape shape() const {
    check(!uses_latent_rope(), "mla::ref::mla_layer::shape: the layer applies RoPE on the latent (",
          latent_rope_offsets.size(), " latent_rope_offsets); the exact form is not an mla_shape");
    return runtime_shape{nope_dim + rope_dim, rope_dim, latent_rank};
  }

  // A zero-weight, no-bias, no-sink layer sized for Shape (decoupled RoPE of width Shape::rope_dim, NeoX,
  // theta 10000, scale 1/sqrt(Shape::head_dim), full causal). Fill the weights, then validate().
  template <class Shape>
  static mla_layer make(int hidden, int n_heads, int v_head_dim) {
    static_assert(is_mla_shape_v<Shape>, "mla::ref::mla_layer::make: Shape must be an mla::mla_shape");
    check(hidden > 0 && n_heads > 0 && v_head_dim > 0, "mla::ref::mla_layer::make: hidden, n_heads and v_head_dim ",
          "must be > 0, found ", hidden, ", ", n_heads, ", ", v_head_dim);
    mla_layer l;
    l.hidden = hidden;
    l.n_heads = n_heads;
    l.nope_dim = Shape::nope_dim;
    l.rope_dim = Shape::rope_dim;
    l.latent_rank = Shape::latent_rank;
    l.v_head_dim = v_head_dim;
    l.wq = matrix<T>::Zero(Eigen::Index(n_heads) * Shape::head_dim, hidden);
    l.w_dkv = matrix<T>::Zero(Shape::latent_rank, hidden);
    l.w_kr = matrix<T>::Zero(Shape::rope_dim, hidden);
    l.w_uk = matrix<T>::Zero(Eigen::Index(n_heads) * Shape::nope_dim, Shape::latent_rank);
    l.w_uv = matrix<T>::Zero(Eigen::Index(n_heads) * v_head_dim, Shape::latent_rank);
    l.wo = matrix<T>::Zero(hidden, Eigen::Index(n_heads) * v_head_dim);
    l.rope.dim = Shape::rope_dim;
    l.attention.softmax_scale = 1.0 / std::sqrt(double(Shape::head_dim));
    return l;
  }

  // Throws mla::error naming the first inconsistent field, with expected and found values.
  void validate() const {
    const char* owner = "mla::ref::mla_layer";
    check(hidden > 0, owner, ": hidden must be > 0, found ", hidden);
    check(n_heads > 0, owner, ": n_heads must be > 0, found ", n_heads);
    check(nope_dim > 0, owner, ": nope_dim must be > 0, found ", nope_dim);
    check(rope_dim >= 0, owner, ": rope_dim must be >= 0, found ", rope_dim);
    check(latent_rank > 0, owner, ": latent_rank must be > 0, found ", latent_rank);
    check(v_head_dim > 0, owner, ": v_head_dim must be > 0, found ", v_head_dim);
    const Eigen::Index h = n_heads;
    detail::check_weight(owner, "wq", wq, h * (nope_dim + rope_dim), "n_heads*(nope_dim+rope_dim)", hidden, "hidden");
    detail::check_optional(owner, "bq", bq, h * (nope_dim + rope_dim), "n_heads*(nope_dim+rope_dim)");
    detail::check_weight(owner, "w_dkv", w_dkv, latent_rank, "latent_rank", hidden, "hidden");
    detail::check_optional(owner, "b_dkv", b_dkv, latent_rank, "latent_rank");
    if (rope_dim > 0 || w_kr.rows() != 0)
      detail::check_weight(owner, "w_kr", w_kr, rope_dim, "rope_dim", hidden, "hidden");
    detail::check_optional(owner, "b_kr", b_kr, rope_dim, "rope_dim");
    detail::check_weight(owner, "w_uk", w_uk, h * nope_dim, "n_heads*nope_dim", latent_rank, "latent_rank");
    detail::check_weight(owner, "w_uv", w_uv, h * v_head_dim, "n_heads*v_head_dim", latent_rank, "latent_rank");
    detail::check_weight(owner, "wo", wo, hidden, "hidden", h * v_head_dim, "n_heads*v_head_dim");
    detail::check_optional(owner, "bo", bo, hidden, "hidden");
    detail::check_optional(owner, "sinks", sinks, h, "n_heads");
    detail::check_optional(owner, "latent_norm", latent_norm, latent_rank, "latent_rank");
    check(latent_norm.size() == 0 || latent_norm_eps > 0, owner, ": latent_norm_eps must be > 0, found ",
          latent_norm_eps);
    if (!uses_latent_rope()) {
      check(rope_dim > 0, owner, ": rope_dim is 0 and latent_rope_offsets is empty: the layer has no position ",
            "information (set rope_dim > 0, or latent_rope_offsets for the exact form)");
      check(rope.dim == rope_dim, owner, ": rope.dim must equal rope_dim = ", rope_dim, " (decoupled RoPE), found ",
            rope.dim);
    } else {
      check(rope_dim == 0, owner, ": rope_dim must be 0 when latent_rope_offsets is set (latent RoPE replaces the ",
            "decoupled key), found ", rope_dim);
      check(rope.dim == nope_dim, owner, ": rope.dim must equal nope_dim = ", nope_dim,
            " with latent RoPE (the query's content channels are rotated), found ", rope.dim);
      std::vector<int> sorted = latent_rope_offsets;
      std::sort(sorted.begin(), sorted.end());
      for (std::size_t i = 0; i < sorted.size(); ++i) {
        check(sorted[i] >= 0 && sorted[i] <= latent_rank - rope.dim, owner, ": latent_rope_offsets entry ", sorted[i],
              " out of range: a block [off, off + rope.dim = ", rope.dim,
              ") must lie in [0, latent_rank = ", latent_rank, ")");
        check(i == 0 || sorted[i] >= sorted[i - 1] + rope.dim, owner, ": latent_rope_offsets entries ",
              sorted[i - (i > 0)], " and ", sorted[i], " overlap (blocks are rope.dim = ", rope.dim, " wide)");
      }
    }
    const mla::ref::rope<T> check_config(rope);  // throws on a bad RoPE config
    (void)check_config;
    attention.validate(owner);
  }
};

// The latent KV cache: row t = position t.
template <class T>
struct mla_cache {
  matrix<T> c;     // [tokens, latent_rank], latent RoPE (if any) applied
  matrix<T> k_pe;  // [tokens, rope_dim], RoPE applied (0 columns with latent RoPE)

  long length() const { return static_cast<long>(c.rows()); }
  void clear() {
    c.resize(0, 0);
    k_pe.resize(0, 0);
  }
};

// Which of the two equal computations to run.
enum class mla_form { naive, absorbed };

namespace detail {

// A read-only view of a row-major block (rows of a cache, columns of one head).
template <class T>
using const_matrix_ref = Eigen::Ref<const matrix<T>>;

template <class T>
void check_mla_cache(const mla_layer<T>& layer, const mla_cache<T>& cache) {
  check(cache.c.rows() == cache.k_pe.rows(), "mla::ref::mla_cache: c has ", cache.c.rows(), " rows but k_pe has ",
        cache.k_pe.rows());
  if (cache.length() == 0) return;
  check(cache.c.cols() == layer.latent_rank && cache.k_pe.cols() == layer.rope_dim, "mla::ref::mla_cache: c/k_pe have ",
        cache.c.cols(), "/", cache.k_pe.cols(), " columns, expected latent_rank/rope_dim = ", layer.latent_rank, "/",
        layer.rope_dim);
}

// Appends the chunk x [n, hidden] at positions cache.length().. to the cache: c and k_pe with RoPE.
template <class T>
void mla_compress(const mla_layer<T>& layer, const mla::ref::rope<T>& rot, const matrix<T>& x, mla_cache<T>& cache) {
  const long first_pos = cache.length();
  matrix<T> c = linear(x, layer.w_dkv, layer.b_dkv);  // [n, latent_rank]
  if (layer.latent_norm.size() != 0) c = rms_norm(c, layer.latent_norm, layer.latent_norm_eps);
  matrix<T> k_pe(x.rows(), layer.rope_dim);  // [n, rope_dim]
  if (layer.rope_dim > 0) k_pe = linear(x, layer.w_kr, layer.b_kr);
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    for (int off : layer.latent_rope_offsets) rot.apply(c.data() + t * c.cols() + off, first_pos + t);
    if (layer.rope_dim > 0) rot.apply(k_pe.data() + t * k_pe.cols(), first_pos + t);
  }
  append_rows(cache.c, c);
  append_rows(cache.k_pe, k_pe);
}

// Queries of the chunk x [n, hidden] at positions first_pos..: [n, n_heads*(nope+rope)] with RoPE on the
// rope part (decoupled) or on the content part (latent RoPE).
template <class T>
matrix<T> mla_queries(const mla_layer<T>& layer, const mla::ref::rope<T>& rot, const matrix<T>& x, long first_pos) {
  matrix<T> q = linear(x, layer.wq, layer.bq);
  const int qk = layer.qk_head_dim();
  const int rotated_from = layer.uses_latent_rope() ? 0 : layer.nope_dim;
  for (Eigen::Index t = 0; t < q.rows(); ++t)
    for (int h = 0; h < layer.n_heads; ++h)
      rot.apply(q.data() + t * q.cols() + Eigen::Index(h) * qk + rotated_from, first_pos + t);
  return q;
}

template <class T>
void check_mla_input(const mla_layer<T>& layer, const mla_cache<T>& cache, Eigen::Index x_cols, const char* fn) {
  layer.validate();
  check_mla_cache(layer, cache);
  check(x_cols == layer.hidden, "mla::ref::", fn, ": x has ", x_cols, " columns, expected hidden = ", layer.hidden);
}

// Prefill of a chunk (see mla_prefill below) in either form.
template <class T>
matrix<T> mla_prefill_impl(const mla_layer<T>& layer, const matrix<T>& x, mla_cache<T>& cache, mla_form form) {
  using const_ref = const_matrix_ref<T>;
  check_mla_input(layer, cache, x.cols(), "mla_prefill");
  const mla::ref::rope<T> rot(layer.rope);
  const long first_pos = cache.length();
  mla_compress(layer, rot, x, cache);
  const matrix<T> q = mla_queries(layer, rot, x, first_pos);  // [n, n_heads*qk]

  const Eigen::Index n = x.rows();
  const int nope = layer.nope_dim, rd = layer.rope_dim, qk = layer.qk_head_dim(), dv = layer.v_head_dim;
  // Keys before key_lo are invisible to every query of the chunk (window).
  const long key_lo = layer.attention.first_visible(first_pos);
  const long n_keys = cache.length() - key_lo;
  const const_ref c = cache.c.bottomRows(n_keys);        // [keys, latent_rank]
  const const_ref k_pe = cache.k_pe.bottomRows(n_keys);  // [keys, rope_dim]
  const T scale = static_cast<T>(layer.attention.softmax_scale);

  matrix<T> attn(n, Eigen::Index(layer.n_heads) * dv);  // [n, n_heads*v_head_dim]
  matrix<T> p;                                          // [block, block keys]
  matrix<T> k_h, v_h, q_abs, x_h;
  for (int h = 0; h < layer.n_heads; ++h) {
    const const_ref q_nope = q.middleCols(Eigen::Index(h) * qk, nope);             // [n, nope]
    const const_ref q_rope = q.middleCols(Eigen::Index(h) * qk + nope, rd);        // [n, rope]
    const const_ref w_uk_h = layer.w_uk.middleRows(Eigen::Index(h) * nope, nope);  // [nope, latent]
    const const_ref w_uv_h = layer.w_uv.middleRows(Eigen::Index(h) * dv, dv);      // [v, latent]
    if (form == mla_form::naive) {
      k_h.noalias() = c * w_uk_h.transpose();  // [keys, nope] expanded per-head keys
      v_h.noalias() = c * w_uv_h.transpose();  // [keys, v] expanded per-head values
    } else {
      q_abs.noalias() = q_nope * w_uk_h;  // [n, latent]: rows are q~_h^T = (W_uk^h^T q_nope)^T
    }
    const T* sink = layer.sinks.size() != 0 ? &layer.sinks[h] : nullptr;
    for (Eigen::Index t0 = 0; t0 < n; t0 += prefill_query_block) {
      const key_range keys = keys_of_query_block(layer.attention, first_pos, t0, n);
      const Eigen::Index nq = keys.n_queries, k0 = keys.first - key_lo, nk = keys.count;
      if (form == mla_form::naive)
        p.noalias() = q_nope.middleRows(t0, nq) * k_h.middleRows(k0, nk).transpose();
      else
        p.noalias() = q_abs.middleRows(t0, nq) * c.middleRows(k0, nk).transpose();
      if (rd > 0) p.noalias() += q_rope.middleRows(t0, nq) * k_pe.middleRows(k0, nk).transpose();
      p *= scale;
      for (Eigen::Index t = 0; t < nq; ++t)
        masked_softmax_row(p.data() + t * nk, keys.first, nk, first_pos + t0 + t, layer.attention, sink);
      Eigen::Ref<matrix<T>> o_h = attn.block(t0, Eigen::Index(h) * dv, nq, dv);
      if (form == mla_form::naive) {
        o_h.noalias() = p * v_h.middleRows(k0, nk);
      } else {
        x_h.noalias() = p * c.middleRows(k0, nk);  // [block, latent]: x_h = sum_t p c_t
        o_h.noalias() = x_h * w_uv_h.transpose();  // o_h = W_uv^h x_h
      }
    }
  }
  return linear(attn, layer.wo, layer.bo);
}

}  // namespace detail

// The first half of a decode step, for x [hidden] at position cache.length(): appends its latent (and RoPE
// key) to the cache and returns its queries [1, n_heads*(nope_dim+rope_dim)], RoPE applied. mla_decode runs
// the attention over the cache after it; a decode kernel can run it instead (mla/model/attention_backend.hpp).
template <class T>
matrix<T> mla_decode_append(const mla_layer<T>& layer, const detail::non_deduced_t<row_vector<T>>& x,
                            mla_cache<T>& cache) {
  detail::check_mla_input(layer, cache, x.size(), "mla_decode");
  const mla::ref::rope<T> rot(layer.rope);
  const long pos = cache.length();
  const matrix<T> xm = x;  // [1, hidden]
  detail::mla_compress(layer, rot, xm, cache);
  return detail::mla_queries(layer, rot, xm, pos);
}

// The absorbed queries of one decoded token (decoupled RoPE key): q_latent.row(h) = q~_h^T = (W_uk^h^T
// q_nope,h)^T [n_heads, latent_rank] and q_pe.row(h) = q_rope,h [n_heads, rope_dim], from the queries q
// [1, n_heads*(nope_dim+rope_dim)] of mla_decode_append: what an absorbed decode kernel takes.
template <class T>
struct mla_absorbed_query {
  matrix<T> q_latent;
  matrix<T> q_pe;
};

template <class T>
mla_absorbed_query<T> mla_absorb_query(const mla_layer<T>& layer, const matrix<T>& q) {
  const int heads = layer.n_heads, rank = layer.latent_rank, rope = layer.rope_dim;
  const int nope = layer.nope_dim, qk = layer.qk_head_dim();
  check(q.rows() == 1 && q.cols() == Eigen::Index(heads) * qk, "mla::ref::mla_absorb_query: q is [", q.rows(), ", ",
        q.cols(), "], expected [1, n_heads*(nope_dim+rope_dim) = ", Eigen::Index(heads) * qk, "]");
  mla_absorbed_query<T> a{matrix<T>(heads, rank), matrix<T>(heads, rope)};
  for (int h = 0; h < heads; ++h) {
    a.q_latent.row(h).noalias() =
        q.block(0, Eigen::Index(h) * qk, 1, nope) * layer.w_uk.middleRows(Eigen::Index(h) * nope, nope);
    a.q_pe.row(h) = q.block(0, Eigen::Index(h) * qk + nope, 1, rope);
  }
  return a;
}

// The second half of an absorbed decode: per-head attention averages of the latent x_h = sum_t p_h(t) c_t
// ([n_heads, latent_rank], e.g. from a decode kernel) -> o_h = W_uv^h x_h, out = [o_0 .. o_{H-1}] wo^T + bo
// [hidden].
template <class T>
row_vector<T> mla_latent_output(const mla_layer<T>& layer, const matrix<T>& latent_out) {
  const int heads = layer.n_heads, dv = layer.v_head_dim;
  check(latent_out.rows() == heads && latent_out.cols() == layer.latent_rank,
        "mla::ref::mla_latent_output: ", "latent_out is [", latent_out.rows(), ", ", latent_out.cols(),
        "], expected [n_heads = ", heads, ", latent_rank = ", layer.latent_rank, "]");
  matrix<T> attn(1, Eigen::Index(heads) * dv);
  for (int h = 0; h < heads; ++h)
    attn.block(0, Eigen::Index(h) * dv, 1, dv).noalias() =
        latent_out.row(h) * layer.w_uv.middleRows(Eigen::Index(h) * dv, dv).transpose();
  const matrix<T> out = linear(attn, layer.wo, layer.bo);
  return out.row(0);
}

namespace detail {

// Decode of one token (see mla_decode below) in either form, with the online softmax state; plain Eigen in
// every type and form (a decode kernel is chosen in the model: mla/model/attention_backend.hpp).
template <class T>
row_vector<T> mla_decode_impl(const mla_layer<T>& layer, const row_vector<T>& x, mla_cache<T>& cache, mla_form form) {
  using const_ref = const_matrix_ref<T>;
  const long pos = cache.length();
  const matrix<T> q = mla_decode_append(layer, x, cache);  // [1, n_heads*qk]

  const int nope = layer.nope_dim, rd = layer.rope_dim, qk = layer.qk_head_dim(), dv = layer.v_head_dim;
  const long lo = layer.attention.first_visible(pos);
  const Eigen::Index n_vis = pos - lo + 1;
  const const_ref c = cache.c.middleRows(lo, n_vis);        // [visible, latent_rank]
  const const_ref k_pe = cache.k_pe.middleRows(lo, n_vis);  // [visible, rope_dim]
  const T scale = static_cast<T>(layer.attention.softmax_scale);

  matrix<T> attn(1, Eigen::Index(layer.n_heads) * dv);
  vector<T> scores(n_vis);
  matrix<T> k_h, v_h;
  row_vector<T> q_abs;
  softmax_state<T> state;
  for (int h = 0; h < layer.n_heads; ++h) {
    const const_ref q_nope = q.block(0, Eigen::Index(h) * qk, 1, nope);       // [1, nope]
    const const_ref q_rope = q.block(0, Eigen::Index(h) * qk + nope, 1, rd);  // [1, rope]
    const const_ref w_uk_h = layer.w_uk.middleRows(Eigen::Index(h) * nope, nope);
    const const_ref w_uv_h = layer.w_uv.middleRows(Eigen::Index(h) * dv, dv);
    if (form == mla_form::naive) {
      k_h.noalias() = c * w_uk_h.transpose();  // [visible, nope]
      v_h.noalias() = c * w_uv_h.transpose();  // [visible, v]
      scores.noalias() = k_h * q_nope.transpose();
    } else {
      q_abs.noalias() = q_nope * w_uk_h;  // q~_h^T [1, latent]
      scores.noalias() = c * q_abs.transpose();
    }
    if (rd > 0) scores.noalias() += k_pe * q_rope.transpose();
    scores *= scale;
    Eigen::Ref<matrix<T>> o_h = attn.block(0, Eigen::Index(h) * dv, 1, dv);
    if (form == mla_form::naive) {
      state.init(dv);
      state.update_block(scores, v_h);
      if (layer.sinks.size() != 0) state.add_sink(layer.sinks[h]);
      o_h = state.output();
    } else {
      state.init(layer.latent_rank);
      state.update_block(scores, c);
      if (layer.sinks.size() != 0) state.add_sink(layer.sinks[h]);
      o_h.noalias() = state.output() * w_uv_h.transpose();  // (W_uv^h x_h)^T
    }
  }
  const matrix<T> out = linear(attn, layer.wo, layer.bo);
  return out.row(0);
}

}  // namespace detail

// Prefill of a chunk: x [n, hidden] holds the tokens at positions cache.length() .. cache.length()+n-1.
// Their latents (and RoPE keys) are appended to the cache and each token attends over the whole cache with
// the causal/window mask and the sinks. Returns [n, hidden].
template <class T>
matrix<T> mla_prefill(const mla_layer<T>& layer, const detail::non_deduced_t<matrix<T>>& x, mla_cache<T>& cache,
                      mla_form form) {
  return detail::mla_prefill_impl(layer, x, cache, form);
}
// Prefill of a whole sequence x [tokens, hidden] at positions 0..tokens-1. Returns [tokens, hidden].
template <class T>
matrix<T> mla_prefill(const mla_layer<T>& layer, const detail::non_deduced_t<matrix<T>>& x, mla_form form) {
  mla_cache<T> cache;
  return detail::mla_prefill_impl(layer, x, cache, form);
}
// Decode of one token x [hidden] at position cache.length(): appends its latent to the cache and attends
// over the visible cached tokens. Returns [hidden].
template <class T>
row_vector<T> mla_decode(const mla_layer<T>& layer, const detail::non_deduced_t<row_vector<T>>& x, mla_cache<T>& cache,
                         mla_form form) {
  return detail::mla_decode_impl(layer, x, cache, form);
}

// The named forms.
template <class T>
matrix<T> mla_prefill_naive(const mla_layer<T>& layer, const detail::non_deduced_t<matrix<T>>& x) {
  return mla_prefill(layer, x, mla_form::naive);
}
template <class T>
matrix<T> mla_prefill_naive(const mla_layer<T>& layer, const detail::non_deduced_t<matrix<T>>& x, mla_cache<T>& cache) {
  return mla_prefill(layer, x, cache, mla_form::naive);
}
template <class T>
matrix<T> mla_prefill_absorbed(const mla_layer<T>& layer, const detail::non_deduced_t<matrix<T>>& x) {
  return mla_prefill(layer, x, mla_form::absorbed);
}
template <class T>
matrix<T> mla_prefill_absorbed(const mla_layer<T>& layer, const detail::non_deduced_t<matrix<T>>& x,
                               mla_cache<T>& cache) {
  return mla_prefill(layer, x, cache, mla_form::absorbed);
}
template <class T>
row_vector<T> mla_decode_naive(const mla_layer<T>& layer, const detail::non_deduced_t<row_vector<T>>& x,
                               mla_cache<T>& cache) {
  return mla_decode(layer, x, cache, mla_form::naive);
}
template <class T>
row_vector<T> mla_decode_absorbed(const mla_layer<T>& layer, const detail::non_deduced_t<row_vector<T>>& x,
                                  mla_cache<T>& cache) {
  return mla_decode(layer, x, cache, mla_form::absorbed);
}

}  // namespace mla::ref
