// mla::dispatch_shape: turns a runtime (head_dim, rope_dim, latent_rank) into the compile-time
// mla_shape from supported_shapes and calls a generic callable with it.
#pragma once

#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/supported_shapes.hpp"

namespace mla {

namespace detail {
template <class... Shapes>
std::vector<runtime_shape> runtime_shapes_of(std::tuple<Shapes...>) {
  return {Shapes::runtime()...};
}
}  // namespace detail

// Every supported shape as a runtime value, in list order.
inline std::vector<runtime_shape> supported_runtime_shapes() { return detail::runtime_shapes_of(supported_shapes{}); }

inline bool is_supported(runtime_shape rs) {
  for (const runtime_shape& s : supported_runtime_shapes())
    if (s == rs) return true;
  return false;
}

// A listing of every shape in `list`, grouped by (head_dim, rope_dim):
//   "(head_dim=64, rope_dim=16, latent_rank in {32, 64, ...}); ..."
template <class... Shapes>
std::string describe_shapes(std::tuple<Shapes...> list) {
  std::vector<std::pair<std::pair<int, int>, std::vector<int>>> groups;
  for (const runtime_shape& s : detail::runtime_shapes_of(list)) {
    if (groups.empty() || groups.back().first != std::make_pair(s.head_dim, s.rope_dim))
      groups.push_back({{s.head_dim, s.rope_dim}, {}});
    groups.back().second.push_back(s.latent_rank);
  }
  std::ostringstream os;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (g) os << "; ";
    os << "(head_dim=" << groups[g].first.first << ", rope_dim=" << groups[g].first.second << ", latent_rank in {";
    for (std::size_t i = 0; i < groups[g].second.size(); ++i) os << (i ? ", " : "") << groups[g].second[i];
    os << "})";
  }
  return os.str();
}

inline std::string describe_supported_shapes() { return describe_shapes(supported_shapes{}); }

// Calls f(Shape{}) for the Shape in `list` whose runtime() equals rs and returns its result (by value).
// Throws mla::error naming rs and listing every shape of `list` when none matches.
template <class... Shapes, class F>
auto dispatch_shape(std::tuple<Shapes...> list, runtime_shape rs, F&& f) {
  static_assert(sizeof...(Shapes) > 0, "mla::dispatch_shape: the shape list must not be empty");
  using result = decltype(f(std::tuple_element_t<0, std::tuple<Shapes...>>{}));
  static_assert((std::is_same_v<result, decltype(f(Shapes{}))> && ...),
                "mla::dispatch_shape: the callable must return the same type for every shape");
  auto fail = [&] { detail::throw_error("mla: unsupported MLA shape ", rs, "; supported: ", describe_shapes(list)); };
  if constexpr (std::is_void_v<result>) {
    if (!((rs == Shapes::runtime() ? (f(Shapes{}), true) : false) || ...)) fail();
  } else {
    std::optional<result> out;
    if (!((rs == Shapes::runtime() ? (out.emplace(f(Shapes{})), true) : false) || ...)) fail();
    return std::move(*out);
  }
}

// dispatch_shape over the project's supported_shapes list.
template <class F>
decltype(auto) dispatch_shape(runtime_shape rs, F&& f) {
  return dispatch_shape(supported_shapes{}, rs, std::forward<F>(f));
}

}  // namespace mla
