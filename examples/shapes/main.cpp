// mla-shapes: which supported MLA shapes fit a KV-cache budget for a GQA model (mla::fitting_shapes).
//
//   mla-shapes --kv-heads 8 --head-dim 64 --reduction 0.5      (gpt-oss at 50 %)
//   mla-shapes --kv-heads 3 --head-dim 64 --reduction 0.75     (SmolLM2 at 75 %)
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <mla/core/shape_fit.hpp>

#include "../common/cli.hpp"

int main(int argc, char** argv) {
  CLI::App app{"List the supported MLA shapes that fit a KV-cache budget of a GQA model"};
  mla_examples::start(app, "mla-shapes");
  std::int64_t kv_heads = 8, head_dim = 64;
  double reduction = 0.5;
  app.add_option("--kv-heads", kv_heads, "KV heads of the source GQA layer")->check(mla_examples::integer(1));
  app.add_option("--head-dim", head_dim, "head dim of the source GQA layer")->check(mla_examples::integer(1));
  app.add_option("--reduction", reduction, "fraction of the KV cache to remove")->check(mla_examples::number(0, 1));
  MLA_CLI_PARSE(app, argc, argv);
  const mla::util::run_summary summary("mla-shapes");  // the last line: wall time, peak memory

  try {
    const mla::shape_fit fit = mla::fitting_shapes(kv_heads, head_dim, reduction);
    std::printf("GQA cache: 2 x %lld KV heads x %lld = %lld elements per token and layer\n", (long long)kv_heads,
                (long long)head_dim, (long long)fit.gqa_elements);
    std::printf("budget at %.1f %% reduction: %lld elements\n\n", 100.0 * reduction, (long long)fit.budget);
    if (fit.shapes.empty()) {
      std::printf("no supported shape fits a budget of %lld elements\n", (long long)fit.budget);
      mla::util::check_stdout();
      return mla::util::exit_ok;
    }
    std::printf("%9s %9s %12s %10s %10s\n", "head_dim", "rope_dim", "latent_rank", "cached", "reduction");
    for (const mla::runtime_shape& s : fit.shapes)
      std::printf("%9d %9d %12d %10d %9.1f%%\n", s.head_dim, s.rope_dim, s.latent_rank, s.cached_elements_per_token(),
                  100.0 * (1.0 - double(s.cached_elements_per_token()) / double(fit.gqa_elements)));
    mla::util::check_stdout();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-shapes: error: %s\n", e.what());
    return mla::util::exit_failure;
  }
  return mla::util::exit_ok;
}
