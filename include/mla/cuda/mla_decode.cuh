// mla::cuda::mla_decode_op: absorbed MLA decode attention on the GPU, one new token per sequence, every
// query head against the shared latent cache [c | k_pe] in bf16 or fp16 with fp32 accumulation. Same
// contract as mla::cpu::mla_decode (the CPU kernel, in cpu/): paged cache with any page size, ragged
// lengths, sliding window, sinks, softmax scale, split-KV with a log-sum-exp combine; out and lse in fp32.
//
//   mla_decode_op<__nv_bfloat16>::can_implement(args)   false (with the reason) for what it cannot run
//   mla_decode_op<__nv_bfloat16>::workspace_size(args)  bytes of device workspace (0 with one split)
//   mla_decode_op<__nv_bfloat16>::run(args, ws, bytes, stream)
// run() throws mla::error for a configuration error before any launch; CUDA failures come back as status.
// The latent rank and RoPE width must form a shape of mla::supported_shapes (the dispatch list).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/paged_cache.hpp"
#include "mla/cuda/decode_launch.cuh"
#include "mla/cuda/decode_plan.hpp"
#include "mla/cuda/status.cuh"

namespace mla::cuda {

// One decode step; all pointers are device pointers, 16-byte aligned. Batch = pages.num_seqs.
template <class Elem>
struct mla_decode_args {
  const Elem* q_latent = nullptr;  // q̃ = W_UK^T q_nope per head, [batch, num_heads, latent_rank]
  const Elem* q_pe = nullptr;      // RoPE'd query part, [batch, num_heads, rope_dim]
  const Elem* cache = nullptr;     // [pages.num_pages, pages.page_size, latent_rank + rope_dim]: c then k_pe
  mla::page_table_view pages;      // page table and lengths (>= 1 each) in device memory
  int max_seq_len = 0;             // the longest length in pages.seq_lens (host value; sets the split count)
  int num_heads = 0;
  runtime_shape shape;           // (head_dim, rope_dim, latent_rank): one of mla::supported_shapes
  float softmax_scale = 0.0f;    // multiplies q.k (not the sinks)
  int sliding_window = 0;        // 0: full causal
  const float* sinks = nullptr;  // [num_heads] natural-log sink logits, or null
  int num_splits = 0;            // KV splits per sequence; 0: automatic
  int heads_per_block = 0;       // query heads per CTA (16, 32 or 64); 0: automatic
  float* out = nullptr;          // [batch, num_heads, latent_rank]
  float* lse = nullptr;          // [batch, num_heads] (sinks included), or null
};

template <class Elem>
struct mla_decode_op {
  static_assert(detail::is_mma_element_v<Elem>, "mla::cuda::mla_decode_op: Elem must be __nv_bfloat16 or __half");
  static constexpr const char* owner = "mla::cuda::mla_decode";

  // The launch plan for these arguments on the current device; throws mla::error naming what is wrong.
  static decode_plan plan(const mla_decode_args<Elem>& a) {
    check(is_supported(a.shape), owner, ": shape (head_dim ", a.shape.head_dim, ", rope_dim ", a.shape.rope_dim,
          ", latent_rank ", a.shape.latent_rank, ") is not supported; supported shapes: ", describe_supported_shapes());
    check(a.num_heads > 0, owner, ": num_heads must be > 0, found ", a.num_heads);
    check(std::isfinite(a.softmax_scale) && a.softmax_scale > 0.0f, owner,
          ": softmax_scale must be finite and > 0, found ", a.softmax_scale);
    check(a.pages.page_size > 0, owner, ": pages.page_size must be > 0, found ", a.pages.page_size);
    check(a.pages.num_seqs >= 0 && a.pages.pages_per_seq >= 0, owner,
          ": pages.num_seqs and pages.pages_per_seq must be >= 0");
    check(a.max_seq_len <= a.pages.pages_per_seq * a.pages.page_size, owner, ": max_seq_len ", a.max_seq_len,
          " exceeds pages.pages_per_seq * pages.page_size = ", a.pages.pages_per_seq * a.pages.page_size);
    const detail::device_limits dev = detail::current_device_limits();
    decode_problem p;
    p.batch = a.pages.num_seqs;
    p.heads_per_group = a.num_heads;
    p.groups = 1;
    p.key_width = a.shape.latent_rank + a.shape.rope_dim;
    p.value_width = a.shape.latent_rank;
    p.separate_values = false;
    p.elem_bytes = sizeof(Elem);
    p.max_seq_len = a.max_seq_len;
    p.sliding_window = a.sliding_window;
    p.requested_splits = a.num_splits;
    check(a.heads_per_block == 0 || a.heads_per_block == 16 || a.heads_per_block == 32 || a.heads_per_block == 64,
          owner, ": heads_per_block must be 0 (automatic), 16, 32 or 64, found ", a.heads_per_block);
    if (a.heads_per_block > 0) p.max_m_tiles = a.heads_per_block / 16;
    p.sm_count = dev.sm_count;
    p.max_smem = dev.max_smem;
    return make_decode_plan(p, owner);
  }

  // Empty when run() would accept the arguments, else the reason (never throws).
  static std::string unsupported_reason(const mla_decode_args<Elem>& a) {
    try {
      (void)plan(a);
      if (a.pages.num_seqs > 0) {
        check(a.q_latent && a.q_pe && a.cache && a.out && a.pages.seq_lens && a.pages.page_table, owner,
              ": q_latent, q_pe, cache, out and the page table must be non-null");
        check(detail::aligned16(a.q_latent) && detail::aligned16(a.q_pe) && detail::aligned16(a.cache), owner,
              ": q_latent, q_pe and cache must be 16-byte aligned");
        check(detail::aligned16(a.out), owner, ": out must be 16-byte aligned");
      }
    } catch (const mla::error& e) {
      return e.what();
    }
    return {};
  }
  static bool can_implement(const mla_decode_args<Elem>& a) { return unsupported_reason(a).empty(); }

  static std::size_t workspace_size(const mla_decode_args<Elem>& a) { return plan(a).workspace_bytes; }

  static status run(const mla_decode_args<Elem>& a, void* workspace, std::size_t workspace_bytes,
                    cudaStream_t stream = nullptr) {
    const std::string why = unsupported_reason(a);
    if (!why.empty()) throw mla::error(why);
    const decode_plan pl = plan(a);
    // The shape list drives the dispatch: the instantiation is picked by the shape's compile-time rank.
    return dispatch_shape(a.shape, [&](auto s) -> status {
      using shape_t = decltype(s);
      constexpr int np = decode_pairs_per_warp(shape_t::latent_rank);
      static_assert(np > 0, "mla::cuda::mla_decode: every supported latent rank must have a kernel");
      detail::decode_kernel_params<Elem> kp;
      kp.q_a = a.q_latent;
      kp.q_b = a.q_pe;
      kp.q_a_width = shape_t::latent_rank;
      kp.keys = a.cache;
      kp.key_row_stride = shape_t::latent_rank + shape_t::rope_dim;
      kp.key_width = shape_t::latent_rank + shape_t::rope_dim;
      kp.values = nullptr;
      kp.value_width = shape_t::latent_rank;
      kp.pages = a.pages;
      kp.heads = a.num_heads;
      kp.heads_per_group = a.num_heads;
      kp.scale_log2 = a.softmax_scale * 1.44269504088896341f;
      kp.window = a.sliding_window;
      kp.sinks = a.sinks;
      kp.out = a.out;
      kp.lse = a.lse;
      if (pl.pairs_per_warp != np) throw mla::error(std::string(owner) + ": plan and shape disagree on the kernel");
      return detail::launch_decode<Elem, false, np>(pl, kp, workspace, workspace_bytes, stream, owner);
    });
  }
};

}  // namespace mla::cuda
