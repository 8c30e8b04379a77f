// mla::cuda::gqa_decode_op: grouped-query decode attention on the GPU, the baseline mla_decode_op is
// measured against. Same contract as mla::cpu::gqa_decode: paged K and V caches [num_pages, page_size,
// num_kv_heads, head_dim] in bf16/fp16, query head h reads KV head h / (num_heads / num_kv_heads), sinks,
// sliding window, split-KV; out and lse in fp32. Runs on the same tensor-core kernel as MLA, with one CTA
// per (KV head, split, sequence) and the group's query heads as the rows.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "mla/core/error.hpp"
#include "mla/core/paged_cache.hpp"
#include "mla/cuda/decode_launch.cuh"
#include "mla/cuda/decode_plan.hpp"
#include "mla/cuda/status.cuh"

namespace mla::cuda {

template <class Elem>
struct gqa_decode_args {
  const Elem* q = nullptr;        // RoPE'd queries, [batch, num_heads, head_dim]
  const Elem* k_cache = nullptr;  // [pages.num_pages, pages.page_size, num_kv_heads, head_dim]
  const Elem* v_cache = nullptr;  // same layout
  mla::page_table_view pages;     // device pointers
  int max_seq_len = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // 64 or 128 (multiples of 16 up to 768 run)
  float softmax_scale = 0.0f;
  int sliding_window = 0;
  const float* sinks = nullptr;  // [num_heads] or null
  int num_splits = 0;
  float* out = nullptr;  // [batch, num_heads, head_dim]
  float* lse = nullptr;  // [batch, num_heads] or null
};

template <class Elem>
struct gqa_decode_op {
  static_assert(detail::is_mma_element_v<Elem>, "mla::cuda::gqa_decode_op: Elem must be __nv_bfloat16 or __half");
  static constexpr const char* owner = "mla::cuda::gqa_decode";

  static decode_plan plan(const gqa_decode_args<Elem>& a) {
    check(a.num_kv_heads > 0, owner, ": num_kv_heads must be > 0, found ", a.num_kv_heads);
    check(a.num_heads > 0 && a.num_heads % a.num_kv_heads == 0, owner, ": num_heads = ", a.num_heads,
          ", expected a positive multiple of num_kv_heads = ", a.num_kv_heads);
    check(a.head_dim > 0 && a.head_dim % 16 == 0 && a.head_dim <= 128, owner, ": head_dim ", a.head_dim,
          " is not supported: it must be a multiple of 16 in [16, 128] (64 and 128 are the common ones)");
    check(std::isfinite(a.softmax_scale) && a.softmax_scale > 0.0f, owner,
          ": softmax_scale must be finite and > 0, found ", a.softmax_scale);
    check(a.pages.page_size > 0, owner, ": pages.page_size must be > 0, found ", a.pages.page_size);
    check(a.max_seq_len <= a.pages.pages_per_seq * a.pages.page_size, owner, ": max_seq_len ", a.max_seq_len,
          " exceeds pages.pages_per_seq * pages.page_size = ", a.pages.pages_per_seq * a.pages.page_size);
    const detail::device_limits dev = detail::current_device_limits();
    decode_problem p;
    p.batch = a.pages.num_seqs;
    p.heads_per_group = a.num_heads / a.num_kv_heads;
    p.groups = a.num_kv_heads;
    p.key_width = a.head_dim;
    p.value_width = a.head_dim;
    p.separate_values = true;
    p.elem_bytes = sizeof(Elem);
    p.max_seq_len = a.max_seq_len;
    p.sliding_window = a.sliding_window;
    p.requested_splits = a.num_splits;
    p.sm_count = dev.sm_count;
    p.max_smem = dev.max_smem;
    return make_decode_plan(p, owner);
  }

  static std::string unsupported_reason(const gqa_decode_args<Elem>& a) {
    try {
      (void)plan(a);
      if (a.pages.num_seqs > 0) {
        check(a.q && a.k_cache && a.v_cache && a.out && a.pages.seq_lens && a.pages.page_table, owner,
              ": q, k_cache, v_cache, out and the page table must be non-null");
        check(detail::aligned16(a.q) && detail::aligned16(a.k_cache) && detail::aligned16(a.v_cache) &&
                  detail::aligned16(a.out),
              owner, ": q, k_cache, v_cache and out must be 16-byte aligned");
      }
    } catch (const mla::error& e) {
      return e.what();
    }
    return {};
  }
  static bool can_implement(const gqa_decode_args<Elem>& a) { return unsupported_reason(a).empty(); }
  static std::size_t workspace_size(const gqa_decode_args<Elem>& a) { return plan(a).workspace_bytes; }

  static status run(const gqa_decode_args<Elem>& a, void* workspace, std::size_t workspace_bytes,
                    cudaStream_t stream = nullptr) {
    const std::string why = unsupported_reason(a);
    if (!why.empty()) throw mla::error(why);
    const decode_plan pl = plan(a);
    detail::decode_kernel_params<Elem> kp;
    kp.q_a = a.q;
    kp.q_b = nullptr;
    kp.q_a_width = a.head_dim;
    kp.keys = a.k_cache;
    kp.key_row_stride = static_cast<std::ptrdiff_t>(a.num_kv_heads) * a.head_dim;
    kp.key_width = a.head_dim;
    kp.values = a.v_cache;
    kp.value_row_stride = kp.key_row_stride;
    kp.value_width = a.head_dim;
    kp.pages = a.pages;
    kp.heads = a.num_heads;
    kp.heads_per_group = a.num_heads / a.num_kv_heads;
    kp.group_key_offset = a.head_dim;
    kp.group_value_offset = a.head_dim;
    kp.scale_log2 = a.softmax_scale * 1.44269504088896341f;
    kp.window = a.sliding_window;
    kp.sinks = a.sinks;
    kp.out = a.out;
    kp.lse = a.lse;
    // head_dim <= 128 is at most 8 pairs of 16 channels: one per warp.
    if (pl.pairs_per_warp != 1)
      throw mla::error(std::string(owner) + ": no kernel for head_dim " + std::to_string(a.head_dim));
    return detail::launch_decode<Elem, true, 1>(pl, kp, workspace, workspace_bytes, stream, owner);
  }
};

}  // namespace mla::cuda
