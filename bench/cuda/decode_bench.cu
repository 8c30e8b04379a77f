// CUDA decode attention: GQA caches versus the absorbed MLA latent cache that replaces them, and a
// device-to-device copy in the same binary so that every row can be put against the card's bandwidth.
//
//   gpt-oss layer: 64 query heads, 8 KV heads x 64   vs  MLA (96, 32, 480) (50 % cache), (96, 32, 224) (75 %)
//   SmolLM2:        9 query heads, 3 KV heads x 64   vs  MLA (96, 32, 160) (50 %),       (96, 32, 64) (75 %)
//   DeepSeek-V3:   MLA (192, 64, 512) with 16 and 128 heads
//
// One iteration = one decode step (one new token for every sequence of the batch, all at the same context)
// over a paged cache (page 64, shuffled page table, random data), timed with CUDA events (manual time).
// Counters per step: bytes = cache bytes read + queries + outputs ("GB/s", and "of_copy" = that over the copy
// bandwidth measured first in this run, counting bytes read + written); FLOPs: MLA 2 * heads * (2 * rank +
// rope) per key, GQA 4 * heads * head_dim per key ("TFLOP/s").
#include <benchmark/benchmark.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../bench_shapes.hpp"
#include "mla/cuda/gqa_decode.cuh"
#include "mla/cuda/mla_decode.cuh"

namespace {

#define BENCH_CUDA(expr)                                                      \
  do {                                                                        \
    const cudaError_t e_ = (expr);                                            \
    if (e_ != cudaSuccess) {                                                  \
      std::fprintf(stderr, "%s failed: %s\n", #expr, cudaGetErrorString(e_)); \
      std::abort();                                                           \
    }                                                                         \
  } while (0)

template <class T>
struct device_buffer {
  T* p = nullptr;
  explicit device_buffer(std::size_t n) { BENCH_CUDA(cudaMalloc(&p, std::max<std::size_t>(n, 1) * sizeof(T))); }
  ~device_buffer() { cudaFree(p); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
};

// Pseudo-random values in [-1, 1) (a hash of the index): never zeros, cheap for gigabytes.
template <class Elem>
__global__ void fill_random(Elem* p, std::size_t n, std::uint32_t seed) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    std::uint32_t x = static_cast<std::uint32_t>(i) * 2654435761u ^ seed ^ static_cast<std::uint32_t>(i >> 32);
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    const float v = static_cast<float>(x) * (2.0f / 4294967296.0f) - 1.0f;
    if constexpr (std::is_same_v<Elem, float>)
      p[i] = v;
    else
      p[i] = mla::cuda::detail::from_float<Elem>(v);
  }
}

template <class Elem>
void randomize(Elem* p, std::size_t n, std::uint32_t seed) {
  fill_random<<<1024, 256>>>(p, n, seed);
  BENCH_CUDA(cudaGetLastError());
}

// A paged layout with every sequence at `ctx` tokens, pages shuffled.
struct device_layout {
  std::vector<int> lens;
  mla::paged_layout host;
  device_buffer<mla::page_index> table;
  device_buffer<std::int32_t> d_lens;
  mla::page_table_view view;
  device_layout(int batch, int ctx, int page)
      : lens(static_cast<std::size_t>(batch), ctx),
        host(make(lens, page)),
        table(host.page_table.size()),
        d_lens(host.seq_lens.size()) {
    BENCH_CUDA(
        cudaMemcpy(table.p, host.page_table.data(), host.page_table.size() * sizeof(int), cudaMemcpyHostToDevice));
    BENCH_CUDA(cudaMemcpy(d_lens.p, host.seq_lens.data(), host.seq_lens.size() * sizeof(int), cudaMemcpyHostToDevice));
    view = host.view();
    view.page_table = table.p;
    view.seq_lens = d_lens.p;
  }
  static mla::paged_layout make(const std::vector<int>& lens, int page) {
    int total = 0;
    for (int l : lens) total += mla::pages_needed(l, page);
    std::vector<mla::page_index> order(static_cast<std::size_t>(total));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    return mla::make_paged_layout(lens, page, order);
  }
};

double g_copy_gbs = 0;  // device-to-device copy bandwidth of this run (bytes read + written per second)

struct event_timer {
  cudaEvent_t a, b;
  event_timer() {
    BENCH_CUDA(cudaEventCreate(&a));
    BENCH_CUDA(cudaEventCreate(&b));
  }
  ~event_timer() { cudaEventDestroy(a), cudaEventDestroy(b); }
  template <class F>
  double seconds(F&& f) {
    BENCH_CUDA(cudaEventRecord(a));
    f();
    BENCH_CUDA(cudaEventRecord(b));
    BENCH_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, a, b));
    return ms * 1e-3;
  }
};

// Runs `step` three times (warm-up), then once per benchmark iteration timed with events (manual time).
struct timed_steps {
  double total = 0;  // seconds over the timed iterations
  std::int64_t n = 0;
};
template <class Step>
timed_steps time_steps(benchmark::State& state, Step&& step) {
  for (int i = 0; i < 3; ++i) step();
  BENCH_CUDA(cudaDeviceSynchronize());
  event_timer t;
  timed_steps r;
  for (auto _ : state) {
    const double s = t.seconds(step);
    state.SetIterationTime(s);
    r.total += s, ++r.n;
  }
  return r;
}

void copy_bench(benchmark::State& state) {
  const std::size_t bytes = std::size_t{1} << 30;
  device_buffer<char> src(bytes), dst(bytes);
  randomize(reinterpret_cast<float*>(src.p), bytes / 4, 1);
  const timed_steps ts =
      time_steps(state, [&] { BENCH_CUDA(cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice)); });
  g_copy_gbs = 2.0 * bytes * ts.n / ts.total / 1e9;
  state.counters["GB/s"] = g_copy_gbs;
}

void set_counters(benchmark::State& state, double bytes, double flops, double seconds, std::int64_t iters) {
  const double gbs = bytes * iters / seconds / 1e9;
  state.counters["GB/s"] = gbs;
  state.counters["of_copy"] = g_copy_gbs > 0 ? gbs / g_copy_gbs : 0;
  state.counters["TFLOP/s"] = flops * iters / seconds / 1e12;
  state.counters["MB_per_step"] = bytes / 1e6;
}

template <class Elem>
void mla_bench(benchmark::State& state, mla::runtime_shape shape, int heads, int heads_per_block = 0) {
  const int batch = static_cast<int>(state.range(0)), ctx = static_cast<int>(state.range(1));
  const int rank = shape.latent_rank, width = rank + shape.rope_dim;
  device_layout layout(batch, ctx, 64);
  const std::size_t cache_elems = static_cast<std::size_t>(layout.host.num_pages) * 64 * width;
  device_buffer<Elem> cache(cache_elems), ql(static_cast<std::size_t>(batch) * heads * rank),
      qp(static_cast<std::size_t>(batch) * heads * shape.rope_dim);
  device_buffer<float> out(static_cast<std::size_t>(batch) * heads * rank),
      lse(static_cast<std::size_t>(batch) * heads);
  randomize(cache.p, cache_elems, 2);
  randomize(ql.p, static_cast<std::size_t>(batch) * heads * rank, 3);
  randomize(qp.p, static_cast<std::size_t>(batch) * heads * shape.rope_dim, 4);
  mla::cuda::mla_decode_args<Elem> a;
  a.q_latent = ql.p, a.q_pe = qp.p, a.cache = cache.p, a.pages = layout.view, a.max_seq_len = ctx;
  a.num_heads = heads, a.shape = shape, a.softmax_scale = 1.0f / 8.0f, a.out = out.p, a.lse = lse.p;
  a.heads_per_block = heads_per_block;
  using op = mla::cuda::mla_decode_op<Elem>;
  device_buffer<char> ws(op::workspace_size(a));
  const mla::cuda::decode_plan pl = op::plan(a);
  const timed_steps ts = time_steps(state, [&] { op::run(a, ws.p, op::workspace_size(a)).throw_if_failed(); });
  const double keys = static_cast<double>(batch) * ctx;
  const double bytes =
      keys * width * sizeof(Elem) + static_cast<double>(batch) * heads * (width * sizeof(Elem) + rank * 4.0);
  set_counters(state, bytes, keys * 2.0 * heads * (2.0 * rank + shape.rope_dim), ts.total, ts.n);
  state.counters["splits"] = pl.num_splits;
  state.counters["heads_per_cta"] = pl.heads_per_block;
}

template <class Elem>
void gqa_bench(benchmark::State& state, int heads, int kv_heads, int head_dim) {
  const int batch = static_cast<int>(state.range(0)), ctx = static_cast<int>(state.range(1));
  device_layout layout(batch, ctx, 64);
  const std::size_t row = static_cast<std::size_t>(kv_heads) * head_dim;
  const std::size_t cache_elems = static_cast<std::size_t>(layout.host.num_pages) * 64 * row;
  device_buffer<Elem> k(cache_elems), v(cache_elems), q(static_cast<std::size_t>(batch) * heads * head_dim);
  device_buffer<float> out(static_cast<std::size_t>(batch) * heads * head_dim),
      lse(static_cast<std::size_t>(batch) * heads);
  randomize(k.p, cache_elems, 5);
  randomize(v.p, cache_elems, 6);
  randomize(q.p, static_cast<std::size_t>(batch) * heads * head_dim, 7);
  mla::cuda::gqa_decode_args<Elem> a;
  a.q = q.p, a.k_cache = k.p, a.v_cache = v.p, a.pages = layout.view, a.max_seq_len = ctx;
  a.num_heads = heads, a.num_kv_heads = kv_heads, a.head_dim = head_dim, a.softmax_scale = 0.125f;
  a.out = out.p, a.lse = lse.p;
  using op = mla::cuda::gqa_decode_op<Elem>;
  device_buffer<char> ws(op::workspace_size(a));
  const mla::cuda::decode_plan pl = op::plan(a);
  const timed_steps ts = time_steps(state, [&] { op::run(a, ws.p, op::workspace_size(a)).throw_if_failed(); });
  const double keys = static_cast<double>(batch) * ctx;
  const double bytes =
      keys * 2.0 * row * sizeof(Elem) + static_cast<double>(batch) * heads * head_dim * (sizeof(Elem) + 4.0);
  set_counters(state, bytes, keys * 4.0 * heads * head_dim, ts.total, ts.n);
  state.counters["splits"] = pl.num_splits;
}

using bf16 = __nv_bfloat16;

void register_all() {
  auto tune = [](benchmark::internal::Benchmark* b) {
    b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);
  };
  benchmark::RegisterBenchmark("copy/d2d_1GiB", copy_bench)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond)
      ->Iterations(20);
  const std::vector<int> contexts = {1024, 2048, 4096, 8192, 16384, 32768};
  // Every MLA shape comes from mla::supported_shapes (bench_shapes.hpp).
  const mla::runtime_shape mla50 = bench_shapes::gpt_oss_50::runtime(), mla75 = bench_shapes::gpt_oss_75::runtime();
  const mla::runtime_shape smollm2_50 = bench_shapes::smollm2_50::runtime(),
                           smollm2_75 = bench_shapes::smollm2_75::runtime();
  const mla::runtime_shape deepseek = bench_shapes::deepseek::runtime();
  // gpt-oss attention: context sweep at batch 64 (bf16), the three caches.
  for (int ctx : contexts) {
    tune(benchmark::RegisterBenchmark("gpt_oss/gqa_64x8x64/bf16", [](benchmark::State& s) {
           gqa_bench<bf16>(s, 64, 8, 64);
         })->Args({64, ctx}));
    tune(benchmark::RegisterBenchmark("gpt_oss/mla50_96_32_480/bf16", [=](benchmark::State& s) {
           mla_bench<bf16>(s, mla50, 64);
         })->Args({64, ctx}));
    tune(benchmark::RegisterBenchmark("gpt_oss/mla75_96_32_224/bf16", [=](benchmark::State& s) {
           mla_bench<bf16>(s, mla75, 64);
         })->Args({64, ctx}));
  }
  // fp16 at the headline point.
  tune(benchmark::RegisterBenchmark("gpt_oss/gqa_64x8x64/fp16", [](benchmark::State& s) {
         gqa_bench<__half>(s, 64, 8, 64);
       })->Args({64, 8192}));
  tune(benchmark::RegisterBenchmark("gpt_oss/mla50_96_32_480/fp16", [=](benchmark::State& s) {
         mla_bench<__half>(s, mla50, 64);
       })->Args({64, 8192}));
  // Batch sweep at 8K.
  for (int batch : {1, 8, 32, 128}) {
    tune(benchmark::RegisterBenchmark("batch/gqa_64x8x64/bf16", [](benchmark::State& s) {
           gqa_bench<bf16>(s, 64, 8, 64);
         })->Args({batch, 8192}));
    tune(benchmark::RegisterBenchmark("batch/mla50_96_32_480/bf16", [=](benchmark::State& s) {
           mla_bench<bf16>(s, mla50, 64);
         })->Args({batch, 8192}));
  }
  // Query-head sweep at batch 64, 8K (8 KV heads for GQA).
  for (int heads : {8, 16, 64, 128}) {
    tune(benchmark::RegisterBenchmark(("heads" + std::to_string(heads) + "/gqa_x8x64/bf16").c_str(),
                                      [=](benchmark::State& s) { gqa_bench<bf16>(s, heads, 8, 64); })
             ->Args({64, 8192}));
    tune(benchmark::RegisterBenchmark(("heads" + std::to_string(heads) + "/mla50_96_32_480/bf16").c_str(),
                                      [=](benchmark::State& s) { mla_bench<bf16>(s, mla50, heads); })
             ->Args({64, 8192}));
  }
  // SmolLM2: 9 query heads, 3 KV heads.
  tune(benchmark::RegisterBenchmark("smollm2/gqa_9x3x64/bf16", [](benchmark::State& s) {
         gqa_bench<bf16>(s, 9, 3, 64);
       })->Args({64, 8192}));
  tune(benchmark::RegisterBenchmark("smollm2/mla50_96_32_160/bf16", [=](benchmark::State& s) {
         mla_bench<bf16>(s, smollm2_50, 9);
       })->Args({64, 8192}));
  tune(benchmark::RegisterBenchmark("smollm2/mla75_96_32_64/bf16", [=](benchmark::State& s) {
         mla_bench<bf16>(s, smollm2_75, 9);
       })->Args({64, 8192}));
  // Heads per CTA (the query rows that share each loaded tile): 64 reads the cache once per step but holds
  // one CTA per SM; 32 and 16 re-read it (from L2) with two CTAs per SM.
  for (int hpb : {16, 32, 64}) {
    const std::string tag = "/hpb" + std::to_string(hpb) + "/bf16";
    tune(benchmark::RegisterBenchmark(("cta_heads/mla50_96_32_480_h64" + tag).c_str(), [=](benchmark::State& s) {
           mla_bench<bf16>(s, mla50, 64, hpb);
         })->Args({64, 8192}));
    tune(benchmark::RegisterBenchmark(("cta_heads/mla75_96_32_224_h64" + tag).c_str(), [=](benchmark::State& s) {
           mla_bench<bf16>(s, mla75, 64, hpb);
         })->Args({64, 8192}));
    tune(benchmark::RegisterBenchmark(("cta_heads/mla_192_64_512_h128" + tag).c_str(), [=](benchmark::State& s) {
           mla_bench<bf16>(s, deepseek, 128, hpb);
         })->Args({64, 8192}));
  }
  // DeepSeek-V3 512 + 64.
  for (int heads : {16, 128})
    tune(benchmark::RegisterBenchmark(("deepseek/mla_192_64_512_h" + std::to_string(heads) + "/bf16").c_str(),
                                      [=](benchmark::State& s) { mla_bench<bf16>(s, deepseek, heads); })
             ->Args({64, 8192}));
  // Latent-rank sweep of the (96, 32) split with gpt-oss's 64 heads, batch 64, 8K.
  std::apply(
      [&](auto... shape) {
        (tune(benchmark::RegisterBenchmark(
                  ("rank_sweep/mla_96_32_" + std::to_string(decltype(shape)::latent_rank) + "_h64/bf16").c_str(),
                  [=](benchmark::State& s) { mla_bench<bf16>(s, decltype(shape)::runtime(), 64); })
                  ->Args({64, 8192})),
         ...);
      },
      bench_shapes::rank_sweep_shapes{});
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("mla_cuda_bench: no CUDA device, nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
  benchmark::AddCustomContext("device", prop.name);
  benchmark::AddCustomContext("sm_count", std::to_string(prop.multiProcessorCount));
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
