// Umbrella header for the host-side library (no CUDA): core shapes and dispatch, Eigen reference math.
// CUDA users include <mla/mla.cuh>.
#pragma once

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/supported_shapes.hpp"
