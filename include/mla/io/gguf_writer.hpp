// mla::io::gguf_writer: writes a GGUF version 3 file (little-endian), the format io/gguf.hpp reads.
//
// Layout (formats.md §3.2; ggml-org/ggml docs/gguf.md):
//   u32 magic "GGUF" | u32 version 3 | u64 tensor_count | u64 kv_count
//   kv_count x  { string key | u32 value_type | value }            (in the order they were set)
//   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   zero padding to the alignment, then the data section: each tensor at an offset that is a multiple of the
//   alignment, zero-padded to the next multiple
// The alignment is the UINT32 key `general.alignment` when set (a power of two), else 32.
// Tensors are given as float in ggml order (ne[0] fastest: a PyTorch [out, in] weight has ne = {in, out}) and
// encoded as F32 (exact), F16 (round to nearest even) or Q8_0 (quantize_q8_0; ne[0] a multiple of 32).
// The file is written to a temporary beside `path` and renamed into place (atomic_file): a failed write leaves
// nothing under `path`.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/io/atomic_file.hpp"
#include "mla/io/dtype.hpp"
#include "mla/io/gguf.hpp"
#include "mla/io/quant_blocks.hpp"

namespace mla::io {

class gguf_writer {
 public:
  struct tensor {
    std::string name;
    std::vector<std::uint64_t> ne;  // ggml order, 1 to 4 dims
    ggml_type type = ggml_type::F32;
    std::vector<std::uint8_t> bytes;
  };

  // Sets `key` (replacing its value, in place, when it is already set).
  void set(const std::string& key, gguf_value v) {
    check(!key.empty() && key.size() <= gguf_max_key_bytes, "gguf_writer: key '", key, "' must have 1 to ",
          gguf_max_key_bytes, " bytes");
    for (auto& kv : kv_)
      if (kv.first == key) {
        kv.second = std::move(v);
        return;
      }
    kv_.emplace_back(key, std::move(v));
  }
  template <class T>
  void set(const std::string& key, T v) {
    if constexpr (std::is_same_v<std::decay_t<T>, const char*> || std::is_same_v<std::decay_t<T>, char*>)
      set(key, gguf_value(std::string(v)));
    else
      set(key, gguf_value(std::move(v)));
  }
  const std::vector<std::pair<std::string, gguf_value>>& metadata() const noexcept { return kv_; }

  // Adds a tensor from floats in ggml order (numel = product of ne), encoded as `type` (F32, F16 or Q8_0).
  void add_tensor(const std::string& name, std::vector<std::uint64_t> ne, ggml_type type, const float* data) {
    const std::uint64_t n = numel(name, ne);
    tensor t{name, std::move(ne), type, {}};
    switch (type) {
      case ggml_type::F32:
        t.bytes.resize(static_cast<std::size_t>(n) * 4);
        if (n > 0) std::memcpy(t.bytes.data(), data, t.bytes.size());
        break;
      case ggml_type::F16:
        t.bytes.resize(static_cast<std::size_t>(n) * 2);
        for (std::uint64_t i = 0; i < n; ++i) {
          const std::uint16_t h = float_to_f16(data[i]);
          std::memcpy(t.bytes.data() + 2 * i, &h, 2);
        }
        break;
      case ggml_type::Q8_0:
        check(t.ne[0] % 32 == 0, "gguf_writer: tensor '", name, "': Q8_0 needs ne[0] a multiple of 32, found ",
              t.ne[0]);
        t.bytes.resize(static_cast<std::size_t>(n / 32 * 34));
        quantize_q8_0(data, t.bytes.data(), static_cast<std::size_t>(n));
        break;
      default:
        mla::detail::throw_error("gguf_writer: tensor '", name, "': cannot encode ggml type ", ggml_type_name(type),
                                 " (F32, F16 and Q8_0 can be written)");
    }
    add(std::move(t));
  }

  // Adds a tensor whose bytes are already encoded (their size must be ggml_nbytes of the type).
  void add_encoded_tensor(const std::string& name, std::vector<std::uint64_t> ne, ggml_type type,
                          std::vector<std::uint8_t> bytes) {
    const std::uint64_t n = numel(name, ne);
    std::uint64_t want = 0;
    check(ne[0] % ggml_traits(type).block_size == 0 && ggml_nbytes(type, n, want) && want == bytes.size(),
          "gguf_writer: tensor '", name, "' of type ", ggml_type_name(type), " has ", bytes.size(), " bytes, expected ",
          want, " for ", n, " elements");
    add(tensor{name, std::move(ne), type, std::move(bytes)});
  }
  const std::vector<tensor>& tensors() const noexcept { return tensors_; }

  std::uint32_t alignment() const {
    for (const auto& kv : kv_)
      if (kv.first == "general.alignment") {
        const auto* a = kv.second.get_if<std::uint32_t>();
        check(a != nullptr && *a != 0 && (*a & (*a - 1)) == 0,
              "gguf_writer: general.alignment must be a UINT32 power of two, found ", kv.second.type_name());
        return *a;
      }
    return gguf_default_alignment;
  }

  // The whole file, atomically at `path`.
  void write(const std::string& path) const {
    const std::uint32_t align = alignment();
    std::vector<std::uint8_t> head;
    put<std::uint32_t>(head, gguf_magic);
    put<std::uint32_t>(head, 3);
    put<std::uint64_t>(head, tensors_.size());
    put<std::uint64_t>(head, kv_.size());
    for (const auto& [key, v] : kv_) {
      put_string(head, key);
      put<std::uint32_t>(head, static_cast<std::uint32_t>(v.type()));
      put_value(head, v);
    }
    std::uint64_t offset = 0;
    for (const tensor& t : tensors_) {
      put_string(head, t.name);
      put<std::uint32_t>(head, static_cast<std::uint32_t>(t.ne.size()));
      for (std::uint64_t d : t.ne) put<std::uint64_t>(head, d);
      put<std::uint32_t>(head, static_cast<std::uint32_t>(t.type));
      put<std::uint64_t>(head, offset);
      offset += padded(t.bytes.size(), align);
    }
    head.resize(static_cast<std::size_t>(padded(head.size(), align)), 0);
    atomic_file f(path);
    f.write(head.data(), head.size());
    const std::vector<std::uint8_t> zeros(align, 0);
    for (const tensor& t : tensors_) {
      f.write(t.bytes.data(), t.bytes.size());
      f.write(zeros.data(), static_cast<std::size_t>(padded(t.bytes.size(), align) - t.bytes.size()));
    }
    f.commit();
  }

 private:
  static std::uint64_t padded(std::uint64_t n, std::uint64_t align) { return (n + align - 1) / align * align; }

  static std::uint64_t numel(const std::string& name, const std::vector<std::uint64_t>& ne) {
    check(!name.empty() && name.size() < gguf_max_tensor_name_bytes, "gguf_writer: tensor name '", name,
          "' must have 1 to ", gguf_max_tensor_name_bytes - 1, " bytes (ggml's GGML_MAX_NAME)");
    check(!ne.empty() && ne.size() <= gguf_max_dims, "gguf_writer: tensor '", name, "' has ", ne.size(),
          " dims, expected 1 to ", gguf_max_dims);
    std::uint64_t n = 1;
    for (std::uint64_t d : ne) n *= d;
    return n;
  }

  void add(tensor t) {
    for (const tensor& o : tensors_) check(o.name != t.name, "gguf_writer: duplicate tensor name '", t.name, "'");
    tensors_.push_back(std::move(t));
  }

  template <class T>
  static void put(std::vector<std::uint8_t>& b, T v) {
    const std::size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
  }
  static void put_string(std::vector<std::uint8_t>& b, const std::string& s) {
    put<std::uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  template <class T>
  static void put_scalar(std::vector<std::uint8_t>& b, const T& x) {
    if constexpr (std::is_same_v<T, std::string>)
      put_string(b, x);
    else if constexpr (std::is_same_v<T, bool>)
      put<std::uint8_t>(b, x ? 1 : 0);
    else
      put<T>(b, x);
  }
  static void put_value(std::vector<std::uint8_t>& b, const gguf_value& v) {
    std::visit(
        [&](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          if constexpr (detail::is_std_vector<X>::value) {
            using E = typename detail::is_std_vector<X>::element;
            put<std::uint32_t>(b, static_cast<std::uint32_t>(detail::gguf_type_of<E>()));
            put<std::uint64_t>(b, x.size());
            for (std::size_t i = 0; i < x.size(); ++i) put_scalar<E>(b, x[i]);
          } else {
            put_scalar<X>(b, x);
          }
        },
        v.value());
  }

  std::vector<std::pair<std::string, gguf_value>> kv_;
  std::vector<tensor> tensors_;
};

}  // namespace mla::io
