#include <boost/test/unit_test.hpp>
#include <thrust/device_vector.h>
#include <thrust/fill.h>
#include <thrust/host_vector.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "decode_test_support.cuh"
#include "gpu_precondition.cuh"
#include "mla/core/dispatch.hpp"
#include "mla/core/supported_shapes.hpp"
#include "mla/cuda/mla_decode.cuh"

namespace {

using namespace mla_cuda_test;

struct mla_case {
  std::vector<int> lens;
  int heads = 16;
  int page_size = 16;
  int window = 0;
  bool sinks = false;
  int splits = 0;
  int heads_per_block = 0;  // 0: automatic
};

std::ostream& operator<<(std::ostream& os, const mla_case& c) {
  os << "{lens";
  for (int l : c.lens) os << ' ' << l;
  return os << ", heads " << c.heads << ", page " << c.page_size << ", window " << c.window << ", sinks " << c.sinks
            << ", splits " << c.splits << ", heads per CTA " << c.heads_per_block << "}";
}

// Runs one case on the device and checks every row against the rounded float64 reference; returns the worst
// ratio of a row's distance to its bound.
template <class Elem>
double check_mla_case(mla::runtime_shape shape, const mla_case& c, std::mt19937& rng) {
  const int rank = shape.latent_rank, rope = shape.rope_dim, width = rank + rope, heads = c.heads;
  const int batch = static_cast<int>(c.lens.size());
  const mla::paged_layout layout = mla_cpu_test::shuffled_layout(c.lens, c.page_size, 3, rng);
  std::vector<std::vector<float>> rows(static_cast<std::size_t>(batch));
  std::vector<int> first(static_cast<std::size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    rows[static_cast<std::size_t>(b)] = random_elems<Elem>(static_cast<std::size_t>(c.lens[b]) * width, 1.0f, rng);
    first[static_cast<std::size_t>(b)] = mla::decode_visible_range(c.lens[b], c.window).begin;
  }
  const std::vector<float> q_lat = random_elems<Elem>(static_cast<std::size_t>(batch) * heads * rank, 1.0f, rng);
  const std::vector<float> q_pe = random_elems<Elem>(static_cast<std::size_t>(batch) * heads * rope, 1.0f, rng);
  std::vector<float> sinks(static_cast<std::size_t>(heads));
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (float& s : sinks) s = nd(rng);
  if (heads > 1) sinks[1] = -std::numeric_limits<float>::infinity();  // "no sink" for one head
  // Logits with a spread of a few units: scale ~ 2 / sqrt(width) on unit-variance rows.
  const float scale = 2.0f / std::sqrt(static_cast<float>(width));

  auto d_cache = paged_to_device<Elem>(layout, rows, width, first);
  auto d_ql = to_device<Elem>(q_lat);
  auto d_qp = to_device<Elem>(q_pe);
  thrust::device_vector<float> d_sinks(sinks.begin(), sinks.end());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  thrust::device_vector<float> d_out(static_cast<std::size_t>(batch) * heads * rank, nan);
  thrust::device_vector<float> d_lse(static_cast<std::size_t>(batch) * heads, nan);
  device_pages pages(layout);

  mla::cuda::mla_decode_args<Elem> a;
  a.q_latent = thrust::raw_pointer_cast(d_ql.data());
  a.q_pe = thrust::raw_pointer_cast(d_qp.data());
  a.cache = thrust::raw_pointer_cast(d_cache.data());
  a.pages = pages.view;
  a.max_seq_len = max_len(c.lens);
  a.num_heads = heads;
  a.shape = shape;
  a.softmax_scale = scale;
  a.sliding_window = c.window;
  a.sinks = c.sinks ? thrust::raw_pointer_cast(d_sinks.data()) : nullptr;
  a.num_splits = c.splits;
  a.heads_per_block = c.heads_per_block;
  a.out = thrust::raw_pointer_cast(d_out.data());
  a.lse = thrust::raw_pointer_cast(d_lse.data());
  mla_cuda_test::run_decode_op<mla::cuda::mla_decode_op<Elem>>(a);
  const thrust::host_vector<float> out = d_out, lse = d_lse;
  const mla::cuda::decode_plan plan = mla::cuda::mla_decode_op<Elem>::plan(a);  // the splits and tiles it ran

  double worst = 0;
  std::vector<double> q(static_cast<std::size_t>(width));
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < heads; ++h) {
      const std::size_t bh = static_cast<std::size_t>(b) * heads + h;
      for (int i = 0; i < width; ++i)
        q[static_cast<std::size_t>(i)] = i < rank ? q_lat[bh * rank + i] : q_pe[bh * rope + (i - rank)];
      const auto& kv = rows[static_cast<std::size_t>(b)];
      const auto ref = mla_cpu_test::rounded_reference_attention<double>(
          q.data(), width, kv, width, 0, kv, width, 0, rank, c.lens[b], c.window, scale,
          c.sinks ? &sinks[static_cast<std::size_t>(h)] : nullptr, plan.num_splits, plan.tile_tokens,
          round_to_elem<Elem>);
      worst = std::max(worst, check_row(&out[bh * rank], lse[bh], ref, b, h));
    }
  return worst;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cuda_mla_decode)

// Every supported shape, with a random ragged paged batch each (page size, heads, window, sinks and split
// count drawn per shape; both element types alternate).
BOOST_AUTO_TEST_CASE(every_supported_shape, *MLA_GPU_TEST) {
  const unsigned seed = mla_cpu_test::fresh_seed();
  std::mt19937 rng(seed);
  double worst_bf16 = 0, worst_fp16 = 0;
  int index = 0;
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (const mla::runtime_shape& s : mla::supported_runtime_shapes()) {
      auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      mla_case c;
      const int batch = pick(1, 4);
      for (int b = 0; b < batch; ++b) c.lens.push_back(pick(1, 300));
      const int heads_choice[] = {1, 9, 16, 24, 64, 128};
      c.heads = heads_choice[pick(0, 5)];
      const int pages[] = {1, 3, 16, 64};
      c.page_size = pages[pick(0, 3)];
      c.window = pick(0, 2) == 0 ? pick(1, 100) : 0;
      c.sinks = pick(0, 1) == 1;
      const int splits[] = {0, 1, 3, 7};
      c.splits = splits[pick(0, 3)];
      BOOST_TEST_CONTEXT("shape (" << s.head_dim << ", " << s.rope_dim << ", " << s.latent_rank << ") " << c) {
        if (index++ % 2 == 0)
          worst_bf16 = std::max(worst_bf16, check_mla_case<__nv_bfloat16>(s, c, rng));
        else
          worst_fp16 = std::max(worst_fp16, check_mla_case<__half>(s, c, rng));
      }
    }
  }
  BOOST_TEST_MESSAGE("worst distance / bound over all shapes: bf16 " << worst_bf16 << ", fp16 " << worst_fp16);
}

// The gpt-oss conversion shape with 64 heads over a long ragged batch: many tiles, many splits, sinks and
// the 128-token window; both element types.
BOOST_AUTO_TEST_CASE(gpt_oss_long_context, *MLA_GPU_TEST) {
  const unsigned seed = mla_cpu_test::fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (int window : {0, 128})
      for (int splits : {0, 1, 13}) {
        mla_case c;
        c.lens = {4099, 1, 777, 2048};
        c.heads = 64;
        c.page_size = 64;
        c.window = window;
        c.sinks = true;
        c.splits = splits;
        BOOST_TEST_CONTEXT(c) {
          check_mla_case<__nv_bfloat16>({96, 32, 480}, c, rng);
          check_mla_case<__half>({96, 32, 224}, c, rng);
        }
      }
  }
}

// The heads of one step spread over several CTAs (16 or 32 per CTA instead of all 64), 128 heads too.
BOOST_AUTO_TEST_CASE(heads_per_block, *MLA_GPU_TEST) {
  const unsigned seed = mla_cpu_test::fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (int hpb : {16, 32, 64})
      for (int heads : {64, 128}) {
        mla_case c;
        c.lens = {1000, 3, 257};
        c.heads = heads;
        c.page_size = 16;
        c.sinks = true;
        c.window = heads == 64 ? 0 : 200;
        c.heads_per_block = hpb;
        BOOST_TEST_CONTEXT(c) { check_mla_case<__nv_bfloat16>({96, 32, 480}, c, rng); }
      }
  }
}

// More splits than tiles (trailing empty splits) and a single-token sequence.
BOOST_AUTO_TEST_CASE(empty_splits, *MLA_GPU_TEST) {
  const unsigned seed = mla_cpu_test::fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla_case c;
    c.lens = {1, 33, 64};
    c.heads = 9;
    c.page_size = 5;
    c.sinks = true;
    c.splits = 8;
    check_mla_case<__nv_bfloat16>({192, 64, 512}, c, rng);
  }
}

// Configuration errors are found on the host before any launch (no device needed).
BOOST_AUTO_TEST_CASE(rejects_bad_configuration, *boost::unit_test::label("gpu")) {
  using op = mla::cuda::mla_decode_op<__nv_bfloat16>;
  mla::cuda::mla_decode_args<__nv_bfloat16> a;
  a.shape = {64, 64, 256};  // the audit's degenerate split: not in the list
  a.num_heads = 8;
  a.softmax_scale = 0.125f;
  a.pages.page_size = 16;
  BOOST_TEST(!op::can_implement(a));
  const std::string why = op::unsupported_reason(a);
  BOOST_TEST(why.find("not supported") != std::string::npos, why);
  BOOST_TEST(why.find("head_dim=192, rope_dim=64") != std::string::npos, "lists the supported shapes: " << why);
  BOOST_CHECK_THROW(op::run(a, nullptr, 0), mla::error);
  a.shape = {96, 32, 480};
  a.softmax_scale = std::numeric_limits<float>::quiet_NaN();
  BOOST_TEST(op::unsupported_reason(a).find("softmax_scale") != std::string::npos);
  a.softmax_scale = 0.125f;
  a.num_heads = 0;
  BOOST_TEST(op::unsupported_reason(a).find("num_heads") != std::string::npos);
  a.num_heads = 8;
  a.heads_per_block = 48;
  BOOST_TEST(op::unsupported_reason(a).find("heads_per_block") != std::string::npos);
  a.heads_per_block = 0;
  a.pages.num_seqs = 2;  // a batch with null pointers
  BOOST_TEST(op::unsupported_reason(a).find("non-null") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
