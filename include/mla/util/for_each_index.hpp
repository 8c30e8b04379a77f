// mla::util::for_each_index(count, fn): fn(i) for i in [0, count), spread over OpenMP threads one index at a
// time (dynamic schedule: the items differ in cost); Eigen runs single-threaded inside each, which for one
// window's or one sample's small products is the better split. The first exception is rethrown after the loop.
#pragma once

#include <cstddef>
#include <exception>

namespace mla::util {

template <class Fn>
void for_each_index(std::size_t count, Fn&& fn) {
  std::exception_ptr failure;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) if (count > 1)
#endif
  for (long i = 0; i < static_cast<long>(count); ++i) {
    try {
      fn(static_cast<std::size_t>(i));
    } catch (...) {
#if defined(_OPENMP)
#pragma omp critical(mla_util_for_each_index)
#endif
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace mla::util
