// A consumer of the GGUF reader alone: built against mla::io only, which must not need Eigen (the check
// below fails the build if Eigen is on the include path) nor OpenMP nor CUDA. It parses a GGUF image made
// here byte by byte (version 3, no tensors, one string key) and prints the key it reads back.
#include <mla/io/gguf.hpp>

#if __has_include(<Eigen/Core>)
#error "mla::io put Eigen on the include path; the GGUF reader must not need it"
#endif

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace {
void put_u32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u64(std::vector<std::uint8_t>& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_string(std::vector<std::uint8_t>& b, const std::string& s) {
  put_u64(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
}  // namespace

int main() {
  std::vector<std::uint8_t> b;
  put_u32(b, 0x46554747u);  // "GGUF"
  put_u32(b, 3);            // version
  put_u64(b, 0);            // tensor count
  put_u64(b, 1);            // metadata count
  put_string(b, "general.architecture");
  put_u32(b, 8);  // GGUF string
  put_string(b, "llama");
  const mla::io::gguf_file f = mla::io::gguf_file::from_bytes(mla::io::byte_span{b.data(), b.size()});
  const std::string arch = f.get<std::string>("general.architecture");
  std::cout << "io_consumer: general.architecture = " << arch << "\n";
  return arch == "llama" ? 0 : 1;
}
