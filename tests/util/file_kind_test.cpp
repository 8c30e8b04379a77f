// util::detect_file_kind reads the content, not the name: a safetensors file named .gguf is safetensors, a GGUF
// file named .safetensors is GGUF; check_gguf_file names what a wrong file is.
#include "mla/util/file_kind.hpp"

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "expect_error.hpp"
#include "files.hpp"

BOOST_AUTO_TEST_SUITE(file_kind)

namespace {

void write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// A minimal safetensors file: u64 header length (little-endian), the JSON header, no tensors.
std::string safetensors_bytes() {
  const std::string header = "{\"__metadata__\":{}}";
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[std::size_t(i)] = char((std::uint64_t(header.size()) >> (8 * i)) & 0xff);
  return out + header;
}

}  // namespace

BOOST_AUTO_TEST_CASE(kinds_from_content) {
  using mla::util::detect_file_kind;
  using K = mla::util::file_kind;
  mla::test::temp_dir tmp("mla-kind");
  write(tmp.file("model.gguf"), safetensors_bytes());
  write(tmp.file("model.safetensors"), std::string("GGUF\x03\0\0\0", 8) + std::string(16, '\0'));
  write(tmp.file("config.gguf"), "  {\"a\": 1}");
  write(tmp.file("text.gguf"), "hello world");
  // A length that runs past the end of the file is not safetensors.
  write(tmp.file("short.bin"), std::string("\xff\0\0\0\0\0\0\0{", 9));
  BOOST_TEST((detect_file_kind(tmp.file("model.gguf")) == K::safetensors));
  BOOST_TEST((detect_file_kind(tmp.file("model.safetensors")) == K::gguf));
  BOOST_TEST((detect_file_kind(tmp.file("config.gguf")) == K::json));
  BOOST_TEST((detect_file_kind(tmp.file("text.gguf")) == K::other));
  BOOST_TEST((detect_file_kind(tmp.file("short.bin")) == K::other));
  BOOST_TEST((detect_file_kind(tmp.path()) == K::directory));
  BOOST_TEST((detect_file_kind(tmp.file("none")) == K::missing));

  BOOST_CHECK_NO_THROW(mla::util::check_gguf_file("--model", tmp.file("model.safetensors")));
  mla::test::expect_error([&] { mla::util::check_gguf_file("--model", tmp.file("model.gguf")); },
                          {"--model: '" + tmp.file("model.gguf") + "' is a safetensors file", "pass the directory"});
  mla::test::expect_error([&] { mla::util::check_gguf_file("--model", tmp.file("config.gguf")); }, {"is a JSON file"});
  mla::test::expect_error([&] { mla::util::check_gguf_file("--model", tmp.file("text.gguf")); },
                          {"is neither GGUF nor safetensors nor JSON"});
}

BOOST_AUTO_TEST_SUITE_END()
