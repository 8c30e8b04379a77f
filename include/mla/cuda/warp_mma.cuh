// Warp-level tensor-core and async-copy primitives of the decode kernels (sm_80 and later):
//   ldmatrix (x4, plain and transposed), mma.sync m16n8k16 with fp32 accumulators for bf16 and fp16,
//   cp.async 16-byte copies with zero fill. Fragment layouts are the PTX ISA's for m16n8k16:
//   A (16x16, row): reg r holds rows (r & 1) * 8 + lane / 4, cols (r >> 1) * 8 + 2 * (lane % 4) + {0, 1}
//   B (16x8, col):  reg r holds k = r * 8 + 2 * (lane % 4) + {0, 1}, n = lane / 4
//   C (16x8 fp32):  c[0..1] row lane / 4, c[2..3] row lane / 4 + 8, cols 2 * (lane % 4) + {0, 1}
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace mla::cuda::detail {

template <class Elem>
inline constexpr bool is_mma_element_v = std::is_same_v<Elem, __nv_bfloat16> || std::is_same_v<Elem, __half>;

__device__ __forceinline__ unsigned smem_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// Four 8x8 b16 matrices; lane l gives the row address of matrix l / 8, row l % 8.
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row)));
}

// d += a * b for one 16x8x16 tile.
template <class Elem>
__device__ __forceinline__ void mma_16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  static_assert(is_mma_element_v<Elem>, "mla::cuda::detail::mma_16816: Elem must be __nv_bfloat16 or __half");
  if constexpr (std::is_same_v<Elem, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// 16 bytes global -> shared, bypassing L1; with valid == false the destination is zero-filled and the source
// is not read (it must still be a valid address).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(smem)), "l"(gmem), "r"(bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

template <class Elem>
__device__ __forceinline__ Elem from_float(float x) {
  if constexpr (std::is_same_v<Elem, __nv_bfloat16>)
    return __float2bfloat16_rn(x);
  else
    return __float2half_rn(x);
}

template <class Elem>
__device__ __forceinline__ float to_float(Elem x) {
  if constexpr (std::is_same_v<Elem, __nv_bfloat16>)
    return __bfloat162float(x);
  else
    return __half2float(x);
}

}  // namespace mla::cuda::detail
