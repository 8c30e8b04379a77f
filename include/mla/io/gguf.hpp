// mla::io GGUF reader (versions 2 and 3, little-endian), memory-mapped, every field bounds-checked.
//
// Layout (formats.md §3.2; ggml-org/ggml docs/gguf.md):
//   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x  { string key | u32 value_type | value }
//   tensor_count x { string name | u32 n_dims (<= 4) | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   zero padding to `general.alignment` (u32, power of two, default 32)
//   data section: tensor bytes at `offset` (a multiple of the alignment) from its start
// string = u64 length + bytes (no NUL); array = u32 element type | u64 count | elements.
// ne[0] is the fastest axis: a PyTorch [out, in] weight has ne = {in, out}; shape() reverses it.
// Errors name the file, the key or tensor, and what was expected.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/io/mapped_file.hpp"
#include "mla/io/quant_blocks.hpp"

namespace mla::io {

inline constexpr std::uint32_t gguf_magic = 0x46554747;  // "GGUF" read as little-endian u32
inline constexpr std::uint32_t gguf_default_alignment = 32;
inline constexpr std::size_t gguf_max_dims = 4;
inline constexpr std::size_t gguf_max_key_bytes = 65535;
inline constexpr std::size_t gguf_max_tensor_name_bytes = 64;

enum class gguf_type : std::uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

inline const char* gguf_type_name(gguf_type t) {
  static constexpr const char* names[] = {"UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
                                          "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
  const auto i = static_cast<std::uint32_t>(t);
  return i < 13 ? names[i] : "INVALID";
}

namespace detail {
// The C++ type that holds each GGUF scalar type.
template <class T>
constexpr gguf_type gguf_type_of() {
  if constexpr (std::is_same_v<T, std::uint8_t>)
    return gguf_type::UINT8;
  else if constexpr (std::is_same_v<T, std::int8_t>)
    return gguf_type::INT8;
  else if constexpr (std::is_same_v<T, std::uint16_t>)
    return gguf_type::UINT16;
  else if constexpr (std::is_same_v<T, std::int16_t>)
    return gguf_type::INT16;
  else if constexpr (std::is_same_v<T, std::uint32_t>)
    return gguf_type::UINT32;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return gguf_type::INT32;
  else if constexpr (std::is_same_v<T, float>)
    return gguf_type::FLOAT32;
  else if constexpr (std::is_same_v<T, bool>)
    return gguf_type::BOOL;
  else if constexpr (std::is_same_v<T, std::string>)
    return gguf_type::STRING;
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return gguf_type::UINT64;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return gguf_type::INT64;
  else if constexpr (std::is_same_v<T, double>)
    return gguf_type::FLOAT64;
  else
    return gguf_type::ARRAY;
}
template <class T>
struct is_std_vector : std::false_type {};
template <class T>
struct is_std_vector<std::vector<T>> : std::true_type {
  using element = T;
};
}  // namespace detail

// One metadata value: a scalar, a string, or an array of one scalar/string type.
class gguf_value {
 public:
  using storage = std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t, std::int32_t,
                               float, bool, std::string, std::uint64_t, std::int64_t, double, std::vector<std::uint8_t>,
                               std::vector<std::int8_t>, std::vector<std::uint16_t>, std::vector<std::int16_t>,
                               std::vector<std::uint32_t>, std::vector<std::int32_t>, std::vector<float>,
                               std::vector<bool>, std::vector<std::string>, std::vector<std::uint64_t>,
                               std::vector<std::int64_t>, std::vector<double>>;

  gguf_value() = default;
  template <class T, class = std::enable_if_t<!std::is_same_v<std::decay_t<T>, gguf_value>>>
  explicit gguf_value(T v) : v_(std::move(v)) {
    if constexpr (detail::is_std_vector<T>::value) {
      type_ = gguf_type::ARRAY;
      elem_ = detail::gguf_type_of<typename detail::is_std_vector<T>::element>();
    } else {
      type_ = detail::gguf_type_of<T>();
    }
  }

  gguf_type type() const noexcept { return type_; }
  // The element type of an array (meaningless for scalars).
  gguf_type array_type() const noexcept { return elem_; }
  bool is_array() const noexcept { return type_ == gguf_type::ARRAY; }
  std::string type_name() const {
    return is_array() ? std::string("ARRAY[") + gguf_type_name(elem_) + "]" : gguf_type_name(type_);
  }
  std::size_t array_size() const {
    return std::visit(
        [](const auto& x) -> std::size_t {
          if constexpr (detail::is_std_vector<std::decay_t<decltype(x)>>::value)
            return x.size();
          else
            return 0;
        },
        v_);
  }

  // nullptr when the value holds another type. T is a scalar type, std::string, or std::vector<...>.
  template <class T>
  const T* get_if() const noexcept {
    return std::get_if<T>(&v_);
  }
  const storage& value() const noexcept { return v_; }

  // Any integer scalar (not bool) as int64 / uint64 range; false for other types.
  bool as_integer(std::int64_t& out_signed, std::uint64_t& out_unsigned, bool& is_unsigned) const {
    return std::visit(
        [&](const auto& x) -> bool {
          using X = std::decay_t<decltype(x)>;
          if constexpr (std::is_integral_v<X> && !std::is_same_v<X, bool>) {
            if constexpr (std::is_unsigned_v<X>) {
              out_unsigned = x;
              is_unsigned = true;
            } else {
              out_signed = x;
              is_unsigned = false;
            }
            return true;
          } else {
            return false;
          }
        },
        v_);
  }

 private:
  storage v_;
  gguf_type type_ = gguf_type::UINT8;
  gguf_type elem_ = gguf_type::UINT8;
};

template <class T>
std::string gguf_cpp_type_name() {
  if constexpr (detail::is_std_vector<T>::value) {
    return std::string("ARRAY[") + gguf_type_name(detail::gguf_type_of<typename detail::is_std_vector<T>::element>()) +
           "]";
  } else {
    return gguf_type_name(detail::gguf_type_of<T>());
  }
}

struct gguf_tensor_info {
  std::string name;
  std::uint32_t n_dims = 0;
  std::array<std::uint64_t, gguf_max_dims> ne{1, 1, 1, 1};  // ne[0] fastest; unused dims are 1
  ggml_type type = ggml_type::F32;
  std::uint64_t offset = 0;  // from the start of the data section
  std::uint64_t numel = 1;
  std::uint64_t nbytes = 0;
  byte_span bytes;

  // PyTorch order: ne reversed, n_dims entries (a [out, in] weight has ne = {in, out}).
  std::vector<std::int64_t> shape() const {
    std::vector<std::int64_t> s;
    for (std::uint32_t i = n_dims; i-- > 0;) s.push_back(static_cast<std::int64_t>(ne[i]));
    return s;
  }
  std::uint64_t row_elements() const noexcept { return ne[0]; }  // one row = ne[0] elements
  std::uint64_t n_rows() const noexcept { return ne[0] == 0 ? 0 : numel / ne[0]; }
  std::uint64_t row_bytes() const noexcept { return n_rows() == 0 ? 0 : nbytes / n_rows(); }
};

namespace detail {

// Sequential little-endian reader over the mapped bytes; every read is bounds-checked.
class gguf_cursor {
 public:
  gguf_cursor(byte_span bytes, const std::string& file) : b_(bytes), file_(file) {}

  std::size_t pos() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return b_.size - pos_; }
  void set_item(std::string item) { item_ = std::move(item); }

  template <class... Parts>
  [[noreturn]] void fail(Parts&&... parts) const {
    mla::detail::throw_error("gguf '", file_, "': ", item_.empty() ? "" : item_ + ": ", std::forward<Parts>(parts)...);
  }

  void need(std::uint64_t n, const char* what) const {
    if (n > remaining()) {
      fail("truncated file: ", what, " needs ", n, " bytes at offset ", pos_, ", only ", remaining(), " left");
    }
  }

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const auto len = read<std::uint64_t>(what);
    if (len > remaining()) {
      fail(what, " has length ", len, ", past the end of the file (", remaining(), " bytes left at offset ", pos_, ")");
    }
    std::string s(reinterpret_cast<const char*>(b_.data + pos_), static_cast<std::size_t>(len));
    pos_ += static_cast<std::size_t>(len);
    return s;
  }

  bool read_bool(const char* what) {
    const auto v = read<std::uint8_t>(what);
    if (v > 1) fail(what, ": BOOL byte is ", static_cast<unsigned>(v), ", expected 0 or 1");
    return v == 1;
  }

  template <class T>
  std::vector<T> read_array(std::uint64_t count) {
    if constexpr (std::is_same_v<T, std::string>) {
      std::vector<std::string> out;
      out.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i) out.push_back(read_string("array string"));
      return out;
    } else if constexpr (std::is_same_v<T, bool>) {
      std::vector<bool> out(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i) out[i] = read_bool("array element");
      return out;
    } else {
      need(count * sizeof(T), "array data");  // count was bounded by the caller: no overflow
      std::vector<T> out(static_cast<std::size_t>(count));
      if (count > 0) std::memcpy(out.data(), b_.data + pos_, static_cast<std::size_t>(count) * sizeof(T));
      pos_ += static_cast<std::size_t>(count) * sizeof(T);
      return out;
    }
  }

 private:
  byte_span b_;
  const std::string& file_;
  std::string item_;
  std::size_t pos_ = 0;
};

// Smallest encoding of one element of a (non-array) type, to bound counts before allocating.
inline std::uint64_t gguf_min_size(gguf_type t) {
  switch (t) {
    case gguf_type::UINT8:
    case gguf_type::INT8:
    case gguf_type::BOOL:
      return 1;
    case gguf_type::UINT16:
    case gguf_type::INT16:
      return 2;
    case gguf_type::UINT32:
    case gguf_type::INT32:
    case gguf_type::FLOAT32:
      return 4;
    case gguf_type::UINT64:
    case gguf_type::INT64:
    case gguf_type::FLOAT64:
      return 8;
    case gguf_type::STRING:
      return 8;
    default:
      return 1;
  }
}

}  // namespace detail

class gguf_file {
 public:
  static gguf_file open(const std::string& path) {
    gguf_file f;
    f.map_ = mapped_file(path);
    f.path_ = path;
    f.parse(f.map_.bytes());
    return f;
  }
  // Parses bytes in memory (not copied: they must outlive the object). `name` is used in errors.
  static gguf_file from_bytes(byte_span bytes, std::string name = "<memory>") {
    gguf_file f;
    f.path_ = std::move(name);
    f.parse(bytes);
    return f;
  }

  const std::string& path() const noexcept { return path_; }
  std::uint32_t version() const noexcept { return version_; }
  std::uint32_t alignment() const noexcept { return alignment_; }
  std::uint64_t data_offset() const noexcept { return data_offset_; }  // file offset of the data section

  // ---- metadata (in file order) ----
  const std::vector<std::pair<std::string, gguf_value>>& metadata() const noexcept { return kv_; }
  const gguf_value* find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
  }
  bool contains(std::string_view key) const { return find(key) != nullptr; }

  // The value of `key` as exactly type T (a scalar type, std::string or std::vector<...>); throws
  // when the key is absent or holds another type.
  template <class T>
  const T& get(std::string_view key) const {
    const gguf_value* v = find(key);
    if (v == nullptr) fail("metadata key '", key, "' is absent");
    const T* p = v->get_if<T>();
    if (p == nullptr) {
      fail("metadata key '", key, "' has type ", v->type_name(), ", expected ", gguf_cpp_type_name<T>());
    }
    return *p;
  }
  // As get(), but `fallback` when the key is absent (a present key of another type still throws).
  template <class T>
  T get_or(std::string_view key, T fallback) const {
    return contains(key) ? get<T>(key) : fallback;
  }
  // Any integer-typed value converted to T, with a range check (writers disagree on u32 / i32 / u64).
  template <class T>
  T get_integer(std::string_view key) const {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
    const gguf_value* v = find(key);
    if (v == nullptr) fail("metadata key '", key, "' is absent");
    std::int64_t s = 0;
    std::uint64_t u = 0;
    bool is_unsigned = false;
    if (!v->as_integer(s, u, is_unsigned)) {
      fail("metadata key '", key, "' has type ", v->type_name(), ", expected an integer");
    }
    const bool fits =
        is_unsigned
            ? u <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())
            : (s >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
               (s < 0 || static_cast<std::uint64_t>(s) <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())));
    if (!fits) {
      if (is_unsigned) fail("metadata key '", key, "' value ", u, " does not fit in the requested type");
      fail("metadata key '", key, "' value ", s, " does not fit in the requested type");
    }
    return is_unsigned ? static_cast<T>(u) : static_cast<T>(s);
  }

  // ---- tensors (in file order) ----
  const std::vector<gguf_tensor_info>& tensors() const noexcept { return tensors_; }
  const gguf_tensor_info* find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }
  const gguf_tensor_info& tensor(std::string_view name) const {
    const gguf_tensor_info* t = find_tensor(name);
    if (t == nullptr) fail("no tensor named '", name, "'");
    return *t;
  }

  // The whole tensor as float (numel values in ggml order, ne[0] fastest).
  std::vector<float> dequantize(const gguf_tensor_info& t) const {
    if (!can_dequantize(t.type)) {
      fail("tensor '", t.name, "' has ggml type ", ggml_type_name(t.type), ", which cannot be dequantised");
    }
    std::vector<float> out(static_cast<std::size_t>(t.numel));
    dequantize_row(t.type, t.bytes, out.data(), out.size());
    return out;
  }
  std::vector<float> dequantize(std::string_view name) const { return dequantize(tensor(name)); }

 private:
  gguf_file() = default;

  template <class... Parts>
  [[noreturn]] void fail(Parts&&... parts) const {
    mla::detail::throw_error("gguf '", path_, "': ", std::forward<Parts>(parts)...);
  }

  gguf_value read_value(detail::gguf_cursor& c, std::uint32_t type_id) {
    switch (static_cast<gguf_type>(type_id)) {
      case gguf_type::UINT8:
        return gguf_value(c.read<std::uint8_t>("UINT8 value"));
      case gguf_type::INT8:
        return gguf_value(c.read<std::int8_t>("INT8 value"));
      case gguf_type::UINT16:
        return gguf_value(c.read<std::uint16_t>("UINT16 value"));
      case gguf_type::INT16:
        return gguf_value(c.read<std::int16_t>("INT16 value"));
      case gguf_type::UINT32:
        return gguf_value(c.read<std::uint32_t>("UINT32 value"));
      case gguf_type::INT32:
        return gguf_value(c.read<std::int32_t>("INT32 value"));
      case gguf_type::FLOAT32:
        return gguf_value(c.read<float>("FLOAT32 value"));
      case gguf_type::BOOL:
        return gguf_value(c.read_bool("BOOL value"));
      case gguf_type::STRING:
        return gguf_value(c.read_string("STRING value"));
      case gguf_type::UINT64:
        return gguf_value(c.read<std::uint64_t>("UINT64 value"));
      case gguf_type::INT64:
        return gguf_value(c.read<std::int64_t>("INT64 value"));
      case gguf_type::FLOAT64:
        return gguf_value(c.read<double>("FLOAT64 value"));
      case gguf_type::ARRAY: {
        const auto elem = c.read<std::uint32_t>("array element type");
        const auto count = c.read<std::uint64_t>("array length");
        if (elem == static_cast<std::uint32_t>(gguf_type::ARRAY)) c.fail("nested arrays are not supported");
        if (elem > 12) c.fail("array element type ", elem, " is not a GGUF value type (0..12)");
        const std::uint64_t min = detail::gguf_min_size(static_cast<gguf_type>(elem));
        if (count > c.remaining() / min) {
          c.fail("array of ", count, " ", gguf_type_name(static_cast<gguf_type>(elem)), " needs at least ", min,
                 " bytes each, only ", c.remaining(), " bytes left in the file");
        }
        switch (static_cast<gguf_type>(elem)) {
          case gguf_type::UINT8:
            return gguf_value(c.read_array<std::uint8_t>(count));
          case gguf_type::INT8:
            return gguf_value(c.read_array<std::int8_t>(count));
          case gguf_type::UINT16:
            return gguf_value(c.read_array<std::uint16_t>(count));
          case gguf_type::INT16:
            return gguf_value(c.read_array<std::int16_t>(count));
          case gguf_type::UINT32:
            return gguf_value(c.read_array<std::uint32_t>(count));
          case gguf_type::INT32:
            return gguf_value(c.read_array<std::int32_t>(count));
          case gguf_type::FLOAT32:
            return gguf_value(c.read_array<float>(count));
          case gguf_type::BOOL:
            return gguf_value(c.read_array<bool>(count));
          case gguf_type::STRING:
            return gguf_value(c.read_array<std::string>(count));
          case gguf_type::UINT64:
            return gguf_value(c.read_array<std::uint64_t>(count));
          case gguf_type::INT64:
            return gguf_value(c.read_array<std::int64_t>(count));
          default:
            return gguf_value(c.read_array<double>(count));
        }
      }
      default:
        c.fail("value type ", type_id, " is not a GGUF value type (0..12)");
    }
  }

  void parse(byte_span file) {
    detail::gguf_cursor c(file, path_);
    c.set_item("header");
    const auto magic = c.read<std::uint32_t>("magic");
    if (magic != gguf_magic) {
      char m[4];
      std::memcpy(m, &magic, 4);
      std::string shown;
      for (char ch : m) {
        const auto u = static_cast<unsigned char>(ch);
        shown += (u >= 0x20 && u < 0x7F)
                     ? std::string(1, ch)
                     : "\\x" + std::string(1, "0123456789abcdef"[u >> 4]) + std::string(1, "0123456789abcdef"[u & 15]);
      }
      c.fail("bad magic '", shown, "', expected 'GGUF'");
    }
    version_ = c.read<std::uint32_t>("version");
    if (version_ == 0x02000000u || version_ == 0x03000000u) c.fail("big-endian GGUF files are not supported");
    if (version_ == 1) c.fail("GGUF version 1 is not supported (versions 2 and 3 are)");
    if (version_ != 2 && version_ != 3) c.fail("unsupported GGUF version ", version_, " (versions 2 and 3 are)");
    const auto n_tensors = c.read<std::uint64_t>("tensor count");
    const auto n_kv = c.read<std::uint64_t>("metadata count");
    // Each tensor info takes at least 24 bytes, each key/value pair at least 13.
    if (n_tensors > c.remaining() / 24) {
      c.fail("tensor count ", n_tensors, " is impossible: ", c.remaining(), " bytes left, 24 needed per tensor");
    }
    if (n_kv > c.remaining() / 13) {
      c.fail("metadata count ", n_kv, " is impossible: ", c.remaining(), " bytes left, 13 needed per key");
    }

    kv_.reserve(static_cast<std::size_t>(n_kv));
    for (std::uint64_t i = 0; i < n_kv; ++i) {
      c.set_item("metadata entry " + std::to_string(i));
      std::string key = c.read_string("key");
      if (key.size() > gguf_max_key_bytes) c.fail("key is ", key.size(), " bytes, more than ", gguf_max_key_bytes);
      c.set_item("metadata key '" + key + "'");
      if (kv_index_.count(key) != 0) c.fail("duplicate key");
      const auto type_id = c.read<std::uint32_t>("value type");
      gguf_value v = read_value(c, type_id);
      kv_index_.emplace(key, kv_.size());
      kv_.emplace_back(std::move(key), std::move(v));
    }

    alignment_ = gguf_default_alignment;
    if (const gguf_value* a = find("general.alignment")) {
      c.set_item("metadata key 'general.alignment'");
      const auto* v = a->get_if<std::uint32_t>();
      if (v == nullptr) c.fail("has type ", a->type_name(), ", expected UINT32");
      if (*v == 0 || (*v & (*v - 1)) != 0) c.fail("alignment ", *v, " is not a power of two");
      alignment_ = *v;
    }

    tensors_.reserve(static_cast<std::size_t>(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
      c.set_item("tensor info " + std::to_string(i));
      gguf_tensor_info t;
      t.name = c.read_string("tensor name");
      if (t.name.size() > gguf_max_tensor_name_bytes) {
        c.fail("tensor name is ", t.name.size(), " bytes, more than ", gguf_max_tensor_name_bytes);
      }
      c.set_item("tensor '" + t.name + "'");
      if (tensor_index_.count(t.name) != 0) c.fail("duplicate tensor name");
      t.n_dims = c.read<std::uint32_t>("n_dims");
      if (t.n_dims > gguf_max_dims) c.fail("n_dims is ", t.n_dims, ", at most ", gguf_max_dims, " allowed");
      bool overflow = false;
      bool zero = false;
      for (std::uint32_t d = 0; d < t.n_dims; ++d) {
        t.ne[d] = c.read<std::uint64_t>("dimension");
        if (t.ne[d] > static_cast<std::uint64_t>(INT64_MAX)) c.fail("ne[", d, "] = ", t.ne[d], " is negative as int64");
        if (t.ne[d] == 0) zero = true;
      }
      t.numel = 1;
      for (std::uint32_t d = 0; d < t.n_dims; ++d) {
        if (t.ne[d] != 0 && t.numel > static_cast<std::uint64_t>(INT64_MAX) / t.ne[d]) overflow = true;
        t.numel *= t.ne[d];
      }
      if (overflow && !zero) c.fail("element count overflows (ne = ", ne_string(t), ")");
      if (zero) t.numel = 0;
      const auto type_id = c.read<std::uint32_t>("ggml type");
      const ggml_type_traits* tr = find_ggml_type(type_id);
      if (tr == nullptr) c.fail("unknown ggml type id ", type_id);
      t.type = tr->type;
      if (t.ne[0] % tr->block_size != 0) {
        c.fail("ne[0] = ", t.ne[0], " is not a multiple of the ", tr->name, " block size ", tr->block_size);
      }
      if (!ggml_nbytes(t.type, t.numel, t.nbytes)) c.fail("byte size overflows (ne = ", ne_string(t), ")");
      t.offset = c.read<std::uint64_t>("data offset");
      if (t.offset % alignment_ != 0) {
        c.fail("data offset ", t.offset, " is not a multiple of the alignment ", alignment_);
      }
      tensor_index_.emplace(t.name, tensors_.size());
      tensors_.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment.
    c.set_item("data section");
    const std::uint64_t pos = c.pos();
    const std::uint64_t pad = (alignment_ - pos % alignment_) % alignment_;
    data_offset_ = pos + pad;
    const std::uint64_t data_size = data_offset_ <= file.size ? file.size - data_offset_ : 0;
    if (data_offset_ > file.size && !tensors_.empty()) {
      c.fail("starts at offset ", data_offset_, ", past the end of the file (", file.size, " bytes)");
    }
    for (auto& t : tensors_) {
      if (t.offset > data_size || t.nbytes > data_size - t.offset) {
        fail("tensor '", t.name, "': data [", t.offset, ", ", t.offset, " + ", t.nbytes,
             ") extends past the end of the data section (", data_size, " bytes from file offset ", data_offset_, ")");
      }
      t.bytes = byte_span{file.data + data_offset_ + t.offset, static_cast<std::size_t>(t.nbytes)};
    }
    // No two tensors may share bytes.
    std::vector<const gguf_tensor_info*> by_offset;
    by_offset.reserve(tensors_.size());
    for (const auto& t : tensors_) {
      if (t.nbytes > 0) by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const gguf_tensor_info* a, const gguf_tensor_info* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
      const auto* a = by_offset[i - 1];
      const auto* b = by_offset[i];
      if (b->offset < a->offset + a->nbytes) {
        fail("tensor '", b->name, "' at data offset ", b->offset, " overlaps tensor '", a->name, "' [", a->offset, ", ",
             a->offset + a->nbytes, ")");
      }
    }
  }

  static std::string ne_string(const gguf_tensor_info& t) {
    std::string s = "[";
    for (std::uint32_t d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + "]";
  }

  mapped_file map_;
  std::string path_;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = gguf_default_alignment;
  std::uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, gguf_value>> kv_;
  std::map<std::string, std::size_t, std::less<>> kv_index_;
  std::vector<gguf_tensor_info> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

}  // namespace mla::io
