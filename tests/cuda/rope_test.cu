#include <thrust/device_vector.h>
#include <thrust/host_vector.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gpu_precondition.cuh"
#include "mla/cuda/rope.cuh"
#include "mla/reference/rope.hpp"
#include "seed.hpp"

BOOST_AUTO_TEST_SUITE(cuda_rope)

// Device RoPE against the double-precision host reference, both pair layouts, YaRN attention factor.
BOOST_AUTO_TEST_CASE(matches_reference, *MLA_GPU_TEST) {
  const std::uint64_t seed = mla::test::test_seed();  // MLA_TEST_SEED replays it
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n01;
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (auto layout : {mla::ref::rope_layout::neox, mla::ref::rope_layout::interleaved}) {
      mla::ref::rope_config cfg = mla::ref::rope_config::gpt_oss();
      cfg.layout = layout;
      const mla::ref::rope<double> ref(cfg);
      const int tokens = 37, heads = 8, dim = 64, stride = heads * dim;
      std::vector<float> x(tokens * stride);
      std::vector<int> pos(tokens);
      for (auto& v : x) v = n01(rng);
      for (auto& p : pos) p = std::uniform_int_distribution<int>(0, 8191)(rng);
      std::vector<float> inv(ref.inv_freq().begin(), ref.inv_freq().end());
      thrust::device_vector<float> d_x(x.begin(), x.end()), d_inv(inv.begin(), inv.end());
      thrust::device_vector<int> d_pos(pos.begin(), pos.end());
      mla::cuda::rope_args a;
      a.x = thrust::raw_pointer_cast(d_x.data());
      a.positions = thrust::raw_pointer_cast(d_pos.data());
      a.inv_freq = thrust::raw_pointer_cast(d_inv.data());
      a.tokens = tokens, a.row_stride = stride, a.heads = heads, a.head_stride = dim, a.dim = dim;
      a.attention_factor = static_cast<float>(ref.attention_factor());
      a.pairs = layout == mla::ref::rope_layout::neox ? mla::cuda::rope_pairs::half_split
                                                      : mla::cuda::rope_pairs::interleaved;
      const mla::cuda::status st = mla::cuda::apply_rope(a);
      BOOST_TEST_REQUIRE(st.ok(), st.message());
      BOOST_TEST_REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
      thrust::host_vector<float> got = d_x;
      double err = 0, ref_norm = 0;
      for (int t = 0; t < tokens; ++t)
        for (int h = 0; h < heads; ++h) {
          std::vector<double> v(x.begin() + t * stride + h * dim, x.begin() + t * stride + (h + 1) * dim);
          ref.apply(v.data(), pos[t]);
          for (int i = 0; i < dim; ++i) {
            const double d = got[t * stride + h * dim + i] - v[i];
            err += d * d, ref_norm += v[i] * v[i];
          }
        }
      // float angles at positions up to 8191: a few ulps of the angle times the position.
      BOOST_TEST(std::sqrt(err / ref_norm) < 1e-4);
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_bad_configuration, *boost::unit_test::label("gpu")) {
  // Host-side validation runs before any launch, so it is testable without a device.
  mla::cuda::rope_args a;
  a.dim = 63, a.heads = 1, a.tokens = 1, a.head_stride = 64, a.row_stride = 64;
  BOOST_CHECK_THROW(mla::cuda::apply_rope(a), mla::error);
}

BOOST_AUTO_TEST_SUITE_END()
