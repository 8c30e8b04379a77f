// mla::model attention backends: which code runs a layer's decode attention in model::decoder.
//
//   reference   the Eigen reference (mla/reference/*): any type, either MLA form, online softmax in T
//   cpu_kernel  the CPU decode kernels, called through their public operators (mla::cpu::mla_decode_dispatch,
//               mla::cpu::gqa_decode): float only; MLA in the absorbed form with a decoupled RoPE key and a
//               shape in mla::supported_shapes (the kernels' instantiations). Whatever the kernel cannot run
//               (double, the naive form, the exact latent-RoPE rewrite, another shape) runs the reference.
//
// The decoder keeps dense caches (ref::gqa_cache, ref::mla_cache); the cpu_kernel path views them as a paged
// cache of one sequence (core/paged_cache.hpp): an unbounded cache is one page holding rows [0, len); a
// sliding-window ring cache (position p in row p % window) is pages of one token, page p -> row p % window.
// The kernels use a polynomial exp and split the keys over threads, so their outputs differ from the
// reference's by float rounding (relative ~1e-6), not more.
//
// decode_backends' defaults keep what the decoder has always run: MLA on the CPU kernel, GQA on the reference
// (switching GQA would change the numbers of every unconverted model's decode).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/paged_cache.hpp"
#include "mla/core/shape.hpp"
#include "mla/cpu/gqa_decode.hpp"
#include "mla/cpu/mla_decode.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"

namespace mla::model {

enum class attention_backend { reference, cpu_kernel };

// The decode backend of each attention kind.
struct decode_backends {
  attention_backend mla = attention_backend::cpu_kernel;
  attention_backend gqa = attention_backend::reference;

  // Both kinds on one backend.
  static decode_backends all(attention_backend b) { return {b, b}; }
};

inline const char* to_string(attention_backend b) { return b == attention_backend::reference ? "reference" : "cpu"; }

// "reference" or "cpu" (the spelling of the tools' --attention-backend flag).
inline attention_backend parse_attention_backend(const std::string& name) {
  if (name == "reference") return attention_backend::reference;
  if (name == "cpu") return attention_backend::cpu_kernel;
  throw error("mla::model::parse_attention_backend: unknown attention backend '" + name +
              "', expected reference or cpu");
}

namespace detail {

// A dense cache of `len` tokens (the newest included) as a paged cache of one sequence: one page of len rows,
// or for a ring of `window` rows pages of one token, position p in row p % window.
inline paged_layout dense_cache_pages(long len, long window, const char* owner) {
  check(len >= 1 && len <= INT32_MAX, owner, ": ", len, " cached tokens, expected 1 .. ", INT32_MAX,
        " (the kernels' int32 lengths)");
  paged_layout pages;
  pages.seq_lens = {static_cast<std::int32_t>(len)};
  if (window <= 0) {
    pages.page_table = {0};
    pages.pages_per_seq = 1, pages.page_size = static_cast<int>(len), pages.num_pages = 1;
  } else {
    pages.page_table.resize(static_cast<std::size_t>(len));
    for (long p = 0; p < len; ++p) pages.page_table[static_cast<std::size_t>(p)] = static_cast<page_index>(p % window);
    pages.pages_per_seq = static_cast<int>(len), pages.page_size = 1;
    pages.num_pages = static_cast<int>(len < window ? len : window);
  }
  return pages;
}

inline bool has_mla_kernel(runtime_shape shape) {
  static const std::vector<runtime_shape> shapes = supported_runtime_shapes();
  for (const runtime_shape& s : shapes)
    if (s == shape) return true;
  return false;
}

// Absorbed MLA decode of one float token on mla::cpu::mla_decode; c and k_pe are cached apart.
inline ref::row_vector<float> mla_decode_cpu(const ref::mla_layer<float>& layer, const ref::row_vector<float>& x,
                                             ref::mla_cache<float>& cache) {
  const ref::matrix<float> q = ref::mla_decode_append(layer, x, cache);  // [1, n_heads*qk], RoPE applied
  const ref::mla_absorbed_query<float> aq = ref::mla_absorb_query(layer, q);
  const paged_layout pages = dense_cache_pages(cache.length(), 0, "mla::model::mla_decode (cpu_kernel)");
  ref::matrix<float> latent_out(layer.n_heads, layer.latent_rank);  // x_h = sum_t p_h(t) c_t
  cpu::mla_decode_args<float> a;
  a.q_latent = aq.q_latent.data();
  a.q_pe = aq.q_pe.data();
  a.cache = cache.c.data();
  a.rope_cache = cache.k_pe.data();
  a.pages = pages.view();
  a.num_heads = layer.n_heads;
  a.options.softmax_scale = static_cast<float>(layer.attention.softmax_scale);
  a.options.sliding_window = layer.attention.sliding_window;
  a.options.sinks = layer.sinks.size() != 0 ? layer.sinks.data() : nullptr;
  a.out = latent_out.data();
  cpu::mla_decode_dispatch(layer.shape(), a);
  return ref::mla_latent_output(layer, latent_out);
}

// GQA decode of one float token on mla::cpu::gqa_decode.
inline ref::row_vector<float> gqa_decode_cpu(const ref::gqa_layer<float>& layer, const ref::row_vector<float>& x,
                                             ref::gqa_cache<float>& cache) {
  const ref::matrix<float> q = ref::gqa_decode_append(layer, x, cache);  // [1, n_heads*d], RoPE applied
  const paged_layout pages = dense_cache_pages(cache.length(), cache.window, "mla::model::gqa_decode (cpu_kernel)");
  ref::matrix<float> attn(1, Eigen::Index(layer.n_heads) * layer.head_dim);  // heads concatenated
  cpu::gqa_decode_args<float> a;
  a.q = q.data();
  a.k_cache = cache.k.data();
  a.v_cache = cache.v.data();
  a.pages = pages.view();
  a.num_heads = layer.n_heads;
  a.num_kv_heads = layer.n_kv_heads;
  a.head_dim = layer.head_dim;
  a.options.softmax_scale = static_cast<float>(layer.attention.softmax_scale);
  a.options.sliding_window = layer.attention.sliding_window;
  a.options.sinks = layer.sinks.size() != 0 ? layer.sinks.data() : nullptr;
  a.out = attn.data();
  cpu::gqa_decode(a);
  const ref::matrix<float> out = ref::linear(attn, layer.wo, layer.bo);
  return out.row(0);
}

}  // namespace detail

// Whether `backend` runs this MLA layer's decode on a kernel (else it runs the reference).
template <class T>
bool runs_on_kernel(attention_backend backend, const ref::mla_layer<T>& layer, ref::mla_form form) {
  return std::is_same_v<T, float> && backend == attention_backend::cpu_kernel && form == ref::mla_form::absorbed &&
         !layer.uses_latent_rope() && layer.rope_dim > 0 && detail::has_mla_kernel(layer.shape());
}
template <class T>
bool runs_on_kernel(attention_backend backend, const ref::gqa_layer<T>&) {
  return std::is_same_v<T, float> && backend == attention_backend::cpu_kernel;
}

// Decode of one token x [hidden] at position cache.length() (as ref::mla_decode / ref::gqa_decode): appends it
// to the cache and returns the layer's attention output [hidden], on `backend` where it can run.
template <class T>
ref::row_vector<T> mla_decode(attention_backend backend, const ref::mla_layer<T>& layer, const ref::row_vector<T>& x,
                              ref::mla_cache<T>& cache, ref::mla_form form) {
  if constexpr (std::is_same_v<T, float>)
    if (runs_on_kernel(backend, layer, form)) return detail::mla_decode_cpu(layer, x, cache);
  return ref::mla_decode(layer, x, cache, form);
}

template <class T>
ref::row_vector<T> gqa_decode(attention_backend backend, const ref::gqa_layer<T>& layer, const ref::row_vector<T>& x,
                              ref::gqa_cache<T>& cache) {
  if constexpr (std::is_same_v<T, float>)
    if (runs_on_kernel(backend, layer)) return detail::gqa_decode_cpu(layer, x, cache);
  return ref::gqa_decode(layer, x, cache);
}

}  // namespace mla::model
