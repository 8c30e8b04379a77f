// The two ceilings of a CPU roofline, measured in the bench's own run (not taken from a data sheet: these
// machines are VMs of unknown clocks, shared with other jobs):
//   - compute: the kernels' multiply-add (float FMA as the portable loops compile it under the build's
//     flags, and vdpbf16ps where the CPU has it) in independent chains on registers, so nothing but the
//     arithmetic units limits it. On one thread and on all of them (the OpenMP default), FLOPs counted as 2
//     per multiply-add.
//   - memory: a vectorised read-only sum over a buffer larger than the last-level cache, all threads.
// A decode step of F FLOPs and B bytes cannot take less than max(F / peak, B / bandwidth); its roofline
// fraction is that bound over the measured time.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "mla/cpu/bf16_dot.hpp"
#include "mla/cpu/decode_common.hpp"

namespace bench_peaks {

struct machine_peaks {
  int threads = 1;
  double fma_flops_one = 0, fma_flops_all = 0;    // FLOP/s, float FMA path
  double bf16_flops_one = 0, bf16_flops_all = 0;  // FLOP/s, vdpbf16ps path (0: not on this CPU)
  double read_bytes_all = 0;                      // B/s, all threads
};

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Best of `reps` timings of f() (seconds).
template <class F>
double best_seconds(int reps, F&& f) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// The arithmetic ceiling: `chains` independent accumulators of 16 floats (enough to cover the FMA latency on
// both ports), operands in registers, no loads: what the FMA units can do at most. (The kernel's own
// score_block on L1 data was tried first: on the AMD EPYC development machine it reached 58 GFLOP/s per core
// while the kernel sustained 81, its loads and broadcasts being the limit there, not the FMAs.)
constexpr int peak_chains = 12;
inline volatile long peak_iterations = 20000000;  // 12 x 20e6 vector ops per thread; volatile: not folded

// 16 floats in one vector (GCC/Clang vector extension: a zmm register with AVX-512, two ymm with AVX2).
typedef float float16_vector __attribute__((vector_size(64)));

inline float fma_chains() {
  float16_vector acc[peak_chains];
  float16_vector a, b;
  for (int l = 0; l < 16; ++l) a[l] = 1.0f - 1e-7f * float(l), b[l] = 1e-7f;
#pragma GCC unroll 12
  for (int k = 0; k < peak_chains; ++k) acc[k] = a * float(k);
  const long n = peak_iterations;
  for (long it = 0; it < n; ++it) {
#pragma GCC unroll 12
    for (int k = 0; k < peak_chains; ++k) acc[k] = acc[k] * a + b;
  }
  float sum = 0;
  for (int k = 0; k < peak_chains; ++k)
    for (int l = 0; l < 16; ++l) sum += acc[k][l];
  return sum;
}

#if MLA_CPU_BF16_DOT
[[gnu::target("avx512f,avx512bf16")]] inline float bf16_dot_chains() {
  __m512 acc[peak_chains];
#pragma GCC unroll 12
  for (int k = 0; k < peak_chains; ++k) acc[k] = _mm512_set1_ps(float(k));
  const __m512i a = _mm512_set1_epi32(0x3f803f80), b = _mm512_set1_epi32(0x33d633d6);  // pairs (1, 1), (1e-7, 1e-7)
  const long n = peak_iterations;
  for (long it = 0; it < n; ++it) {
#pragma GCC unroll 12
    for (int k = 0; k < peak_chains; ++k) acc[k] = _mm512_dpbf16_ps(acc[k], (__m512bh)a, (__m512bh)b);
  }
  float sum = 0;
  for (int k = 0; k < peak_chains; ++k) sum += _mm512_reduce_add_ps(acc[k]);
  return sum;
}
#endif

// FLOP/s of the chains on each of `threads` threads (2 FLOPs per multiply-add; vdpbf16ps does 32 a lane pair).
inline double chain_flops(int threads, bool bf16_pairs) {
  const double per_thread = 2.0 * peak_chains * 16 * (bf16_pairs ? 2 : 1) * static_cast<double>(peak_iterations + 0);
  const double s = best_seconds(3, [&] {
    MLA_CPU_OMP(parallel num_threads(threads)) {
      float r = 0;
#if MLA_CPU_BF16_DOT
      r = bf16_pairs ? bf16_dot_chains() : fma_chains();
#else
      r = fma_chains();
#endif
      volatile float sink = r;
      (void)sink;
    }
  });
  return per_thread * threads / s;
}

// A vectorised sum of src [n] (n a multiple of 16), split across `threads` threads: a read-only stream.
inline float parallel_sum(const float* src, std::size_t n, int threads) {
  float total = 0;
  MLA_CPU_OMP(parallel for num_threads(threads) schedule(static) reduction(+ : total))
  for (int i = 0; i < threads; ++i) {
    const std::size_t lo = n * static_cast<std::size_t>(i) / static_cast<std::size_t>(threads) / 16 * 16;
    const std::size_t hi =
        i + 1 == threads ? n : n * static_cast<std::size_t>(i + 1) / static_cast<std::size_t>(threads) / 16 * 16;
    float acc[16] = {};
    for (std::size_t j = lo; j < hi; j += 16)
      for (int l = 0; l < 16; ++l) acc[l] += src[j + l];
    for (float x : acc) total += x;
  }
  return total;
}

// Read bandwidth (B/s) of parallel_sum over `bytes`, split across `threads` threads.
inline double read_bandwidth(std::size_t bytes, int threads) {
  const std::size_t n = bytes / sizeof(float) / 16 * 16;
  std::unique_ptr<float[]> src(new float[n]);
  MLA_CPU_OMP(parallel for num_threads(threads) schedule(static))
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(n); ++i)
    src[static_cast<std::size_t>(i)] = float(i & 1023);
  const double s = best_seconds(5, [&] {
    volatile float sink = parallel_sum(src.get(), n, threads);
    (void)sink;
  });
  return static_cast<double>(n * sizeof(float)) / s;
}

// Measures all of them; read_bytes is the buffer for the bandwidth (make it several times the LLC).
inline machine_peaks measure_peaks(std::size_t read_bytes) {
  machine_peaks p;
  p.threads = max_threads();
  p.fma_flops_one = chain_flops(1, false);
  p.fma_flops_all = chain_flops(p.threads, false);
  if (mla::cpu::cpu_has_avx512_bf16()) {
    p.bf16_flops_one = chain_flops(1, true);
    p.bf16_flops_all = chain_flops(p.threads, true);
  }
  p.read_bytes_all = read_bandwidth(read_bytes, p.threads);
  return p;
}

// Roofline fraction of a step of `flops` FLOPs and `bytes` bytes that took `seconds`, at `peak` FLOP/s.
inline double roofline_fraction(double flops, double bytes, double seconds, double peak, double bandwidth) {
  return std::max(flops / peak, bytes / bandwidth) / seconds;
}

}  // namespace bench_peaks
