// mla::dispatch_shape needs at least one shape in its list.
#include <tuple>

#include "mla/core/dispatch.hpp"

int main() {
  return mla::dispatch_shape(std::tuple<>{}, mla::runtime_shape{64, 16, 32},
                             [](auto s) { return decltype(s)::rope_dim; });
}
