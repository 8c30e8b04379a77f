// Boost.Test precondition: GPU test cases are skipped (not failed) where no CUDA device exists.
#pragma once

#include <boost/test/unit_test.hpp>

#include "mla/cuda/device.cuh"

namespace mla::test {
struct has_cuda_device {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r(mla::cuda::has_device());
    if (!r) r.message() << "no CUDA device: GPU test skipped";
    return r;
  }
};
}  // namespace mla::test

#define MLA_GPU_TEST boost::unit_test::label("gpu") * boost::unit_test::precondition(mla::test::has_cuda_device{})
