// mla-make-gpt-oss: writes a synthetic checkpoint in the exact layout of openai/gpt-oss-20b (HF names,
// BF16 + MXFP4 experts, sharded safetensors, config.json), seeded random weights, any size.
//
//   mla-make-gpt-oss --preset tiny --out /tmp/gpt-oss-tiny
//   mla-make-gpt-oss --preset mid --out /tmp/gpt-oss-mid                   (~0.2 GB)
//   mla-make-gpt-oss --preset 20b --out /data/gpt-oss-20b-synthetic      (~13 GB)
#include <CLI/CLI.hpp>
#include <cstdio>
#include <mla/model/gpt_oss_checkpoint.hpp>

#include "../common/cli.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Write a synthetic gpt-oss checkpoint (safetensors + config.json)"};
  mla_examples::start(app, "mla-make-gpt-oss");
  std::string out, preset = "tiny";
  std::uint64_t seed = 0;
  double max_shard_mb = 0;
  int layers = 0, vocab = 0, window = -1;
  app.add_option("--out", out, "output directory (created)")->required();
  app.add_option("--preset", preset, "model shape")->check(mla_examples::one_of({"tiny", "mid", "20b"}));
  app.add_option("--seed", seed, "weight seed (same seed, same bytes)");
  app.add_option("--layers", layers, "override the number of layers (0: the preset's)")
      ->check(mla_examples::integer(0));
  app.add_option("--vocab", vocab, "override the vocabulary size (0: the preset's)")->check(mla_examples::integer(0));
  app.add_option("--sliding-window", window, "override the sliding window (-1: the preset's)")
      ->check(mla_examples::integer(-1));
  app.add_option("--max-shard-mb", max_shard_mb, "shard size limit in MiB (0: 1 for tiny, 1000 for mid, 5000 for 20b)")
      ->check(mla_examples::number(0));
  MLA_CLI_PARSE(app, argc, argv);
  const mla::util::run_summary summary("mla-make-gpt-oss");  // the last line: wall time, peak memory

  try {
    mla::model::gpt_oss_shape s = preset == "20b"   ? mla::model::gpt_oss_shape::gpt_oss_20b()
                                  : preset == "mid" ? mla::model::gpt_oss_shape::mid()
                                                    : mla::model::gpt_oss_shape::tiny();
    if (layers) s.n_layers = layers;
    if (vocab) s.vocab_size = vocab;
    if (window >= 0) s.sliding_window = window;
    if (max_shard_mb == 0) max_shard_mb = preset == "20b" ? 5000 : preset == "mid" ? 1000 : 1;
    const int n = mla::model::write_gpt_oss_checkpoint(
        out, s, seed, static_cast<std::uint64_t>(max_shard_mb * 1024 * 1024),
        [](int i, int total) { std::fprintf(stderr, "shard %d/%d written\n", i + 1, total); });
    std::printf("%s: gpt-oss %s (%d layers, hidden %d, %d experts top-%d, vocab %d), seed %llu, %d shards\n",
                out.c_str(), preset.c_str(), s.n_layers, s.hidden, s.n_experts, s.experts_per_token, s.vocab_size,
                static_cast<unsigned long long>(seed), n);
    return mla::util::exit_ok;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-make-gpt-oss: error: %s\n", e.what());
    return mla::util::exit_failure;
  }
}
