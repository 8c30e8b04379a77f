// mla-make-deepseek2-tiny <out.gguf> [seed]: writes the tiny deepseek2 GGUF of the llama.cpp golden
// (deepseek2_tiny.hpp), the file tools/deepseek2_golden.py runs in llama.cpp.
#include <cstdio>
#include <exception>
#include <string>

#include "deepseek2_tiny.hpp"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: mla-make-deepseek2-tiny <out.gguf> [seed (default %llu)]\n",
                 static_cast<unsigned long long>(mla::test::deepseek2_tiny_seed));
    return 2;
  }
  try {
    const std::uint64_t seed = argc == 3 ? std::stoull(argv[2]) : mla::test::deepseek2_tiny_seed;
    mla::test::write_deepseek2_tiny(argv[1], seed);
    std::printf("%s (seed %llu)\n", argv[1], static_cast<unsigned long long>(seed));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-make-deepseek2-tiny: %s\n", e.what());
    return 1;
  }
  return 0;
}
