// libFuzzer harness for the safetensors header parser (mla::io::safetensors_file::from_bytes).
// Any input must either parse or throw mla::error; on success every tensor view must lie inside the
// input, and float tensors must convert. Build and run with scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "mla/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = mla::io::safetensors_file::from_bytes(mla::io::byte_span{data, size}, "fuzz");
    std::uint64_t total = 0;
    for (const auto& t : f.tensors()) {
      if (t.bytes.size > 0 && (t.bytes.data < data || t.bytes.data + t.bytes.size > data + size)) std::abort();
      total += t.bytes.size;
      volatile std::uint8_t sink = 0;
      for (std::size_t i = 0; i < t.bytes.size; ++i) sink = static_cast<std::uint8_t>(sink ^ t.bytes[i]);
      if (mla::io::dtype_is_float(t.type) && t.numel < (1u << 16)) (void)mla::io::to_float(t);
      (void)f.tensor(t.name);
    }
    if (total + f.data_offset() != size) std::abort();  // the offsets tile the data section
    for (const auto& kv : f.metadata()) (void)kv;
  } catch (const mla::error&) {
  }
  return 0;
}
