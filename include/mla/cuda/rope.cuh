// mla::cuda::apply_rope: RoPE on device over rows of a [tokens, row_stride] buffer, in place.
// Frequencies (with YaRN/llama3 scaling) and the attention factor come from the host (for example
// mla::ref::rope<double>(config).inv_freq(), which needs no Eigen), so the kernel only rotates.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>

#include "mla/core/error.hpp"
#include "mla/cuda/status.cuh"

namespace mla::cuda {

enum class rope_pairs { half_split, interleaved };

struct rope_args {
  float* x = nullptr;               // [tokens, row_stride], rotated in place
  const int* positions = nullptr;   // [tokens]
  const float* inv_freq = nullptr;  // [dim / 2]
  int tokens = 0;
  int row_stride = 0;   // elements between consecutive tokens
  int heads = 0;        // rotated slices per token
  int head_stride = 0;  // elements between consecutive slices
  int dim = 0;          // rotated channels per slice (even)
  float attention_factor = 1.0f;
  rope_pairs pairs = rope_pairs::half_split;
};

namespace detail {
// A template so that several translation units can include this header (one instantiation per program).
template <class Args>
__global__ void rope_kernel(Args a) {
  const int half = a.dim / 2;
  const long long total = static_cast<long long>(a.tokens) * a.heads * half;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int pair = static_cast<int>(i % half);
    const int head = static_cast<int>((i / half) % a.heads);
    const int token = static_cast<int>(i / (static_cast<long long>(half) * a.heads));
    float* row = a.x + static_cast<long long>(token) * a.row_stride + static_cast<long long>(head) * a.head_stride;
    const int ia = a.pairs == rope_pairs::half_split ? pair : 2 * pair;
    const int ib = a.pairs == rope_pairs::half_split ? pair + half : 2 * pair + 1;
    float s, c;
    sincosf(static_cast<float>(a.positions[token]) * a.inv_freq[pair], &s, &c);
    c *= a.attention_factor;
    s *= a.attention_factor;
    const float va = row[ia], vb = row[ib];
    row[ia] = va * c - vb * s;
    row[ib] = vb * c + va * s;
  }
}
}  // namespace detail

// Throws mla::error for a configuration it cannot run; returns the launch status otherwise.
inline status apply_rope(const rope_args& a, cudaStream_t stream = nullptr) {
  check(a.dim > 0 && a.dim % 2 == 0, "mla::cuda::apply_rope: dim must be positive and even, got ", a.dim);
  check(a.tokens >= 0 && a.heads > 0, "mla::cuda::apply_rope: need tokens >= 0 and heads > 0, got ", a.tokens, " and ",
        a.heads);
  check(a.head_stride >= a.dim && a.row_stride >= (a.heads - 1) * a.head_stride + a.dim,
        "mla::cuda::apply_rope: strides too small for ", a.heads, " slices of ", a.dim);
  if (a.tokens == 0) return {};
  const long long pairs = static_cast<long long>(a.tokens) * a.heads * (a.dim / 2);
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<long long>((pairs + threads - 1) / threads, 65535));
  detail::rope_kernel<<<blocks, threads, 0, stream>>>(a);
  MLA_CUDA_CHECK(cudaGetLastError());
  return {};
}

}  // namespace mla::cuda
