// Test-only helpers for the io tests and the fuzz seed generator (no Boost here, and nothing from
// tests/support, which the fuzz build does not see): file writes, byte spans, a deterministic RNG, and a small
// GGUF writer that lays files out the way ggml's gguf writer does (metadata, tensor infos, zero padding,
// aligned tensor data). The temporary directory of the io tests is mla::test::temp_dir (files.hpp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "mla/io/mapped_file.hpp"

namespace mla_test {

using bytes = std::vector<std::uint8_t>;

inline void write_file(const std::string& path, const bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}
inline void write_file(const std::string& path, const std::string& s) { write_file(path, bytes(s.begin(), s.end())); }
inline bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Bytes from a hex text file (two digits per byte; whitespace ignored), the form in which the golden files of
// tests/io/data are committed (`xxd -p`; `xxd -r -p` turns one back into the binary file).
inline bytes read_hex_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto digit = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw std::runtime_error(path + ": '" + std::string(1, c) + "' is not a hex digit");
  };
  bytes out;
  int high = -1;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    const int v = digit(c);
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(high * 16 + v));
      high = -1;
    }
  }
  if (high >= 0) throw std::runtime_error(path + ": odd number of hex digits");
  return out;
}

// The bytes as the readers take them (valid while b lives).
inline mla::io::byte_span span(const bytes& b) { return mla::io::byte_span{b.data(), b.size()}; }

// xorshift64*: deterministic across platforms (std distributions are not).
class rng {
 public:
  explicit rng(std::uint64_t seed) : s_(seed ? seed : 0x9E3779B97F4A7C15ull) {}
  std::uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(next() % n); }
  std::uint8_t byte() { return static_cast<std::uint8_t>(next() >> 56); }
  // Uniform in [lo, hi).
  float uniform(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(static_cast<double>(next() >> 40) / static_cast<double>(1ull << 24));
  }
  bytes random_bytes(std::size_t n) {
    bytes b(n);
    for (auto& x : b) x = byte();
    return b;
  }

 private:
  std::uint64_t s_;
};

// Little-endian appends.
template <class T>
void put(bytes& b, T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  const std::size_t at = b.size();
  b.resize(at + sizeof(T));
  std::memcpy(b.data() + at, &v, sizeof(T));
}
inline void put_string(bytes& b, const std::string& s) {
  put<std::uint64_t>(b, s.size());
  const std::size_t at = b.size();
  b.resize(at + s.size());
  if (!s.empty()) std::memcpy(b.data() + at, s.data(), s.size());
}

// GGUF value type ids (formats.md §3.2), repeated here so the writer does not depend on the reader.
enum gguf_id : std::uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

// A small GGUF writer. Metadata is kept as raw encoded bytes, so tests can also write broken values.
class gguf_builder {
 public:
  struct tensor {
    std::string name;
    std::vector<std::uint64_t> ne;
    std::uint32_t type = 0;
    bytes data;
    bool override_offset = false;
    std::uint64_t offset = 0;
  };

  std::uint32_t magic = 0x46554747;
  std::uint32_t version = 3;
  std::uint64_t alignment = 32;  // layout only: add a "general.alignment" key to announce another one
  std::vector<tensor> tensors;

  // Appends a key with a raw type id and pre-encoded value bytes.
  void kv_raw(const std::string& key, std::uint32_t type, const bytes& value) {
    put_string(kv_, key);
    put<std::uint32_t>(kv_, type);
    kv_.insert(kv_.end(), value.begin(), value.end());
    ++n_kv_;
  }
  template <class T>
  void kv(const std::string& key, std::uint32_t type, T v) {
    bytes b;
    put<T>(b, v);
    kv_raw(key, type, b);
  }
  void kv_string(const std::string& key, const std::string& s) {
    bytes b;
    put_string(b, s);
    kv_raw(key, STRING, b);
  }
  template <class T>
  void kv_array(const std::string& key, std::uint32_t elem_type, const std::vector<T>& v) {
    bytes b;
    put<std::uint32_t>(b, elem_type);
    put<std::uint64_t>(b, v.size());
    for (const T& x : v) put<T>(b, x);
    kv_raw(key, ARRAY, b);
  }
  void kv_array_strings(const std::string& key, const std::vector<std::string>& v) {
    bytes b;
    put<std::uint32_t>(b, STRING);
    put<std::uint64_t>(b, v.size());
    for (const auto& s : v) put_string(b, s);
    kv_raw(key, ARRAY, b);
  }

  void add_tensor(std::string name, std::vector<std::uint64_t> ne, std::uint32_t type, bytes data) {
    tensor t;
    t.name = std::move(name);
    t.ne = std::move(ne);
    t.type = type;
    t.data = std::move(data);
    tensors.push_back(std::move(t));
  }

  // header | kv | tensor infos | pad | data (each tensor padded to the alignment).
  bytes build() const {
    bytes b;
    put<std::uint32_t>(b, magic);
    put<std::uint32_t>(b, version);
    put<std::uint64_t>(b, tensors.size());
    put<std::uint64_t>(b, n_kv_);
    b.insert(b.end(), kv_.begin(), kv_.end());
    std::uint64_t offset = 0;
    std::vector<std::uint64_t> offsets;
    for (const auto& t : tensors) {
      const std::uint64_t off = t.override_offset ? t.offset : offset;
      offsets.push_back(off);
      put_string(b, t.name);
      put<std::uint32_t>(b, static_cast<std::uint32_t>(t.ne.size()));
      for (auto d : t.ne) put<std::uint64_t>(b, d);
      put<std::uint32_t>(b, t.type);
      put<std::uint64_t>(b, off);
      offset += (t.data.size() + alignment - 1) / alignment * alignment;
    }
    while (b.size() % alignment != 0) b.push_back(0);
    const std::size_t data_start = b.size();
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const auto& t = tensors[i];
      const std::size_t at = data_start + offsets[i];
      if (b.size() < at + t.data.size()) b.resize(at + t.data.size(), 0);
      std::memcpy(b.data() + at, t.data.data(), t.data.size());
    }
    if (!tensors.empty()) {
      while ((b.size() - data_start) % alignment != 0) b.push_back(0);
    }
    return b;
  }

 private:
  bytes kv_;
  std::uint64_t n_kv_ = 0;
};

inline bytes f32_bytes(const std::vector<float>& v) {
  bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// One Q8_0 block per 32 values with scale 1 and codes = the values (integers in [-128, 127]).
inline bytes q8_0_bytes(const std::vector<int>& codes) {
  bytes b;
  for (std::size_t i = 0; i < codes.size(); i += 32) {
    mla_test::put<std::uint16_t>(b, 0x3C00);
    for (int j = 0; j < 32; ++j) b.push_back(static_cast<std::uint8_t>(static_cast<std::int8_t>(codes[i + j])));
  }
  return b;
}

// A file with every metadata value type and tensors of several types and ranks.
inline gguf_builder full_gguf_builder(std::uint32_t version) {
  gguf_builder g;
  g.version = version;
  g.kv_string("general.architecture", "llama");
  g.kv<std::uint8_t>("t.u8", U8, 250);
  g.kv<std::int8_t>("t.i8", I8, -120);
  g.kv<std::uint16_t>("t.u16", U16, 65000);
  g.kv<std::int16_t>("t.i16", I16, -32000);
  g.kv<std::uint32_t>("llama.block_count", U32, 30);
  g.kv<std::int32_t>("t.i32", I32, -7);
  g.kv<float>("llama.rope.freq_base", F32, 10000.0f);
  g.kv<std::uint8_t>("t.bool", BOOL, 1);
  g.kv<std::uint64_t>("t.u64", U64, 0xFFFFFFFFFFFFFFFFull);
  g.kv<std::int64_t>("t.i64", I64, -5);
  g.kv<double>("t.f64", F64, 0.1);
  g.kv_string("t.empty_string", "");
  g.kv_array<std::uint8_t>("t.a.u8", U8, {1, 2, 255});
  g.kv_array<std::int8_t>("t.a.i8", I8, {-1, 0});
  g.kv_array<std::uint16_t>("t.a.u16", U16, {7});
  g.kv_array<std::int16_t>("t.a.i16", I16, {-300, 300});
  g.kv_array<std::uint32_t>("t.a.u32", U32, {});
  g.kv_array<std::int32_t>("tokenizer.ggml.token_type", I32, {1, 3, 1});
  g.kv_array<float>("tokenizer.ggml.scores", F32, {0.0f, -1.5f, 2.25f});
  g.kv_array<std::uint8_t>("t.a.bool", BOOL, {1, 0, 1});
  g.kv_array_strings("tokenizer.ggml.tokens", {"<s>", "", "h\xc3\xa9llo"});
  g.kv_array<std::uint64_t>("t.a.u64", U64, {1ull << 63});
  g.kv_array<std::int64_t>("t.a.i64", I64, {std::numeric_limits<std::int64_t>::min()});
  g.kv_array<double>("t.a.f64", F64, {1e300, -0.0});
  // Tensors: F32 [3, 4] (ne = {4, 3}), F16 vector, BF16 3-D, Q8_0 [2, 64], 4-D F32, Q4_K one block.
  std::vector<float> f(12);
  for (int i = 0; i < 12; ++i) f[i] = static_cast<float>(i) - 5.5f;
  g.add_tensor("token_embd.weight", {4, 3}, 0, f32_bytes(f));
  g.add_tensor("output_norm.weight", {5}, 1, bytes{0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x00, 0x7C, 0x00, 0x00});
  g.add_tensor("blk.0.bf16", {2, 1, 2}, 30, bytes{0x80, 0x3F, 0x40, 0x40, 0x80, 0xBF, 0x00, 0x00});
  std::vector<int> codes(128);
  for (int i = 0; i < 128; ++i) codes[i] = i - 64;
  g.add_tensor("blk.0.attn_q.weight", {64, 2}, 8, q8_0_bytes(codes));
  g.add_tensor("blk.0.four_d", {1, 2, 1, 2}, 0, f32_bytes({1, 2, 3, 4}));
  g.add_tensor("blk.0.q4k", {256}, 12, bytes(144, 0));
  return g;
}

}  // namespace mla_test
