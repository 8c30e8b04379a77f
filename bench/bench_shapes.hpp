// The MLA shapes the decode benches register, all taken from mla::supported_shapes (the one list: a shape that
// is not in it cannot be benchmarked, since dispatch would refuse it too):
//  - the shapes of the real models' conversions, picked from the list by (head_dim, rope_dim, latent_rank);
//  - a sweep: the (96, 32) split (64 content + 32 RoPE, what the head-64 models convert to) at every fourth
//    supported latent rank, 96 ... 736, i.e. cache reductions from about 88 % to 25 % for gpt-oss.
#pragma once

#include <tuple>

#include "mla/core/shape.hpp"
#include "mla/core/supported_shapes.hpp"

namespace bench_shapes {

// Keeps the shapes of split (HeadDim, RopeDim) whose latent rank is one of Ranks.
template <int HeadDim, int RopeDim, int... Ranks>
struct split_with_ranks {
  template <class S>
  static constexpr bool keep = S::head_dim == HeadDim&& S::rope_dim == RopeDim && ((S::latent_rank == Ranks) || ...);
};
// Keeps the shapes of split (HeadDim, RopeDim) whose latent rank is `Offset` modulo `Step`.
template <int HeadDim, int RopeDim, int Step, int Offset>
struct split_rank_sweep {
  template <class S>
  static constexpr bool keep = S::head_dim == HeadDim&& S::rope_dim == RopeDim&& S::latent_rank % Step == Offset;
};

template <class Pred>
using supported_where = mla::filter_shapes_t<mla::supported_shapes, Pred>;

// gpt-oss (64 query heads, 8 KV heads x 64; GQA cache 1024 per token): 75 % and 50 % MLA caches.
using gpt_oss_shapes = supported_where<split_with_ranks<96, 32, 224, 480>>;
using gpt_oss_50 = mla::mla_shape<96, 32, 480>;
using gpt_oss_75 = mla::mla_shape<96, 32, 224>;
// SmolLM2 (9 query heads, 3 KV heads x 64; GQA cache 384 per token): 75 % and 50 % MLA caches.
using smollm2_shapes = supported_where<split_with_ranks<96, 32, 64, 160>>;
using smollm2_50 = mla::mla_shape<96, 32, 160>;
using smollm2_75 = mla::mla_shape<96, 32, 64>;
// DeepSeek-V3 (kv_lora_rank 512, 64 RoPE).
using deepseek_shapes = supported_where<split_with_ranks<192, 64, 512>>;
using deepseek = mla::mla_shape<192, 64, 512>;
// The latent-rank sweep of the (96, 32) split.
using rank_sweep_shapes = supported_where<split_rank_sweep<96, 32, 128, 96>>;

static_assert(std::tuple_size_v<gpt_oss_shapes> == 2 && mla::contains_shape_v<gpt_oss_50, gpt_oss_shapes> &&
                  mla::contains_shape_v<gpt_oss_75, gpt_oss_shapes>,
              "bench: the gpt-oss shapes must be in mla::supported_shapes");
static_assert(std::tuple_size_v<smollm2_shapes> == 2 && mla::contains_shape_v<smollm2_50, smollm2_shapes> &&
                  mla::contains_shape_v<smollm2_75, smollm2_shapes>,
              "bench: the SmolLM2 shapes must be in mla::supported_shapes");
static_assert(std::tuple_size_v<deepseek_shapes> == 1 && mla::contains_shape_v<deepseek, deepseek_shapes>,
              "bench: the DeepSeek-V3 shape must be in mla::supported_shapes");
static_assert(std::tuple_size_v<rank_sweep_shapes> == 6, "bench: the rank sweep is 96, 224, ..., 736");

}  // namespace bench_shapes
