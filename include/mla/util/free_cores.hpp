// mla::util free cores: how many cores other processes leave free, and an OpenMP thread count that follows it.
//
// OpenMP regions end at a barrier: with more threads than free cores, a thread that the kernel deschedules for
// another process's time slice holds every other thread of the region (a convoy), and many small regions (Eigen's
// products) each wait a slice. Measured on the project's 2-core machine with other jobs on it (issue 32): mla-eval
// scored 512 tokens in 55-60 s with 2 threads and in 6.7 s with 1. So a tool starts with one thread per free core.
//
//   free_cores(0.2)                   cores not used by other processes over a 0.2 s sample (/proc/stat; this
//                                     process sleeps meanwhile); -1 when /proc/stat cannot be read
//   threads_for_free_cores()          sets OpenMP's thread count to the free cores (at least 1) unless
//                                     OMP_NUM_THREADS is set; returns the count in use
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace mla::util {

namespace cores_detail {
struct cpu_times {
  unsigned long long busy = 0, total = 0;
};
// The first line of /proc/stat: user nice system idle iowait irq softirq steal (guest time is inside user).
inline bool read_cpu_times(cpu_times& t) {
  std::ifstream f("/proc/stat");
  std::string name;
  unsigned long long v[8] = {};
  if (!(f >> name) || name != "cpu") return false;
  for (unsigned long long& x : v)
    if (!(f >> x)) return false;
  t.total = 0;
  for (unsigned long long x : v) t.total += x;
  t.busy = t.total - v[3] - v[4];
  return true;
}
}  // namespace cores_detail

inline double free_cores(double sample_seconds = 0.2) {
  const unsigned n = std::thread::hardware_concurrency();
  cores_detail::cpu_times a, b;
  if (n == 0 || !cores_detail::read_cpu_times(a)) return -1;
  std::this_thread::sleep_for(std::chrono::duration<double>(sample_seconds));
  if (!cores_detail::read_cpu_times(b) || b.total <= a.total) return -1;
  const double busy = double(b.busy - a.busy) / double(b.total - a.total);  // fraction of all cores
  return double(n) * (1.0 - busy);
}

inline int threads_for_free_cores() {
#if defined(_OPENMP)
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return omp_get_max_threads();
  const int n = omp_get_max_threads();
  if (n <= 1) return n;
  const double free = free_cores();
  if (free < 0) return n;
  const int use = std::max(1, std::min(n, static_cast<int>(std::lround(free))));
  omp_set_num_threads(use);
  return use;
#else
  return 1;
#endif
}

}  // namespace mla::util
