// Umbrella header for the CUDA side (needs nvcc): core shapes, dispatch, page tables and softmax merge, the
// host-side decode plan, and every public .cuh header (the kernels). Eigen stays off device code, so the Eigen
// reference (<mla/mla.hpp>) is not included here. The `headers` test fails when a .cuh header is missing here.
#pragma once

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/host_device.hpp"
#include "mla/core/paged_cache.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/softmax_merge.hpp"
#include "mla/core/supported_shapes.hpp"
#include "mla/cuda/decode_plan.hpp"
#include "mla/cuda/decode_kernel.cuh"
#include "mla/cuda/decode_launch.cuh"
#include "mla/cuda/device.cuh"
#include "mla/cuda/gqa_decode.cuh"
#include "mla/cuda/latent_append.cuh"
#include "mla/cuda/mla_decode.cuh"
#include "mla/cuda/rope.cuh"
#include "mla/cuda/status.cuh"
#include "mla/cuda/warp_mma.cuh"
