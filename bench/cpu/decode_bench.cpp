// CPU decode attention: GQA caches versus the absorbed MLA latent cache that replaces them, plus memory
// copy / read baselines in the same binary so every row can be put against the machine's bandwidth.
//
//   gpt-oss layer: 64 query heads, 8 KV heads x 64   vs  mla_shape<96,32,480> (50 % cache), <96,32,224> (75 %)
//   SmolLM2:        9 query heads, 3 KV heads x 64   vs  mla_shape<96,32,160> (50 %), <96,32,64> (75 %)
//   DeepSeek-V3:   mla_shape<192,64,512> with 16 and 128 heads (no GQA counterpart)
//   rank sweep:    mla_shape<96,32,r>, r = 96, 224, ..., 736, with gpt-oss's 64 heads at 8K (fp32)
// Every MLA shape comes from mla::supported_shapes (bench_shapes.hpp).
//
// One step = one decode token for every sequence of the batch, all at the same context length, over a
// paged cache (page 64) with a shuffled page table and random data. The batch of a model family is chosen
// per context so that its *smallest* cache is 1.25x the last-level cache (sysconf), and the same batch is
// used for GQA and both MLA shapes, so every cache in a comparison streams from DRAM.
//
// Counters (per step, turned into rates by kIsIterationInvariantRate):
//   bytes: cache bytes read (batch * ctx * bytes_per_token) + queries + outputs     -> "GB/s"
//   flops: MLA 2 * heads * (2 * rank + rope) per key; GQA 4 * heads * head_dim per key -> "GFLOP/s"
// The copy benches report bytes copied per second (each byte is read once and written once).
//   roofline: max(flops / peak, bytes / read bandwidth) / time, the ceilings measured at start-up by
//   machine_peaks.hpp (the kernels' own inner loop in L1, float FMA or vdpbf16ps as the row's path takes;
//   all threads), printed in the context.
// bf16 rows (GQA and MLA): "bf16-dot" is the AVX512-BF16 path (bf16 queries and weights), "bf16" the portable
// one (float queries, rows converted), both registered where the CPU has AVX512-BF16: their ratio in one run.
// int8 rows: MLA latent caches with two float scales per token (counted in the bytes), converted to float.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "../bench_shapes.hpp"
#include "machine_peaks.hpp"
#include "mla/core/shape.hpp"
#include "mla/cpu/gqa_decode.hpp"
#include "mla/cpu/mla_decode.hpp"

namespace {

using mla::cpu::bf16;

constexpr std::size_t mib = std::size_t{1} << 20;
const int contexts[] = {1024, 2048, 4096, 8192, 16384, 32768};

std::size_t llc_bytes() {
#if defined(_SC_LEVEL3_CACHE_SIZE)
  const long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (v > 0) return static_cast<std::size_t>(v);
#endif
  return 32 * mib;
}

// Sequences per step so that a cache of min_bytes_per_token per token is 1.25x the LLC at this context.
int batch_for(int ctx, std::size_t min_bytes_per_token) {
  const double want = 1.25 * static_cast<double>(llc_bytes());
  return static_cast<int>(std::ceil(want / (static_cast<double>(ctx) * static_cast<double>(min_bytes_per_token))));
}

template <class Elem>
Elem from_float(float x) {
  if constexpr (std::is_same_v<Elem, float>)
    return x;
  else if constexpr (std::is_same_v<Elem, std::int8_t>)
    return static_cast<std::int8_t>(std::lround(127.0f * x));
  else
    return mla::cpu::to_bf16(x);
}

// Uninitialised storage (vector<T> would zero-fill gigabytes before the random fill).
template <class T>
struct buffer {
  explicit buffer(std::size_t n) : size(n), data(new T[n]) {}
  std::size_t size;
  std::unique_ptr<T[]> data;
  T* get() const { return data.get(); }
};

// Cheap parallel pseudo-random fill in [-1, 1): the data must not be zeros (benchmark hygiene), but a
// std::mt19937 fill of a gigabyte would dominate the run time.
template <class Elem>
void fill_random(Elem* p, std::size_t n, std::uint64_t seed) {
  const std::ptrdiff_t chunks = 256;
  MLA_CPU_OMP(parallel for schedule(static))
  for (std::ptrdiff_t c = 0; c < chunks; ++c) {
    std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(c) * 0xBF58476D1CE4E5B9ull + 1;
    const std::size_t lo = n * static_cast<std::size_t>(c) / chunks, hi = n * static_cast<std::size_t>(c + 1) / chunks;
    for (std::size_t i = lo; i < hi; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      p[i] = from_float<Elem>(static_cast<float>(static_cast<std::int64_t>(x >> 40) - (1 << 23)) / (1 << 23));
    }
  }
}

// A batch of `batch` sequences of length ctx on pages of 64, physical pages shuffled.
mla::paged_layout make_layout(int batch, int ctx) {
  const int page = 64;
  const int pages = batch * mla::pages_needed(ctx, page);
  std::vector<mla::page_index> order(static_cast<std::size_t>(pages));
  for (int i = 0; i < pages; ++i) order[static_cast<std::size_t>(i)] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(12345));
  return mla::make_paged_layout(std::vector<int>(static_cast<std::size_t>(batch), ctx), page, order);
}

// Measured once in main, before the benchmarks run (machine_peaks.hpp).
bench_peaks::machine_peaks peaks;

template <class Elem>
const char* dtype_name(bool bf16_dot = true) {
  if (std::is_same_v<Elem, float>) return "f32";
  if (std::is_same_v<Elem, std::int8_t>) return "int8";
  return bf16_dot && mla::cpu::cpu_has_avx512_bf16() ? "bf16-dot" : "bf16";
}

// peak_flops: the compute ceiling of the path the kernel takes (float FMA or vdpbf16ps), all threads.
void set_counters(benchmark::State& state, int batch, int ctx, double cache_bytes, double other_bytes, double flops,
                  double peak_flops) {
  state.counters["roofline"] = benchmark::Counter(
      std::max(flops / peak_flops, (cache_bytes + other_bytes) / peaks.read_bytes_all),
      benchmark::Counter::kIsIterationInvariantRate);  // (bound seconds per step) / (seconds per step)
  state.counters["batch"] = batch;
  state.counters["cache_MiB"] = cache_bytes / static_cast<double>(mib);
  state.counters["GB/s"] =
      benchmark::Counter((cache_bytes + other_bytes) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["ctx"] = ctx;
}

// ---- MLA ------------------------------------------------------------------------------------------------
template <class Shape, class Elem>
void BM_mla_decode(benchmark::State& state, int heads, std::size_t min_bytes_per_token, bool bf16_dot) {
  constexpr int rank = Shape::latent_rank, rope = Shape::rope_dim, width = Shape::cached_elements_per_token;
  const int ctx = static_cast<int>(state.range(0));
  const int batch = batch_for(ctx, min_bytes_per_token);
  const mla::paged_layout layout = make_layout(batch, ctx);
  buffer<Elem> cache(static_cast<std::size_t>(layout.num_pages) * layout.page_size * width);
  fill_random(cache.get(), cache.size, 1);
  // int8: per token the scales of c and k_pe, [num_pages, page_size, 2].
  constexpr bool int8 = std::is_same_v<Elem, std::int8_t>;
  std::vector<float> scales(int8 ? static_cast<std::size_t>(layout.num_pages) * layout.page_size * 2 : 0);
  fill_random(scales.data(), scales.size(), 9);
  for (float& x : scales) x = (1.0f + std::fabs(x)) / 127.0f;
  std::vector<float> q_latent(static_cast<std::size_t>(batch) * heads * rank),
      q_pe(static_cast<std::size_t>(batch) * heads * rope);
  fill_random(q_latent.data(), q_latent.size(), 2);
  fill_random(q_pe.data(), q_pe.size(), 3);
  std::vector<float> out(static_cast<std::size_t>(batch) * heads * rank), lse(static_cast<std::size_t>(batch) * heads);

  mla::cpu::mla_decode_args<Elem> a;
  a.q_latent = q_latent.data();
  a.q_pe = q_pe.data();
  a.cache = cache.get();
  a.cache_scales = int8 ? scales.data() : nullptr;
  a.pages = layout.view();
  a.num_heads = heads;
  a.options.softmax_scale = 1.0f / std::sqrt(static_cast<float>(Shape::head_dim));
  a.options.bf16_dot = bf16_dot;
  a.out = out.data();
  a.lse = lse.data();
  const bool pairs = mla::cpu::mla_decode_uses_bf16_dot<Elem>(a.options, rank, rope);
  for (auto _ : state) {
    mla::cpu::mla_decode<Shape>(a);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double keys = static_cast<double>(batch) * ctx;
  set_counters(state, batch, ctx, keys * (width * sizeof(Elem) + (int8 ? 2 * sizeof(float) : 0)),
               4.0 * batch * heads * (width + rank + 1),  // q̃ + q_pe in, out + lse out (fp32)
               2.0 * heads * (2.0 * rank + rope) * keys, pairs ? peaks.bf16_flops_all : peaks.fma_flops_all);
}

// ---- GQA ------------------------------------------------------------------------------------------------
template <class Elem>
void BM_gqa_decode(benchmark::State& state, int heads, int kv_heads, int head_dim, std::size_t min_bytes_per_token,
                   bool bf16_dot) {
  const int ctx = static_cast<int>(state.range(0));
  const int batch = batch_for(ctx, min_bytes_per_token);
  const mla::paged_layout layout = make_layout(batch, ctx);
  const std::size_t n = static_cast<std::size_t>(layout.num_pages) * layout.page_size * kv_heads * head_dim;
  buffer<Elem> k(n), v(n);
  fill_random(k.get(), n, 4);
  fill_random(v.get(), n, 5);
  std::vector<float> q(static_cast<std::size_t>(batch) * heads * head_dim);
  fill_random(q.data(), q.size(), 6);
  std::vector<float> out(q.size()), lse(static_cast<std::size_t>(batch) * heads);

  mla::cpu::gqa_decode_args<Elem> a;
  a.q = q.data();
  a.k_cache = k.get();
  a.v_cache = v.get();
  a.pages = layout.view();
  a.num_heads = heads;
  a.num_kv_heads = kv_heads;
  a.head_dim = head_dim;
  a.options.softmax_scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  a.options.bf16_dot = bf16_dot;
  a.out = out.data();
  a.lse = lse.data();
  const bool pairs = mla::cpu::gqa_decode_uses_bf16_dot<Elem>(a.options, head_dim);
  for (auto _ : state) {
    mla::cpu::gqa_decode(a);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double keys = static_cast<double>(batch) * ctx;
  set_counters(state, batch, ctx, keys * 2.0 * kv_heads * head_dim * sizeof(Elem),
               4.0 * batch * heads * (2 * head_dim + 1), 4.0 * heads * head_dim * keys,
               pairs ? peaks.bf16_flops_all : peaks.fma_flops_all);
}

// ---- Bandwidth baselines -----------------------------------------------------------------------------------
int threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// memcpy of range(0) MiB, split across the OpenMP threads like the kernels are.
void BM_memcpy(benchmark::State& state) {
  const std::size_t bytes = static_cast<std::size_t>(state.range(0)) * mib;
  buffer<char> src(bytes), dst(bytes);
  fill_random(reinterpret_cast<float*>(src.get()), bytes / sizeof(float), 7);
  std::memset(dst.get(), 0, bytes);
  const int t = threads();
  for (auto _ : state) {
    MLA_CPU_OMP(parallel for schedule(static))
    for (int i = 0; i < t; ++i) {
      const std::size_t lo = bytes * static_cast<std::size_t>(i) / static_cast<std::size_t>(t);
      const std::size_t hi = bytes * static_cast<std::size_t>(i + 1) / static_cast<std::size_t>(t);
      std::memcpy(dst.get() + lo, src.get() + lo, hi - lo);
    }
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(bytes) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// A vectorised sum over range(0) MiB: the read-only bandwidth a decode kernel could reach at best.
void BM_read(benchmark::State& state) {
  const std::size_t bytes = static_cast<std::size_t>(state.range(0)) * mib;
  const std::size_t n = bytes / sizeof(float);
  buffer<float> src(n);
  fill_random(src.get(), n, 8);
  const int t = threads();
  for (auto _ : state) {
    float total = bench_peaks::parallel_sum(src.get(), n / 16 * 16, t);
    benchmark::DoNotOptimize(total);
  }
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(bytes) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- Registration from the shape lists ------------------------------------------------------------------
struct family {
  const char* name;
  int heads, kv_heads, head_dim;  // kv_heads = 0: no GQA counterpart
};

// bf16_dot = false: a bf16 cache through the portable path (float queries) even where vdpbf16ps exists.
template <class Elem, class... Shapes>
void register_mla(const family& f, std::size_t min_bytes_per_token, std::tuple<Shapes...>, const std::vector<int>& ctxs,
                  bool bf16_dot = true) {
  auto one = [&](auto shape) {
    using S = decltype(shape);
    const std::string name = std::string("mla_decode/") + f.name + "/h" + std::to_string(f.heads) + "/r" +
                             std::to_string(S::latent_rank) + "+" + std::to_string(S::rope_dim) + "/" +
                             dtype_name<Elem>(bf16_dot);
    auto* b =
        benchmark::RegisterBenchmark(name.c_str(), BM_mla_decode<S, Elem>, f.heads, min_bytes_per_token, bf16_dot);
    b->ArgName("ctx")->Unit(benchmark::kMillisecond)->UseRealTime();
    for (int c : ctxs) b->Arg(c);
  };
  (one(Shapes{}), ...);
}

template <class Elem>
void register_gqa(const family& f, std::size_t min_bytes_per_token, const std::vector<int>& ctxs,
                  bool bf16_dot = true) {
  const std::string name = std::string("gqa_decode/") + f.name + "/h" + std::to_string(f.heads) + "kv" +
                           std::to_string(f.kv_heads) + "d" + std::to_string(f.head_dim) + "/" +
                           dtype_name<Elem>(bf16_dot);
  auto* b = benchmark::RegisterBenchmark(name.c_str(), BM_gqa_decode<Elem>, f.heads, f.kv_heads, f.head_dim,
                                         min_bytes_per_token, bf16_dot);
  b->ArgName("ctx")->Unit(benchmark::kMillisecond)->UseRealTime();
  for (int c : ctxs) b->Arg(c);
}

template <class Smallest>
constexpr std::size_t f32_bytes_per_token() {
  return sizeof(float) * Smallest::cached_elements_per_token;
}

void register_all() {
  const std::vector<int> all(std::begin(contexts), std::end(contexts));
  const std::vector<int> k8 = {8192};

  const family gpt_oss{"gpt-oss", 64, 8, 64};
  const std::size_t gpt_oss_min = f32_bytes_per_token<bench_shapes::gpt_oss_75>();  // 75 % MLA cache, fp32
  register_gqa<float>(gpt_oss, gpt_oss_min, all);
  register_mla<float>(gpt_oss, gpt_oss_min, bench_shapes::gpt_oss_shapes{}, all);
  // bf16 storage at 8K: same batch, half the bytes; MLA through vdpbf16ps and (where that exists) through the
  // portable path too, for the ratio in one run.
  const bool dot = mla::cpu::cpu_has_avx512_bf16();
  register_gqa<bf16>(gpt_oss, gpt_oss_min, k8);
  if (dot) register_gqa<bf16>(gpt_oss, gpt_oss_min, k8, false);
  register_mla<bf16>(gpt_oss, gpt_oss_min, bench_shapes::gpt_oss_shapes{}, k8);
  if (dot) register_mla<bf16>(gpt_oss, gpt_oss_min, bench_shapes::gpt_oss_shapes{}, k8, false);
  register_mla<std::int8_t>(gpt_oss, gpt_oss_min, bench_shapes::gpt_oss_shapes{}, k8);

  const family smollm2{"SmolLM2", 9, 3, 64};
  const std::size_t smollm2_min = f32_bytes_per_token<bench_shapes::smollm2_75>();
  register_gqa<float>(smollm2, smollm2_min, all);
  register_mla<float>(smollm2, smollm2_min, bench_shapes::smollm2_shapes{}, all);
  register_gqa<bf16>(smollm2, smollm2_min, k8);
  if (dot) register_gqa<bf16>(smollm2, smollm2_min, k8, false);
  register_mla<bf16>(smollm2, smollm2_min, bench_shapes::smollm2_shapes{}, k8);
  if (dot) register_mla<bf16>(smollm2, smollm2_min, bench_shapes::smollm2_shapes{}, k8, false);
  register_mla<std::int8_t>(smollm2, smollm2_min, bench_shapes::smollm2_shapes{}, k8);

  const std::size_t deepseek_min = f32_bytes_per_token<bench_shapes::deepseek>();
  for (int heads : {16, 128}) {
    const family deepseek{"DeepSeek-V3", heads, 0, 0};
    register_mla<float>(deepseek, deepseek_min, bench_shapes::deepseek_shapes{}, all);
    register_mla<bf16>(deepseek, deepseek_min, bench_shapes::deepseek_shapes{}, k8);
    if (dot) register_mla<bf16>(deepseek, deepseek_min, bench_shapes::deepseek_shapes{}, k8, false);
    register_mla<std::int8_t>(deepseek, deepseek_min, bench_shapes::deepseek_shapes{}, k8);
  }

  // The rank sweep: the batch is set by the smallest cache (rank 96), so every rank streams from DRAM.
  const std::size_t sweep_min = f32_bytes_per_token<std::tuple_element_t<0, bench_shapes::rank_sweep_shapes>>();
  register_mla<float>(family{"rank-sweep", 64, 0, 0}, sweep_min, bench_shapes::rank_sweep_shapes{}, k8);

  // Copy and read baselines at the two working-set sizes the decode runs use: 1.25x LLC (the smallest
  // cache of each family) and 4x that (the largest: the fp32 GQA caches).
  const long small = static_cast<long>(std::ceil(1.25 * static_cast<double>(llc_bytes()) / static_cast<double>(mib)));
  for (long size : {small, 4 * small}) {
    benchmark::RegisterBenchmark("memcpy", BM_memcpy)
        ->ArgName("MiB")
        ->Arg(size)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark("read", BM_read)
        ->ArgName("MiB")
        ->Arg(size)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  peaks = bench_peaks::measure_peaks(5 * llc_bytes());
  auto g = [](double x) { return std::to_string(x * 1e-9); };
  benchmark::AddCustomContext("peak_fma_GFLOPs_1_thread", g(peaks.fma_flops_one));
  benchmark::AddCustomContext("peak_fma_GFLOPs_all_threads", g(peaks.fma_flops_all));
  benchmark::AddCustomContext("peak_bf16_dot_GFLOPs_1_thread", g(peaks.bf16_flops_one));
  benchmark::AddCustomContext("peak_bf16_dot_GFLOPs_all_threads", g(peaks.bf16_flops_all));
  benchmark::AddCustomContext("read_GBs_all_threads", g(peaks.read_bytes_all));
  benchmark::AddCustomContext("llc_bytes", std::to_string(llc_bytes()));
  benchmark::AddCustomContext("omp_threads", std::to_string(threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
