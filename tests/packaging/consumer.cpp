// A consumer of the installed (or add_subdirectory'd) mla package: uses core and reference headers.
#include <mla/core/dispatch.hpp>
#include <mla/mla.hpp>

#include <Eigen/Core>
#include <iostream>

int main() {
  const int cached = mla::dispatch_shape(mla::runtime_shape{96, 32, 448},
                                         [](auto shape) { return decltype(shape)::cached_elements_per_token; });
  Eigen::MatrixXf m = Eigen::MatrixXf::Identity(2, 2);
  std::cout << "consumer: cached " << cached << " elements per token (trace " << m.trace() << ")\n";
  return cached == 480 ? 0 : 1;
}
