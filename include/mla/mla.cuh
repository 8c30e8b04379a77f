// Umbrella header for the CUDA side (needs nvcc): core shapes and dispatch plus the kernels.
// Eigen stays off device code, so the Eigen reference (<mla/mla.hpp>) is not included here.
#pragma once

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/supported_shapes.hpp"
#include "mla/cuda/device.cuh"
#include "mla/cuda/rope.cuh"
#include "mla/cuda/status.cuh"
