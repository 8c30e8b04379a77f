#include <boost/test/unit_test.hpp>
#include <thrust/device_vector.h>
#include <thrust/host_vector.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "decode_test_support.cuh"
#include "gpu_precondition.cuh"
#include "mla/cuda/latent_append.cuh"
#include "mla/reference/rope.hpp"

BOOST_AUTO_TEST_SUITE(cuda_latent_append)

// Tokens of several sequences written into shuffled pages: the latent part is copied, the RoPE part is
// rotated at the token's position (float64 host formula, both pair layouts, YaRN attention factor), and
// no other slot is touched (the NaN poison survives bit for bit).
template <class Elem>
void check_append(mla::cuda::rope_pairs pairs, std::mt19937& rng) {
  const mla::runtime_shape shape{96, 32, 224};
  const int rank = shape.latent_rank, rope = shape.rope_dim, width = rank + rope;
  const std::vector<int> lens = {300, 5, 64};
  const mla::paged_layout layout = mla_cpu_test::shuffled_layout(lens, 16, 2, rng);
  // New tokens: the last 3 positions of each sequence, in a shuffled order.
  std::vector<int> seq, pos;
  for (int b = 0; b < 3; ++b)
    for (int t = lens[b] - 3; t < lens[b]; ++t) seq.push_back(b), pos.push_back(t);
  const int tokens = static_cast<int>(seq.size());
  std::vector<int> order(static_cast<std::size_t>(tokens));
  for (int i = 0; i < tokens; ++i) order[static_cast<std::size_t>(i)] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<int> s2, p2;
  for (int i : order) s2.push_back(seq[static_cast<std::size_t>(i)]), p2.push_back(pos[static_cast<std::size_t>(i)]);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> latent(static_cast<std::size_t>(tokens) * rank), kpe(static_cast<std::size_t>(tokens) * rope);
  for (float& x : latent) x = nd(rng);
  for (float& x : kpe) x = nd(rng);
  mla::ref::rope_config cfg = mla::ref::rope_config::gpt_oss();
  cfg.dim = rope;
  const mla::ref::rope<double> ref(cfg);
  std::vector<float> inv(ref.inv_freq().begin(), ref.inv_freq().end());
  const double att = ref.attention_factor();

  const float nan = std::numeric_limits<float>::quiet_NaN();
  thrust::host_vector<Elem> poison(static_cast<std::size_t>(layout.num_pages) * layout.page_size * width,
                                   mla_cuda_test::to_elem<Elem>(nan));
  thrust::device_vector<Elem> d_cache = poison;
  thrust::device_vector<float> d_lat(latent.begin(), latent.end()), d_kpe(kpe.begin(), kpe.end()),
      d_inv(inv.begin(), inv.end());
  thrust::device_vector<int> d_seq(s2.begin(), s2.end()), d_pos(p2.begin(), p2.end());
  mla_cuda_test::device_pages pages(layout);
  mla::cuda::latent_append_args<Elem> a;
  a.latent = thrust::raw_pointer_cast(d_lat.data());
  a.k_pe = thrust::raw_pointer_cast(d_kpe.data());
  a.seq_ids = thrust::raw_pointer_cast(d_seq.data());
  a.positions = thrust::raw_pointer_cast(d_pos.data());
  a.inv_freq = thrust::raw_pointer_cast(d_inv.data());
  a.attention_factor = static_cast<float>(att);
  a.pairs = pairs;
  a.tokens = tokens;
  a.shape = shape;
  a.cache = thrust::raw_pointer_cast(d_cache.data());
  a.pages = pages.view;
  const mla::cuda::status st = mla::cuda::latent_append(a);
  BOOST_TEST_REQUIRE(st.ok(), st.message());
  BOOST_TEST_REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const thrust::host_vector<Elem> got = d_cache;
  std::vector<bool> written(got.size(), false);
  const mla::page_table_view v = layout.view();
  const double ulp = std::is_same_v<Elem, __nv_bfloat16> ? 1.0 / 128 : 1.0 / 1024;
  for (int n = 0; n < tokens; ++n) {
    const std::ptrdiff_t off =
        mla::token_row_offset(v, s2[static_cast<std::size_t>(n)], p2[static_cast<std::size_t>(n)], width);
    const int half = rope / 2;
    for (int e = 0; e < width; ++e) {
      double want;
      if (e < rank) {
        want = latent[static_cast<std::size_t>(n) * rank + e];
      } else {
        const int j = e - rank;
        const bool il = pairs == mla::cuda::rope_pairs::interleaved;
        const int pair = il ? j / 2 : j % half;
        const bool firstp = il ? j % 2 == 0 : j < half;
        const double xa = kpe[static_cast<std::size_t>(n) * rope + (il ? 2 * pair : pair)];
        const double xb = kpe[static_cast<std::size_t>(n) * rope + (il ? 2 * pair + 1 : pair + half)];
        const double ang = static_cast<double>(p2[static_cast<std::size_t>(n)]) * inv[static_cast<std::size_t>(pair)];
        const double c = std::cos(ang) * att, s = std::sin(ang) * att;
        want = firstp ? xa * c - xb * s : xb * c + xa * s;
      }
      const double have = mla_cuda_test::elem_to_float(got[static_cast<std::size_t>(off + e)]);
      BOOST_TEST(std::abs(have - want) <= ulp * std::max(1.0, std::abs(want)),
                 "token " << n << " element " << e << ": " << have << " vs " << want);
      written[static_cast<std::size_t>(off + e)] = true;
    }
  }
  std::size_t touched = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!written[i] && std::memcmp(&got[i], &poison[i], sizeof(Elem)) != 0) ++touched;
  BOOST_TEST(touched == 0u, touched << " cache elements outside the new rows were overwritten");
}

BOOST_AUTO_TEST_CASE(writes_rotated_rows, *MLA_GPU_TEST) {
  const unsigned seed = mla_cpu_test::fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (auto pairs : {mla::cuda::rope_pairs::interleaved, mla::cuda::rope_pairs::half_split}) {
      check_append<__nv_bfloat16>(pairs, rng);
      check_append<__half>(pairs, rng);
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_bad_configuration, *boost::unit_test::label("gpu")) {
  mla::cuda::latent_append_args<__half> a;
  a.shape = {64, 64, 128};
  a.pages.page_size = 16;
  a.tokens = 1;
  BOOST_CHECK_THROW(mla::cuda::latent_append(a), mla::error);
  a.shape = {96, 32, 128};
  BOOST_CHECK_THROW(mla::cuda::latent_append(a), mla::error);  // null pointers
}

BOOST_AUTO_TEST_SUITE_END()
