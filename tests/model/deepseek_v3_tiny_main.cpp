// mla-make-deepseek-v3-tiny <out_dir> [seed]: writes the tiny DeepSeek-V3 export of the transformers golden
// (deepseek_v3_tiny.hpp), the directory tools/transformers_deepseek_v3_golden.py runs in transformers.
#include <cstdio>
#include <exception>
#include <string>

#include "deepseek_v3_tiny.hpp"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: mla-make-deepseek-v3-tiny <out_dir> [seed (default %llu)]\n",
                 static_cast<unsigned long long>(mla::test::deepseek2_tiny_seed));
    return 2;
  }
  try {
    const std::uint64_t seed = argc == 3 ? std::stoull(argv[2]) : mla::test::deepseek2_tiny_seed;
    mla::test::write_deepseek_v3_tiny(argv[1], seed);
    std::printf("%s (seed %llu)\n", argv[1], static_cast<unsigned long long>(seed));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-make-deepseek-v3-tiny: %s\n", e.what());
    return 1;
  }
  return 0;
}
