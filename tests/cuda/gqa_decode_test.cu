#include <boost/test/unit_test.hpp>
#include <thrust/device_vector.h>
#include <thrust/host_vector.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "decode_test_support.cuh"
#include "gpu_precondition.cuh"
#include "mla/cuda/gqa_decode.cuh"

namespace {

using namespace mla_cuda_test;

struct gqa_case {
  std::vector<int> lens;
  int heads = 8, kv_heads = 2, head_dim = 64, page_size = 16, window = 0, splits = 0;
  bool sinks = false;
};

std::ostream& operator<<(std::ostream& os, const gqa_case& c) {
  os << "{lens";
  for (int l : c.lens) os << ' ' << l;
  return os << ", heads " << c.heads << "/" << c.kv_heads << " x " << c.head_dim << ", page " << c.page_size
            << ", window " << c.window << ", sinks " << c.sinks << ", splits " << c.splits << "}";
}

template <class Elem>
void check_gqa_case(const gqa_case& c, std::mt19937& rng) {
  const int batch = static_cast<int>(c.lens.size()), d = c.head_dim, row = c.kv_heads * d;
  const int group = c.heads / c.kv_heads;
  const mla::paged_layout layout = mla_cpu_test::shuffled_layout(c.lens, c.page_size, 2, rng);
  std::vector<std::vector<float>> k(static_cast<std::size_t>(batch)), v(static_cast<std::size_t>(batch));
  std::vector<int> first(static_cast<std::size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    k[static_cast<std::size_t>(b)] = random_elems<Elem>(static_cast<std::size_t>(c.lens[b]) * row, 1.0f, rng);
    v[static_cast<std::size_t>(b)] = random_elems<Elem>(static_cast<std::size_t>(c.lens[b]) * row, 1.0f, rng);
    first[static_cast<std::size_t>(b)] = mla::decode_visible_range(c.lens[b], c.window).begin;
  }
  const std::vector<float> q = random_elems<Elem>(static_cast<std::size_t>(batch) * c.heads * d, 1.0f, rng);
  std::vector<float> sinks(static_cast<std::size_t>(c.heads));
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (float& s : sinks) s = nd(rng);
  const float scale = 2.0f / std::sqrt(static_cast<float>(d));
  auto d_k = paged_to_device<Elem>(layout, k, row, first);
  auto d_v = paged_to_device<Elem>(layout, v, row, first);
  auto d_q = to_device<Elem>(q);
  thrust::device_vector<float> d_sinks(sinks.begin(), sinks.end());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  thrust::device_vector<float> d_out(static_cast<std::size_t>(batch) * c.heads * d, nan);
  thrust::device_vector<float> d_lse(static_cast<std::size_t>(batch) * c.heads, nan);
  device_pages pages(layout);

  mla::cuda::gqa_decode_args<Elem> a;
  a.q = thrust::raw_pointer_cast(d_q.data());
  a.k_cache = thrust::raw_pointer_cast(d_k.data());
  a.v_cache = thrust::raw_pointer_cast(d_v.data());
  a.pages = pages.view;
  a.max_seq_len = max_len(c.lens);
  a.num_heads = c.heads;
  a.num_kv_heads = c.kv_heads;
  a.head_dim = d;
  a.softmax_scale = scale;
  a.sliding_window = c.window;
  a.sinks = c.sinks ? thrust::raw_pointer_cast(d_sinks.data()) : nullptr;
  a.num_splits = c.splits;
  a.out = thrust::raw_pointer_cast(d_out.data());
  a.lse = thrust::raw_pointer_cast(d_lse.data());
  mla_cuda_test::run_decode_op<mla::cuda::gqa_decode_op<Elem>>(a);
  const thrust::host_vector<float> out = d_out, lse = d_lse;
  const mla::cuda::decode_plan plan = mla::cuda::gqa_decode_op<Elem>::plan(a);  // the splits and tiles it ran
  std::vector<double> qd(static_cast<std::size_t>(d));
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < c.heads; ++h) {
      const std::size_t bh = static_cast<std::size_t>(b) * c.heads + h;
      const int g = h / group;
      for (int i = 0; i < d; ++i) qd[static_cast<std::size_t>(i)] = q[bh * d + i];
      const auto ref = mla_cpu_test::rounded_reference_attention<double>(
          qd.data(), d, k[static_cast<std::size_t>(b)], row, g * d, v[static_cast<std::size_t>(b)], row, g * d, d,
          c.lens[b], c.window, scale, c.sinks ? &sinks[static_cast<std::size_t>(h)] : nullptr, plan.num_splits,
          plan.tile_tokens, round_to_elem<Elem>);
      check_row(&out[bh * d], lse[bh], ref, b, h);
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cuda_gqa_decode)

// gpt-oss (64/8 x 64, sinks, window 128), SmolLM2 (9/3 x 64), MHA and a 128-dim head; ragged, paged,
// split and unsplit.
BOOST_AUTO_TEST_CASE(matches_reference, *MLA_GPU_TEST) {
  const unsigned seed = mla_cpu_test::fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::vector<gqa_case> cases;
    gqa_case g;
    g.lens = {1500, 1, 129, 700};
    g.heads = 64, g.kv_heads = 8, g.page_size = 16, g.sinks = true;
    for (int w : {0, 128})
      for (int s : {0, 1, 9}) g.window = w, g.splits = s, cases.push_back(g);
    gqa_case sm;
    sm.lens = {333, 2, 64};
    sm.heads = 9, sm.kv_heads = 3, sm.page_size = 7;
    cases.push_back(sm);
    gqa_case mha;
    mha.lens = {200, 50};
    mha.heads = 4, mha.kv_heads = 4, mha.head_dim = 128, mha.page_size = 1, mha.sinks = true, mha.splits = 3;
    cases.push_back(mha);
    for (const gqa_case& c : cases) BOOST_TEST_CONTEXT(c) {
        check_gqa_case<__nv_bfloat16>(c, rng);
        check_gqa_case<__half>(c, rng);
      }
  }
}

BOOST_AUTO_TEST_CASE(rejects_bad_configuration, *boost::unit_test::label("gpu")) {
  using op = mla::cuda::gqa_decode_op<__half>;
  mla::cuda::gqa_decode_args<__half> a;
  a.num_heads = 12, a.num_kv_heads = 8, a.head_dim = 64, a.softmax_scale = 0.125f, a.pages.page_size = 16;
  BOOST_TEST(op::unsupported_reason(a).find("multiple of num_kv_heads") != std::string::npos);
  a.num_heads = 16, a.head_dim = 72;
  BOOST_TEST(op::unsupported_reason(a).find("head_dim 72") != std::string::npos);
  BOOST_CHECK_THROW(op::run(a, nullptr, 0), mla::error);
}

BOOST_AUTO_TEST_SUITE_END()
