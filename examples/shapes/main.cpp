// mla-shapes: which supported MLA shapes fit a KV-cache budget for a GQA model.
//
//   mla-shapes --kv-heads 8 --head-dim 64 --reduction 0.5      (gpt-oss at 50 %)
//   mla-shapes --kv-heads 3 --head-dim 64 --reduction 0.75     (SmolLM2 at 75 %)
#include <CLI/CLI.hpp>
#include <cstdio>
#include <mla/core/dispatch.hpp>

int main(int argc, char** argv) {
  CLI::App app{"List the supported MLA shapes that fit a KV-cache budget of a GQA model"};
  int kv_heads = 8, head_dim = 64;
  double reduction = 0.5;
  app.add_option("--kv-heads", kv_heads, "KV heads of the source GQA layer")->check(CLI::PositiveNumber);
  app.add_option("--head-dim", head_dim, "head dim of the source GQA layer")->check(CLI::PositiveNumber);
  app.add_option("--reduction", reduction, "fraction of the KV cache to remove")->check(CLI::Range(0.0, 1.0));
  CLI11_PARSE(app, argc, argv);

  const int gqa_elements = 2 * kv_heads * head_dim;
  const int budget = static_cast<int>(gqa_elements * (1.0 - reduction));
  std::printf("GQA cache: 2 x %d KV heads x %d = %d elements per token and layer\n", kv_heads, head_dim,
              gqa_elements);
  std::printf("budget at %.1f %% reduction: %d elements\n\n", 100.0 * reduction, budget);
  std::printf("%9s %9s %12s %10s %10s\n", "head_dim", "rope_dim", "latent_rank", "cached", "reduction");
  // For each head split, the largest supported rank whose cache fits the budget.
  int prev_h = -1, prev_r = -1;
  mla::runtime_shape best{};
  auto flush = [&] {
    if (best.latent_rank > 0)
      std::printf("%9d %9d %12d %10d %9.1f%%\n", best.head_dim, best.rope_dim, best.latent_rank,
                  best.cached_elements_per_token(),
                  100.0 * (1.0 - double(best.cached_elements_per_token()) / gqa_elements));
    best = {};
  };
  for (const mla::runtime_shape& s : mla::supported_runtime_shapes()) {
    if (s.head_dim != prev_h || s.rope_dim != prev_r) flush();
    prev_h = s.head_dim;
    prev_r = s.rope_dim;
    if (s.cached_elements_per_token() <= budget) best = s;
  }
  flush();
  return 0;
}
