// mla::cuda::latent_append: writes new tokens into the paged latent cache of mla_decode_op. For each token
// n (sequence seq_ids[n], position positions[n]) the cache row [c | k_pe] at its page slot becomes
//   c    = latent[n]                     [latent_rank]  (the down-projected KV latent)
//   k_pe = RoPE(k_pe_raw[n], position)   [rope_dim]     (the shared decoupled key, rotated here)
// converted to the cache element type. RoPE pairs are interleaved (DeepSeek layout, (2i, 2i+1)) or half-split
// (NeoX, (i, i + rope_dim/2)); frequencies and the attention factor come from the host
// (mla::ref::rope<double>(config).inv_freq()).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/paged_cache.hpp"
#include "mla/cuda/rope.cuh"
#include "mla/cuda/status.cuh"
#include "mla/cuda/warp_mma.cuh"

namespace mla::cuda {

template <class Elem>
struct latent_append_args {
  const float* latent = nullptr;    // [tokens, latent_rank]
  const float* k_pe = nullptr;      // [tokens, rope_dim], not yet rotated
  const int* seq_ids = nullptr;     // [tokens]: sequence of each token, in [0, pages.num_seqs)
  const int* positions = nullptr;   // [tokens]: position in its sequence, < pages.pages_per_seq * page_size
  const float* inv_freq = nullptr;  // [rope_dim / 2]
  float attention_factor = 1.0f;    // YaRN's factor on cos/sin (1 otherwise)
  rope_pairs pairs = rope_pairs::interleaved;
  int tokens = 0;
  runtime_shape shape;         // one of mla::supported_shapes
  Elem* cache = nullptr;       // [pages.num_pages, pages.page_size, latent_rank + rope_dim]
  mla::page_table_view pages;  // device page table (seq_lens are not read)
};

namespace detail {
template <class Elem>
__global__ void latent_append_kernel(latent_append_args<Elem> a) {
  const int rank = a.shape.latent_rank, rope = a.shape.rope_dim, width = rank + rope, half = rope / 2;
  const long long total = static_cast<long long>(a.tokens) * width;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int n = static_cast<int>(i / width), e = static_cast<int>(i % width);
    const int pos = a.positions[n];
    float v;
    if (e < rank) {
      v = a.latent[static_cast<std::ptrdiff_t>(n) * rank + e];
    } else {
      const int j = e - rank;
      const bool interleaved = a.pairs == rope_pairs::interleaved;
      const int pair = interleaved ? j / 2 : j % half;
      const bool first = interleaved ? (j % 2 == 0) : (j < half);
      const int ia = interleaved ? 2 * pair : pair, ib = interleaved ? 2 * pair + 1 : pair + half;
      const float* x = a.k_pe + static_cast<std::ptrdiff_t>(n) * rope;
      float s, c;
      sincosf(static_cast<float>(pos) * a.inv_freq[pair], &s, &c);
      c *= a.attention_factor;
      s *= a.attention_factor;
      v = first ? x[ia] * c - x[ib] * s : x[ib] * c + x[ia] * s;
    }
    a.cache[mla::token_row_offset(a.pages, a.seq_ids[n], pos, width) + e] = from_float<Elem>(v);
  }
}
}  // namespace detail

// Throws mla::error for arguments it cannot run (before any launch); returns the launch status.
template <class Elem>
status latent_append(const latent_append_args<Elem>& a, cudaStream_t stream = nullptr) {
  static_assert(detail::is_mma_element_v<Elem>, "mla::cuda::latent_append: Elem must be __nv_bfloat16 or __half");
  constexpr const char* owner = "mla::cuda::latent_append";
  check(is_supported(a.shape), owner, ": shape (head_dim ", a.shape.head_dim, ", rope_dim ", a.shape.rope_dim,
        ", latent_rank ", a.shape.latent_rank, ") is not supported; supported shapes: ", describe_supported_shapes());
  check(a.tokens >= 0, owner, ": tokens must be >= 0, found ", a.tokens);
  check(a.pages.page_size > 0, owner, ": pages.page_size must be > 0, found ", a.pages.page_size);
  if (a.tokens == 0) return {};
  check(a.latent && a.k_pe && a.seq_ids && a.positions && a.inv_freq && a.cache && a.pages.page_table, owner,
        ": latent, k_pe, seq_ids, positions, inv_freq, cache and pages.page_table must be non-null");
  const long long elems = static_cast<long long>(a.tokens) * a.shape.cached_elements_per_token();
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<long long>((elems + threads - 1) / threads, 65535));
  detail::latent_append_kernel<Elem><<<blocks, threads, 0, stream>>>(a);
  MLA_CUDA_CHECK(cudaGetLastError());
  return {};
}

}  // namespace mla::cuda
