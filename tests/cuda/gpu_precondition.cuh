// Boost.Test precondition: GPU test cases are skipped (not failed) where no CUDA device exists, and say so on
// stderr (tests/support/resources.hpp), so that scripts/test.sh lists the skip with its reason.
#pragma once

#include <boost/test/unit_test.hpp>

#include "mla/cuda/device.cuh"
#include "resources.hpp"

namespace mla::test {
struct has_cuda_device {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    return skip_unless(mla::cuda::has_device(), "no CUDA device: GPU test skipped");
  }
};
}  // namespace mla::test

#define MLA_GPU_TEST boost::unit_test::label("gpu") * boost::unit_test::precondition(mla::test::has_cuda_device{})
