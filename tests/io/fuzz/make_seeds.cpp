// Writes the seed corpus for the fuzz harnesses: small valid GGUF (v2, v3, 64-byte alignment) and
// safetensors files made with the test writers. Usage: make_seeds <dir>  (creates <dir>/gguf and
// <dir>/safetensors). Built and run by scripts/fuzz.sh.
#include <cstdio>
#include <filesystem>
#include <string>

#include "io_test_support.hpp"
#include "mla/io/safetensors.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <dir> [golden.gguf.hex | golden.safetensors.hex ...]\n", argv[0]);
    return 2;
  }
  namespace fs = std::filesystem;
  const fs::path dir(argv[1]);
  fs::create_directories(dir / "gguf");
  fs::create_directories(dir / "safetensors");

  mla_test::write_file((dir / "gguf" / "full_v3.gguf").string(), mla_test::full_gguf_builder(3).build());
  mla_test::write_file((dir / "gguf" / "full_v2.gguf").string(), mla_test::full_gguf_builder(2).build());
  mla_test::gguf_builder a;
  a.alignment = 64;
  a.kv<std::uint32_t>("general.alignment", mla_test::U32, 64);
  a.kv_string("general.architecture", "llama");
  a.add_tensor("a", {32}, 8, mla_test::q8_0_bytes(std::vector<int>(32, 3)));
  a.add_tensor("b", {2}, 0, mla_test::f32_bytes({1, 2}));
  mla_test::write_file((dir / "gguf" / "align64.gguf").string(), a.build());

  mla_test::rng r(1);
  mla::io::safetensors_writer w;
  w.set_metadata("format", "pt");
  w.add("model.embed_tokens.weight", mla::io::dtype::BF16, {4, 3}, r.random_bytes(24));
  w.add("model.norm.weight", mla::io::dtype::F32, {3}, r.random_bytes(12));
  w.add("experts.blocks", mla::io::dtype::U8, {1, 2, 16}, r.random_bytes(32));
  w.add("experts.scales", mla::io::dtype::U8, {1, 2}, r.random_bytes(2));
  w.add("scalar", mla::io::dtype::F16, {}, r.random_bytes(2));
  w.add("empty", mla::io::dtype::F64, {0, 2}, {});
  w.write((dir / "safetensors" / "small.safetensors").string());
  mla::io::safetensors_writer e;
  e.write((dir / "safetensors" / "empty.safetensors").string());
  // The committed golden files (hex text, tests/io/data) as binary seeds, by their extension.
  for (int i = 2; i < argc; ++i) {
    const fs::path hex(argv[i]);
    const fs::path name = hex.stem();  // "x.gguf.hex" -> "x.gguf"
    const char* sub = name.extension() == ".gguf" ? "gguf" : "safetensors";
    mla_test::write_file((dir / sub / name).string(), mla_test::read_hex_file(hex.string()));
  }
  std::printf("seeds written to %s\n", argv[1]);
  return 0;
}
