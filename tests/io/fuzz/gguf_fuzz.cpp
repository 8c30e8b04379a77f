// libFuzzer harness for the GGUF parser (mla::io::gguf_file::from_bytes). Any input must either parse
// or throw mla::error; on success every tensor view must lie inside the input and supported tensor
// types must dequantise. Build and run with scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "mla/io/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto g = mla::io::gguf_file::from_bytes(mla::io::byte_span{data, size}, "fuzz");
    for (const auto& [key, value] : g.metadata()) {
      (void)value.type_name();
      (void)value.array_size();
      if (g.find(key) == nullptr) std::abort();
      try {
        (void)g.get_integer<std::int32_t>(key);
      } catch (const mla::error&) {
      }
    }
    for (const auto& t : g.tensors()) {
      if (t.bytes.size > 0 && (t.bytes.data < data || t.bytes.data + t.bytes.size > data + size)) std::abort();
      if (t.offset % g.alignment() != 0) std::abort();
      (void)t.shape();
      (void)g.tensor(t.name);
      if (mla::io::can_dequantize(t.type) && t.numel < (1u << 16)) (void)g.dequantize(t);
    }
  } catch (const mla::error&) {
  }
  return 0;
}
