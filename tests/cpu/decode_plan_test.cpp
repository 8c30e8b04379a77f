// The CUDA decode launch plan (mla/cuda/decode_plan.hpp) is plain C++: its tiling, head blocks, split
// count, shared memory and workspace are checked here on the CPU for every supported shape, so that a
// machine without a GPU still tests what the host operators decide before a launch.
#include <boost/test/unit_test.hpp>

#include <string>

#include "expect_error.hpp"
#include "mla/core/dispatch.hpp"
#include "mla/core/paged_cache.hpp"
#include "mla/cuda/decode_plan.hpp"

namespace {

mla::cuda::decode_problem mla_problem(const mla::runtime_shape& s, int heads, int batch, int len) {
  mla::cuda::decode_problem p;
  p.batch = batch;
  p.heads_per_group = heads;
  p.groups = 1;
  p.key_width = s.latent_rank + s.rope_dim;
  p.value_width = s.latent_rank;
  p.max_seq_len = len;
  return p;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cuda_decode_plan)

// Every supported shape with 1 to 128 heads gets a plan that fits the H100/H200 limits (227 KiB of shared
// memory, <= 128 accumulators per thread), covers all its heads, and whose value pairs cover the rank.
BOOST_AUTO_TEST_CASE(every_supported_shape_has_a_plan) {
  for (const mla::runtime_shape& s : mla::supported_runtime_shapes())
    for (int heads : {1, 9, 16, 17, 64, 128}) {
      BOOST_TEST_CONTEXT("shape " << s.latent_rank << "+" << s.rope_dim << ", heads " << heads) {
        const mla::cuda::decode_plan pl = mla::cuda::make_decode_plan(mla_problem(s, heads, 64, 8192), "test");
        BOOST_TEST(pl.smem_bytes <= 227u * 1024u);
        BOOST_TEST(pl.m_tiles * pl.pairs_per_warp * 8 <= mla::cuda::decode_max_accumulators);
        BOOST_TEST(pl.pairs_per_warp * 16 * mla::cuda::decode_warps >= s.latent_rank);
        BOOST_TEST(pl.heads_per_block <= 16 * pl.m_tiles);
        BOOST_TEST(pl.head_blocks * pl.heads_per_block >= heads);
        BOOST_TEST((pl.head_blocks - 1) * pl.heads_per_block < heads);
        BOOST_TEST(pl.num_splits >= 1);
        BOOST_TEST(pl.num_splits <= mla::cuda::decode_max_splits);
      }
    }
}

// The gpt-oss 50 % shape at 64 heads: one CTA holds all 64 heads (the cache is read once per step), and the
// shared memory is the documented sum.
BOOST_AUTO_TEST_CASE(gpt_oss_plan) {
  const mla::cuda::decode_plan pl = mla::cuda::make_decode_plan(mla_problem({96, 32, 480}, 64, 64, 8192), "test");
  BOOST_TEST(pl.m_tiles == 4);
  BOOST_TEST(pl.pairs_per_warp == 4);  // 30 pairs of 16 channels over 8 warps
  BOOST_TEST(pl.head_blocks == 1);
  const std::size_t ld = 512 + 8;
  BOOST_TEST(pl.smem_bytes == (64 + 64) * ld * 2 + 64 * 36 * 4 + 64 * 40 * 2 + 3 * 64 * 4);
  // batch 64 on 132 SMs with one CTA per SM: 2 splits fill 128 of the 132 slots in one round.
  BOOST_TEST(mla::cuda::decode_ctas_per_sm(pl.smem_bytes) == 1);
  BOOST_TEST(pl.num_splits == 2);
  BOOST_TEST(pl.workspace_bytes == std::size_t{64} * 2 * 64 * (480 + 1) * sizeof(float));
  // Few heads: two CTAs per SM, 264 slots, 4 splits of 2048 keys in one round.
  const mla::cuda::decode_plan few = mla::cuda::make_decode_plan(mla_problem({96, 32, 480}, 8, 64, 8192), "test");
  BOOST_TEST(mla::cuda::decode_ctas_per_sm(few.smem_bytes) == 2);
  BOOST_TEST(few.num_splits == 4);
}

// Split counts: requested counts are capped by tiles and by the maximum; automatic splits never cut a
// sequence into pieces shorter than 256 keys; the window bounds the visible keys.
BOOST_AUTO_TEST_CASE(split_counts) {
  auto p = mla_problem({96, 32, 224}, 64, 1, 100);
  p.requested_splits = 50;
  BOOST_TEST(mla::cuda::make_decode_plan(p, "t").num_splits == 4);  // 100 keys = 4 tiles of 32
  p.max_seq_len = 100000;
  p.requested_splits = 1000;
  BOOST_TEST(mla::cuda::make_decode_plan(p, "t").num_splits == mla::cuda::decode_max_splits);
  p.requested_splits = 0;
  p.max_seq_len = 1000;
  BOOST_TEST(mla::cuda::make_decode_plan(p, "t").num_splits == 3);  // 1000 / 256
  p.max_seq_len = 100000;
  p.sliding_window = 128;
  BOOST_TEST(mla::cuda::make_decode_plan(p, "t").num_splits == 1);  // 128 visible keys
  p.sliding_window = 0;
  p.batch = 1056;  // 4 full rounds of 2 x 132 CTAs: splitting only adds partials
  BOOST_TEST(mla::cuda::make_decode_plan(p, "t").num_splits == 1);
  BOOST_TEST(mla::cuda::make_decode_plan(p, "t").workspace_bytes == 0u);
}

// The split ranges the kernel takes (split_range with the kernel's tile) cover the visible keys exactly once,
// in tile-aligned pieces, for the plans' split counts.
BOOST_AUTO_TEST_CASE(split_ranges_cover_the_window) {
  for (int len : {1, 31, 32, 33, 1000, 8192, 8193})
    for (int window : {0, 1, 128, 5000}) {
      auto p = mla_problem({96, 32, 480}, 64, 3, len);
      p.sliding_window = window;
      const int splits = mla::cuda::make_decode_plan(p, "t").num_splits;
      const mla::token_range vis = mla::decode_visible_range(len, window);
      int next = vis.begin;
      for (int s = 0; s < splits; ++s) {
        const mla::token_range r = mla::split_range(vis, splits, s, mla::cuda::decode_tile_tokens);
        if (r.empty()) {  // a split with nothing to do only after the keys are covered
          BOOST_TEST(next == vis.end, "len " << len << " window " << window << ": split " << s << " is empty");
          continue;
        }
        BOOST_TEST(r.begin == next);
        BOOST_TEST((r.begin - vis.begin) % mla::cuda::decode_tile_tokens == 0);
        next = r.end;
      }
      BOOST_TEST(next == vis.end, "len " << len << " window " << window);
    }
}

// GQA plans: one CTA per KV head; the gpt-oss group of 8 heads fits one m-tile.
BOOST_AUTO_TEST_CASE(gqa_plan) {
  mla::cuda::decode_problem p;
  p.batch = 64, p.heads_per_group = 8, p.groups = 8, p.key_width = 64, p.value_width = 64;
  p.separate_values = true, p.max_seq_len = 8192;
  const mla::cuda::decode_plan pl = mla::cuda::make_decode_plan(p, "t");
  BOOST_TEST(pl.m_tiles == 1);
  BOOST_TEST(pl.head_blocks == 8);
  BOOST_TEST(pl.pairs_per_warp == 1);
  BOOST_TEST(pl.tile_tokens == mla::cuda::decode_wide_tile_tokens);  // 4 blocks x 1 m-tile x 2 k-slices
  BOOST_TEST(mla::cuda::decode_score_slices(1, 64) == 2);
  BOOST_TEST(mla::cuda::decode_score_slices(4, 64) == 0);  // 16 (block, m-tile) items > 8 warps
  // A group of 64 heads (4 m-tiles) falls back to 32-key tiles.
  p.heads_per_group = 64, p.groups = 1;
  BOOST_TEST(mla::cuda::make_decode_plan(p, "t").tile_tokens == mla::cuda::decode_tile_tokens);
  // MLA rows always take 32-key tiles.
  BOOST_TEST(mla::cuda::make_decode_plan(mla_problem({96, 32, 480}, 8, 64, 8192), "t").tile_tokens == 32);
  BOOST_TEST(pl.num_splits == 1);  // 512 CTAs already fill two waves
}

// Unsupported widths and bad values are named in the error.
BOOST_AUTO_TEST_CASE(rejects_bad_problems) {
  auto p = mla_problem({96, 32, 480}, 64, 1, 10);
  p.key_width = 100;
  mla::test::expect_error([&] { (void)mla::cuda::make_decode_plan(p, "owner"); }, {"key row width 100"});
  p = mla_problem({96, 32, 480}, 64, 1, 10);
  p.value_width = 800;
  p.key_width = 832;
  BOOST_CHECK_THROW((void)mla::cuda::make_decode_plan(p, "owner"), mla::error);
  p = mla_problem({96, 32, 480}, 64, 1, 10);
  p.max_smem = 1024;
  BOOST_CHECK_THROW((void)mla::cuda::make_decode_plan(p, "owner"), mla::error);
  BOOST_TEST(mla::cuda::decode_pairs_per_warp(24) == 0);
  BOOST_TEST(mla::cuda::decode_pairs_per_warp(768) == 6);
}

BOOST_AUTO_TEST_SUITE_END()
