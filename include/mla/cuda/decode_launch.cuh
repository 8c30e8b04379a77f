// Host glue shared by the MLA and GQA decode operators: device limits, the workspace carve-up, and the
// launch of decode_kernel (picked from its instantiations by the plan) plus the split combine.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "mla/core/error.hpp"
#include "mla/cuda/decode_kernel.cuh"
#include "mla/cuda/decode_plan.hpp"
#include "mla/cuda/status.cuh"

namespace mla::cuda::detail {

// Multiprocessors and opt-in shared memory of the current device (defaults when there is none, so that
// plans and error messages can be made on a machine without a GPU).
struct device_limits {
  int sm_count = 132;
  std::size_t max_smem = 227 * 1024;
};

inline device_limits current_device_limits() {
  device_limits l;
  int dev = 0, v = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return l;
  }
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess && v > 0) l.sm_count = v;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) == cudaSuccess && v > 0)
    l.max_smem = static_cast<std::size_t>(v);
  (void)cudaGetLastError();
  return l;
}

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// The kernel instantiation for (m-tiles, pairs per warp, tile tokens); null when not instantiated.
template <class Elem, bool Separate, int NP, int TN>
auto select_m_tiles(int mt) -> void (*)(decode_kernel_params<Elem>) {
  switch (mt) {
    case 1:
      if constexpr (decode_score_slices(1, TN) > 0) return decode_kernel<Elem, 1, NP, Separate, TN>;
      return nullptr;
    case 2:
      if constexpr (decode_score_slices(2, TN) > 0) return decode_kernel<Elem, 2, NP, Separate, TN>;
      return nullptr;
    case 4:
      if constexpr (4 * NP * 8 <= decode_max_accumulators && decode_score_slices(4, TN) > 0)
        return decode_kernel<Elem, 4, NP, Separate, TN>;
      return nullptr;
    default:
      return nullptr;
  }
}

// Fills the split fields of kp from the plan and workspace, launches decode and (with splits) combine.
template <class Elem, bool Separate, int NP>
status launch_decode(const decode_plan& plan, decode_kernel_params<Elem> kp, void* workspace,
                     std::size_t workspace_bytes, cudaStream_t stream, const char* owner) {
  const int batch = kp.pages.num_seqs;
  if (batch == 0) return {};
  check(workspace_bytes >= plan.workspace_bytes, owner, ": workspace of ", workspace_bytes, " bytes, the plan needs ",
        plan.workspace_bytes, " (workspace_size)");
  check(plan.workspace_bytes == 0 || (workspace != nullptr && aligned16(workspace)), owner,
        ": workspace must be a 16-byte aligned device buffer of workspace_size() bytes");
  void (*kernel)(decode_kernel_params<Elem>) = nullptr;
  if (plan.tile_tokens == decode_tile_tokens)
    kernel = select_m_tiles<Elem, Separate, NP, decode_tile_tokens>(plan.m_tiles);
  if constexpr (Separate)  // only the separate-value (GQA) rows use the wide tile
    if (plan.tile_tokens == decode_wide_tile_tokens)
      kernel = select_m_tiles<Elem, Separate, NP, decode_wide_tile_tokens>(plan.m_tiles);
  check(kernel != nullptr, owner, ": no kernel for ", plan.m_tiles, " m-tiles, ", NP, " value pairs per warp and ",
        plan.tile_tokens, "-key tiles");
  kp.splits = plan.num_splits;
  kp.heads_per_block = plan.heads_per_block;
  kp.blocks_per_group = mla::ceil_div(kp.heads_per_group, plan.heads_per_block);
  const std::size_t rows = static_cast<std::size_t>(batch) * plan.num_splits * kp.heads;
  if (plan.num_splits > 1) {
    kp.part_out = static_cast<float*>(workspace);
    kp.part_lse = kp.part_out + rows * static_cast<std::size_t>(kp.value_width);
  }
  MLA_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.smem_bytes)));
  const dim3 grid(static_cast<unsigned>(plan.head_blocks), static_cast<unsigned>(plan.num_splits),
                  static_cast<unsigned>(batch));
  kernel<<<grid, decode_threads, plan.smem_bytes, stream>>>(kp);
  MLA_CUDA_CHECK(cudaGetLastError());
  if (plan.num_splits > 1) {
    split_combine_kernel<<<static_cast<unsigned>(batch * kp.heads), 128, 0, stream>>>(
        kp.part_out, kp.part_lse, plan.num_splits, kp.heads, kp.value_width, kp.sinks, kp.out, kp.lse);
    MLA_CUDA_CHECK(cudaGetLastError());
  }
  return {};
}

}  // namespace mla::cuda::detail
