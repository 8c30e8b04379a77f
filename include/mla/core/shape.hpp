// mla::mla_shape: the compile-time shape of a decoupled-RoPE MLA attention layer.
//
// A query/key head of width HeadDim is split into
//   content ("nope") channels [0, HeadDim - RopeDim): no RoPE; their keys are up-projected from the latent;
//   RoPE channels [HeadDim - RopeDim, HeadDim): rotated; their key is one RopeDim vector shared by all heads.
// The cache holds, per token and layer, the latent c [LatentRank] and the shared RoPE key k_pe [RopeDim].
//
//   DeepSeek-V3:                               mla_shape<192, 64, 512>  (128 content + 64 RoPE)
//   TransMLA-style, head 64 + 32-dim RoPE key: mla_shape<96, 32, r>     (64 content + 32 RoPE)
//   MHA2MLA-style per-head split of head 64:   mla_shape<64, 16, r>     (48 content + 16 RoPE)
//
// The value head width is not part of the shape: the absorbed kernels return latent-space outputs
// [heads, LatentRank] and the value up-projection is applied after them (see reference/mla_attention.hpp).
//
// What is compile-time and what stays runtime-sized, and why:
//  - compile-time: the shape type mla_shape<HeadDim, RopeDim, LatentRank>, so that a shape is a type that
//    tests, benches and kernels are instantiated for, and the list of them, supported_shapes.hpp;
//  - compile-time: the validation rules (the static_asserts below, tests/compile_fail/), so that an invalid
//    split cannot be named at all, and runtime_shape values reach a kernel only through dispatch.hpp, which
//    maps them onto a listed type or throws naming the supported ones;
//  - compile-time: the CUDA decode's tile instantiations (cuda/mla_decode.cuh dispatches a runtime_shape onto
//    the kernel of its mla_shape), because register tiles and shared-memory sizes must be constants for nvcc;
//  - runtime-sized: the CPU kernel's body (cpu/mla_decode.hpp: its typed and dispatched entry points pass the
//    rank and RoPE width on as arguments), because measured it does not pay: the same body with the widths as
//    constants (detail::mla_decode_impl<Elem, Rank, Rope>, bit-identical) took 0.99x the runtime body's time
//    over 48 bench rows (mla_cpu_width_bench, bench/RESULTS.md) and made the CPU tests 3.5x slower to compile;
//  - runtime-sized: the conversion (convert/), which chooses ranks per layer from calibration data, and the
//    model (model/), which reads them from config.json: both use runtime_shape and Eigen's dynamic matrices,
//    because the ranks are data, not known when the program is compiled.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <ostream>
#include <utility>

namespace mla {

// The runtime counterpart of mla_shape, used for dispatch and printing.
struct runtime_shape {
  int head_dim = 0;
  int rope_dim = 0;
  int latent_rank = 0;

  constexpr int nope_dim() const { return head_dim - rope_dim; }
  constexpr int absorbed_dim() const { return latent_rank + rope_dim; }
  constexpr int cached_elements_per_token() const { return latent_rank + rope_dim; }

  friend constexpr bool operator==(const runtime_shape& a, const runtime_shape& b) {
    return a.head_dim == b.head_dim && a.rope_dim == b.rope_dim && a.latent_rank == b.latent_rank;
  }
  friend constexpr bool operator!=(const runtime_shape& a, const runtime_shape& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const runtime_shape& s) {
    return os << "(head_dim=" << s.head_dim << ", rope_dim=" << s.rope_dim << ", latent_rank=" << s.latent_rank << ")";
  }
};

template <int HeadDim, int RopeDim, int LatentRank>
struct mla_shape {
  static_assert(RopeDim > 0,
                "mla::mla_shape: RopeDim must be > 0 (MLA needs a decoupled RoPE key; without one "
                "position information is lost or RoPE must act on the latent, which blocks absorption)");
  static_assert(RopeDim % 2 == 0, "mla::mla_shape: RopeDim must be even (RoPE rotates channel pairs)");
  static_assert(HeadDim - RopeDim > 0,
                "mla::mla_shape: the content part HeadDim - RopeDim must be non-empty (RopeDim < HeadDim); "
                "a split with RopeDim == HeadDim leaves no channels for the latent keys");
  static_assert(LatentRank > 0, "mla::mla_shape: LatentRank must be > 0 (the latent cache needs at least one channel)");

  static constexpr int head_dim = HeadDim;            // query/key width per head
  static constexpr int rope_dim = RopeDim;            // decoupled RoPE part (qk_rope_head_dim)
  static constexpr int nope_dim = HeadDim - RopeDim;  // content part (qk_nope_head_dim)
  static constexpr int latent_rank = LatentRank;      // kv_lora_rank
  // Width of an absorbed query/key row: the latent plus the shared RoPE key (576 for DeepSeek-V3).
  static constexpr int absorbed_dim = LatentRank + RopeDim;
  // Elements cached per token and layer: c [LatentRank] and k_pe [RopeDim].
  static constexpr int cached_elements_per_token = LatentRank + RopeDim;

  static constexpr runtime_shape runtime() { return {HeadDim, RopeDim, LatentRank}; }
};

// Detects mla_shape specialisations (for constraining templates).
template <class T>
struct is_mla_shape : std::false_type {};
template <int H, int R, int L>
struct is_mla_shape<mla_shape<H, R, L>> : std::true_type {};
template <class T>
inline constexpr bool is_mla_shape_v = is_mla_shape<T>::value;

// Whether the shape type S is an element of the std::tuple of shapes Shapes.
template <class S, class Shapes>
struct contains_shape : std::false_type {};
template <class S, class... T>
struct contains_shape<S, std::tuple<T...>> : std::bool_constant<(std::is_same_v<S, T> || ...)> {};
template <class S, class Shapes>
inline constexpr bool contains_shape_v = contains_shape<S, Shapes>::value;

// The elements S of the tuple of shapes Shapes with Pred::template keep<S> true, in order: how tests and
// benches take their shapes from supported_shapes, e.g.
//   struct rank_480 { template <class S> static constexpr bool keep = S::latent_rank == 480; };
//   using shapes = filter_shapes_t<supported_shapes, rank_480>;
template <class Shapes, class Pred>
struct filter_shapes;
template <class... S, class Pred>
struct filter_shapes<std::tuple<S...>, Pred> {
  using type = decltype(std::tuple_cat(
      std::declval<std::conditional_t<Pred::template keep<S>, std::tuple<S>, std::tuple<>>>()...));
};
template <class Shapes, class Pred>
using filter_shapes_t = typename filter_shapes<Shapes, Pred>::type;

}  // namespace mla
