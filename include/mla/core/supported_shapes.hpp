// mla::supported_shapes: the one list of MLA shapes that runtime dispatch, the typed tests, the
// benchmark registrations and the kernels are instantiated for. Adding a shape is one line here.
#pragma once

#include <tuple>
#include <utility>

#include "mla/core/shape.hpp"

namespace mla {

// Latent ranks supported for the head-dim-64 conversions: 32, 64, ..., 768 (step 32).
//
// Why these: the KV cache of the source models is gpt-oss 2 * 8 * 64 = 1024 and SmolLM2 2 * 3 * 64 = 384
// elements per token and layer. An MLA cache holds latent_rank + rope_dim. For gpt-oss every reduction
// from 25 % to 87.5 % in steps of 12.5 % lands on a supported rank exactly with RoPE 32 or 64
// (e.g. 50 %: 512 = 480 + 32 = 448 + 64; 25 %: 768 = 736 + 32 = 704 + 64). Budgets that fall between
// two ranks (SmolLM2 at 62.5 % with RoPE 32 needs 112) take the next rank below, or pad.
inline constexpr int min_supported_latent_rank = 32;
inline constexpr int max_supported_latent_rank = 768;
inline constexpr int supported_latent_rank_step = 32;

namespace detail {
template <int HeadDim, int RopeDim, int... Steps>
auto rank_sweep(std::integer_sequence<int, Steps...>)
    -> std::tuple<mla_shape<HeadDim, RopeDim, min_supported_latent_rank + Steps * supported_latent_rank_step>...>;

// mla_shape<HeadDim, RopeDim, r> for every supported latent rank r.
template <int HeadDim, int RopeDim>
using latent_rank_sweep = decltype(rank_sweep<HeadDim, RopeDim>(
    std::make_integer_sequence<
        int, (max_supported_latent_rank - min_supported_latent_rank) / supported_latent_rank_step + 1>{}));

template <class... Tuples>
using tuple_cat_t = decltype(std::tuple_cat(std::declval<Tuples>()...));
}  // namespace detail

// Every supported shape, in dispatch order.
using supported_shapes =
    detail::tuple_cat_t<detail::latent_rank_sweep<64, 16>,   // MHA2MLA-style per-head split of a 64-dim head, RoPE 16
                        detail::latent_rank_sweep<64, 32>,   // per-head split, RoPE 32
                        detail::latent_rank_sweep<96, 32>,   // TransMLA-style: 64 content + a decoupled 32-dim RoPE key
                        detail::latent_rank_sweep<128, 64>,  // 64 content + a decoupled 64-dim RoPE key
                        std::tuple<mla_shape<192, 64, 512>>  // DeepSeek-V2/V3 (128 content + 64 RoPE, kv_lora_rank 512)
                        >;

inline constexpr std::size_t supported_shape_count = std::tuple_size_v<supported_shapes>;

// A few shapes that cover each head split at small, middle and large rank, for sweeps where the
// full list would be too slow (benchmarks, expensive typed tests). Every entry is also in supported_shapes.
using representative_shapes = std::tuple<mla_shape<64, 16, 32>, mla_shape<64, 32, 128>, mla_shape<96, 32, 224>,
                                         mla_shape<96, 32, 480>, mla_shape<128, 64, 448>, mla_shape<192, 64, 512>>;

}  // namespace mla
