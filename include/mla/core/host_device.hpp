// MLA_HOST_DEVICE: marks small arithmetic helpers (page walks, tiling, softmax merges) that both the CPU
// kernels and the CUDA kernels call. Under nvcc it expands to __host__ __device__; elsewhere to nothing,
// so the headers that use it stay plain C++17.
#pragma once

#if defined(__CUDACC__)
#define MLA_HOST_DEVICE __host__ __device__
#else
#define MLA_HOST_DEVICE
#endif
