// Compile-time versus runtime widths in the CPU MLA decode kernel (issue 27): the same kernel body,
// mla::cpu::detail::mla_decode_impl, instantiated with Rank/Rope as template constants ("compile") and with
// runtime widths ("runtime"), on the same inputs in the same binary. Both variants are checked to give
// bit-identical outputs and lse before a shape's first timing.
//
//   gpt-oss:     mla_shape<96,32,480> (50 % cache) and <96,32,224> (75 %), 64 and 8 heads
//   SmolLM2:     mla_shape<96,32,160> (50 %), 9 heads
//   DeepSeek-V3: mla_shape<192,64,512>, 16 heads
// float and bf16 caches, contexts 4096 and 8192, 1 and 2 threads (options.num_threads, so one run covers
// both). Data as in decode_bench.cpp: pages of 64, shuffled page table; the batch is chosen so that the fp32
// cache of the shape is about 48 MiB (the bf16 cache uses the same batch), more than the 32 MiB L3 of the
// machines measured so far but a step short enough (tens of ms) for many repetitions. (Not the LLC size
// from sysconf as in decode_bench.cpp: some VMs report the host's 320 MiB there.)
// Times are wall clock (real_time); the CPU column is the process CPU time of all threads, which on a
// loaded machine shows how much of the wall time the bench actually ran.
//
// Noise: run with --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true and compare the
// medians of each compile/runtime pair (the ratio compile / runtime < 1 means the constant widths win), e.g.
//   mla_cpu_width_bench --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
//       --benchmark_out_format=json --benchmark_out=width.json          (one command line)
//   jq -r '.benchmarks[] | select(.aggregate_name == "median") | [.run_name, .real_time] | @tsv' width.json
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "mla/core/shape.hpp"
#include "mla/cpu/mla_decode.hpp"

namespace {

using mla::cpu::bf16;

constexpr double fp32_cache_bytes = 48.0 * (1 << 20);

template <class Elem>
Elem from_float(float x) {
  if constexpr (std::is_same_v<Elem, float>)
    return x;
  else
    return mla::cpu::to_bf16(x);
}

// Pseudo-random values in [-1, 1) (xorshift; a mt19937 fill of the caches would dominate the run time).
template <class Elem>
std::vector<Elem> random_values(std::size_t n, std::uint64_t seed) {
  std::vector<Elem> v(n);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (Elem& e : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    e = from_float<Elem>(static_cast<float>(static_cast<std::int64_t>(x >> 40) - (1 << 23)) / (1 << 23));
  }
  return v;
}

// One shape's inputs at one context, shared by both variants, all head counts and thread counts.
template <class Elem>
struct problem {
  int batch = 0;
  mla::paged_layout layout;
  std::vector<Elem> cache;                                             // [pages, 64, rank + rope]
  std::map<int, std::pair<std::vector<float>, std::vector<float>>> q;  // heads -> (q̃, q_pe)
  std::map<int, bool> checked;                                         // heads -> variants compared
};

template <class Shape, class Elem>
problem<Elem>& problem_for(int ctx, int heads) {
  static std::map<int, std::unique_ptr<problem<Elem>>> cached;
  std::unique_ptr<problem<Elem>>& p = cached[ctx];
  if (!p) {
    p = std::make_unique<problem<Elem>>();
    p->batch = static_cast<int>(
        std::ceil(fp32_cache_bytes / (static_cast<double>(ctx) * sizeof(float) * Shape::cached_elements_per_token)));
    const int page = 64, pages = p->batch * mla::pages_needed(ctx, page);
    std::vector<mla::page_index> order(static_cast<std::size_t>(pages));
    for (int i = 0; i < pages; ++i) order[static_cast<std::size_t>(i)] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937(12345));
    p->layout = mla::make_paged_layout(std::vector<int>(static_cast<std::size_t>(p->batch), ctx), page, order);
    p->cache = random_values<Elem>(static_cast<std::size_t>(pages) * page * Shape::cached_elements_per_token, 1);
  }
  if (p->q.count(heads) == 0) {
    const auto rows = static_cast<std::size_t>(p->batch) * heads;
    p->q[heads] = {random_values<float>(rows * Shape::latent_rank, 2), random_values<float>(rows * Shape::rope_dim, 3)};
  }
  return *p;
}

template <class Shape, class Elem, bool CompileTime>
void run(const mla::cpu::mla_decode_args<Elem>& a) {
  if constexpr (CompileTime)
    mla::cpu::detail::mla_decode_impl<Elem, Shape::latent_rank, Shape::rope_dim>(a, Shape::latent_rank,
                                                                                 Shape::rope_dim);
  else
    mla::cpu::detail::mla_decode_impl<Elem>(a, Shape::latent_rank, Shape::rope_dim);
}

template <class Shape, class Elem, bool CompileTime>
void BM_width(benchmark::State& state, int heads) {
  constexpr int rank = Shape::latent_rank, rope = Shape::rope_dim;
  const int ctx = static_cast<int>(state.range(0));
  problem<Elem>& p = problem_for<Shape, Elem>(ctx, heads);
  const auto rows = static_cast<std::size_t>(p.batch) * heads;
  std::vector<float> out(rows * rank), lse(rows);
  mla::cpu::mla_decode_args<Elem> a;
  a.q_latent = p.q[heads].first.data();
  a.q_pe = p.q[heads].second.data();
  a.cache = p.cache.data();
  a.pages = p.layout.view();
  a.num_heads = heads;
  a.options.softmax_scale = 1.0f / std::sqrt(static_cast<float>(Shape::head_dim));
  a.options.num_threads = static_cast<int>(state.range(1));
  a.out = out.data();
  a.lse = lse.data();
  if (!p.checked[heads]) {  // both variants, bit for bit (with the thread count of this run)
    std::vector<float> out2(out.size()), lse2(lse.size());
    auto b = a;
    b.out = out2.data(), b.lse = lse2.data();
    run<Shape, Elem, true>(a);
    run<Shape, Elem, false>(b);
    if (std::memcmp(out.data(), out2.data(), out.size() * sizeof(float)) != 0 ||
        std::memcmp(lse.data(), lse2.data(), lse.size() * sizeof(float)) != 0) {
      state.SkipWithError("compile-time and runtime widths differ");
      return;
    }
    p.checked[heads] = true;
  }
  for (auto _ : state) {
    run<Shape, Elem, CompileTime>(a);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double keys = static_cast<double>(p.batch) * ctx;
  state.counters["batch"] = p.batch;
  state.counters["GFLOP/s"] =
      benchmark::Counter(2e-9 * heads * (2.0 * rank + rope) * keys, benchmark::Counter::kIsIterationInvariantRate);
}

template <class Shape, class Elem>
void register_shape(const char* model, int heads) {
  auto one = [&](auto compile_time) {
    constexpr bool ct = decltype(compile_time)::value;
    const std::string name = std::string("mla_width/") + (ct ? "compile/" : "runtime/") + model + "/h" +
                             std::to_string(heads) + "/r" + std::to_string(Shape::latent_rank) + "+" +
                             std::to_string(Shape::rope_dim) + "/" + (std::is_same_v<Elem, float> ? "f32" : "bf16");
    benchmark::RegisterBenchmark(name.c_str(), BM_width<Shape, Elem, ct>, heads)
        ->ArgNames({"ctx", "threads"})
        ->ArgsProduct({{4096, 8192}, {1, 2}})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MeasureProcessCPUTime();
  };
  one(std::true_type{});
  one(std::false_type{});
}

template <class Elem>
void register_all() {
  using gpt_oss_50 = mla::mla_shape<96, 32, 480>;
  using gpt_oss_75 = mla::mla_shape<96, 32, 224>;
  register_shape<gpt_oss_50, Elem>("gpt-oss", 64);
  register_shape<gpt_oss_75, Elem>("gpt-oss", 64);
  register_shape<gpt_oss_50, Elem>("gpt-oss", 8);
  register_shape<gpt_oss_75, Elem>("gpt-oss", 8);
  register_shape<mla::mla_shape<96, 32, 160>, Elem>("SmolLM2", 9);
  register_shape<mla::mla_shape<192, 64, 512>, Elem>("DeepSeek-V3", 16);
}

}  // namespace

int main(int argc, char** argv) {
  register_all<float>();
  register_all<bf16>();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
