// mla::cuda::status and MLA_CUDA_CHECK: CUDA runtime failures come back as a status value that keeps
// the cudaError_t, the failing expression and where it happened; configuration errors found before any
// launch throw mla::error instead.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "mla/core/error.hpp"

namespace mla::cuda {

struct status {
  cudaError_t code = cudaSuccess;
  const char* expression = "";
  const char* file = "";
  int line = 0;

  constexpr bool ok() const { return code == cudaSuccess; }
  explicit constexpr operator bool() const { return ok(); }
  std::string message() const {
    if (ok()) return "ok";
    return std::string(cudaGetErrorName(code)) + " (" + cudaGetErrorString(code) + ") from `" + expression + "` at " +
           file + ":" + std::to_string(line);
  }
  // Turns a failure into mla::error (for host glue that prefers exceptions).
  void throw_if_failed() const {
    if (!ok()) throw mla::error("mla::cuda: " + message());
  }
};

}  // namespace mla::cuda

// Evaluates a cudaError_t expression; on failure returns an mla::cuda::status from the enclosing function.
#define MLA_CUDA_CHECK(expr)                                                       \
  do {                                                                             \
    const cudaError_t mla_cuda_check_code_ = (expr);                               \
    if (mla_cuda_check_code_ != cudaSuccess)                                       \
      return ::mla::cuda::status{mla_cuda_check_code_, #expr, __FILE__, __LINE__}; \
  } while (0)
