// Helpers of the CUDA decode tests: random paged problems in bf16/fp16 (host copies hold the exact stored
// values, so the float64 reference sees what the kernel sees), device buffers (Thrust), NaN poisoning, and the
// check of a kernel's rows.
//
// The check: the float64 reference of tests/cpu/rounded_reference.hpp rounds the softmax weights P to the cache
// element type where the kernel does (per tile, against the running maximum, in the plan's splits), so the only
// difference left is fp32 arithmetic; each row carries its own bound on that (a few 1e-4 relative at most, far
// below a key's share of the output). The fixed bounds this replaced (bf16 8e-3, fp16 1.5e-3 relative, against
// an unrounded reference) accepted a kernel that dropped a typical key of a few hundred; the CPU test
// cpu_rounded_reference checks that this bound rejects it.
#pragma once

#include <boost/test/unit_test.hpp>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <thrust/device_vector.h>
#include <thrust/host_vector.h>

#include <cmath>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "../cpu/rounded_reference.hpp"
#include "../cpu/test_support.hpp"
#include "mla/core/paged_cache.hpp"
#include "mla/cuda/status.cuh"

namespace mla_cuda_test {

template <class Elem>
const char* elem_name() {
  return std::is_same_v<Elem, __nv_bfloat16> ? "bf16" : "fp16";
}

template <class Elem>
Elem to_elem(float x) {
  if constexpr (std::is_same_v<Elem, __nv_bfloat16>)
    return __float2bfloat16(x);
  else
    return __float2half(x);
}

template <class Elem>
float elem_to_float(Elem x) {
  if constexpr (std::is_same_v<Elem, __nv_bfloat16>)
    return __bfloat162float(x);
  else
    return __half2float(x);
}

// N(0, sd) values rounded to what Elem stores.
template <class Elem>
std::vector<float> random_elems(std::size_t n, float sd, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = elem_to_float(to_elem<Elem>(nd(rng)));
  return v;
}

template <class Elem>
thrust::device_vector<Elem> to_device(const std::vector<float>& v) {
  thrust::host_vector<Elem> h(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) h[i] = to_elem<Elem>(v[i]);
  return thrust::device_vector<Elem>(h);
}

// Paged storage [num_pages, page_size, row_elems] from dense per-sequence rows [len][row_elems]; every
// slot no token of the window occupies is NaN, so a kernel that reads one produces NaN.
template <class Elem>
thrust::device_vector<Elem> paged_to_device(const mla::paged_layout& layout,
                                            const std::vector<std::vector<float>>& dense, int row_elems,
                                            const std::vector<int>& first_visible) {
  thrust::host_vector<Elem> h(static_cast<std::size_t>(layout.num_pages) * layout.page_size * row_elems,
                              to_elem<Elem>(std::numeric_limits<float>::quiet_NaN()));
  const mla::page_table_view v = layout.view();
  for (int b = 0; b < layout.num_seqs(); ++b)
    for (int t = first_visible[static_cast<std::size_t>(b)]; t < layout.seq_lens[static_cast<std::size_t>(b)]; ++t) {
      const std::ptrdiff_t off = mla::token_row_offset(v, b, t, row_elems);
      for (int i = 0; i < row_elems; ++i)
        h[static_cast<std::size_t>(off + i)] =
            to_elem<Elem>(dense[static_cast<std::size_t>(b)][static_cast<std::size_t>(t) * row_elems + i]);
    }
  return thrust::device_vector<Elem>(h);
}

// The page table and lengths of a layout in device memory, and a view of them.
struct device_pages {
  thrust::device_vector<mla::page_index> table;
  thrust::device_vector<std::int32_t> lens;
  mla::page_table_view view;
  explicit device_pages(const mla::paged_layout& l) : table(l.page_table), lens(l.seq_lens) {
    view = l.view();
    view.page_table = thrust::raw_pointer_cast(table.data());
    view.seq_lens = thrust::raw_pointer_cast(lens.data());
  }
};

inline int max_len(const std::vector<int>& lens) {
  int m = 0;
  for (int l : lens) m = std::max(m, l);
  return m;
}

// Elem's rounding of a float (round to nearest even, subnormals included): the kernels' rounding of P.
template <class Elem>
float round_to_elem(float x) {
  return elem_to_float(to_elem<Elem>(x));
}

// Checks a kernel's output row [width] and lse of row (b, h) against the rounded reference and its bound; returns
// the distance over the bound (<= 1 passes).
inline double check_row(const float* out, float lse, const mla_cpu_test::rounded_reference_row<double>& ref, int b,
                        int h) {
  const double e = mla_cpu_test::row_distance(out, ref.out);
  const double le = std::abs(static_cast<double>(lse) - ref.lse);
  BOOST_TEST_REQUIRE(std::isfinite(e), "row (" << b << ", " << h << ") has NaN/inf or was not written");
  BOOST_TEST_REQUIRE(std::isfinite(static_cast<double>(lse)), "lse (" << b << ", " << h << ") not written");
  BOOST_TEST(e <= ref.out_bound, "row (" << b << ", " << h << "): distance " << e << ", bound " << ref.out_bound);
  BOOST_TEST(le <= ref.lse_bound, "lse (" << b << ", " << h << "): error " << le << ", bound " << ref.lse_bound);
  return std::max(e / ref.out_bound, le / ref.lse_bound);
}

// Runs a decode operator on args `a` with a workspace one past its request, requiring that it accepts the
// configuration, succeeds and leaves no CUDA error behind.
template <class Op, class Args>
void run_decode_op(const Args& a) {
  BOOST_TEST_REQUIRE(Op::can_implement(a), Op::unsupported_reason(a));
  thrust::device_vector<unsigned char> ws(Op::workspace_size(a) + 16);
  const mla::cuda::status st = Op::run(a, thrust::raw_pointer_cast(ws.data()), ws.size());
  BOOST_TEST_REQUIRE(st.ok(), st.message());
  BOOST_TEST_REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace mla_cuda_test
