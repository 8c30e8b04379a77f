// Positive twin of dispatch_empty_list_fail and dispatch_mixed_results_fail, at the boundary: a one-shape list, and
// a two-shape list whose callable returns the same type (int) for both, by different branches.
#include <tuple>

#include "mla/core/dispatch.hpp"

int main() {
  const int a = mla::dispatch_shape(std::tuple<mla::mla_shape<64, 16, 32>>{}, mla::runtime_shape{64, 16, 32},
                                    [](auto s) { return decltype(s)::rope_dim; });
  using list = std::tuple<mla::mla_shape<64, 16, 32>, mla::mla_shape<64, 32, 32>>;
  const int b = mla::dispatch_shape(list{}, mla::runtime_shape{64, 32, 32}, [](auto s) {
    if constexpr (decltype(s)::rope_dim == 16) {
      return 1;
    } else {
      return 2;
    }
  });
  return a + b == 18 ? 0 : 1;
}
