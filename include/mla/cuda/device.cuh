// Device queries used by host glue and by the GPU test precondition.
#pragma once

#include <cuda_runtime.h>

namespace mla::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no device (never throws).
inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

inline bool has_device() { return device_count() > 0; }

}  // namespace mla::cuda
