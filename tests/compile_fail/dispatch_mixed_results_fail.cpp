// mla::dispatch_shape's callable must return one type for every shape of the list (here int for one, double
// for the other).
#include <tuple>

#include "mla/core/dispatch.hpp"

int main() {
  using list = std::tuple<mla::mla_shape<64, 16, 32>, mla::mla_shape<64, 32, 32>>;
  const auto r = mla::dispatch_shape(list{}, mla::runtime_shape{64, 16, 32}, [](auto s) {
    if constexpr (decltype(s)::rope_dim == 16) {
      return 1;
    } else {
      return 1.0;
    }
  });
  return static_cast<int>(r);
}
