// mla::io safetensors: memory-mapped reader (single file and sharded checkpoints) and writer.
//
// File layout (formats.md §4, huggingface/safetensors):
//   [u64 LE N] [N bytes of UTF-8 JSON, starting with '{', maybe space-padded] [data section]
//   JSON: {"__metadata__": {str: str}, "<tensor>": {"dtype": "F16", "shape": [..],
//          "data_offsets": [BEGIN, END]}, ...}; offsets are relative to the data section, END
//          exclusive; tensors are row-major little-endian.
// The reader checks what the reference reader checks: N <= 100 MB, no duplicate keys, known dtypes,
// END - BEGIN == numel * dtype size (without overflow), and that the offsets tile the data section
// exactly (no overlap, no hole, no trailing bytes). Errors name the file, the tensor and what was
// expected.
// Sharded checkpoints: `model.safetensors.index.json` = {"metadata": {...}, "weight_map":
// {tensor: shard file}}, shards beside it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/io/atomic_file.hpp"
#include "mla/io/dtype.hpp"
#include "mla/io/mapped_file.hpp"

namespace mla::io {

inline constexpr std::uint64_t safetensors_max_header_bytes = 100'000'000;  // as the Rust reader

// One tensor of a safetensors file. `bytes` points into the file's mapping (no alignment beyond
// what the offsets give: read elements with memcpy or to_float()).
struct tensor_view {
  std::string name;
  dtype type = dtype::U8;
  std::vector<std::int64_t> shape;  // row-major; empty for a scalar
  std::uint64_t numel = 1;
  std::uint64_t data_begin = 0;  // offset in the data section
  byte_span bytes;
  std::string file;  // the file it came from (for messages)
};

inline std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Reads a float tensor (F32, F64, F16, BF16, F8_*) into floats.
inline void to_float(const tensor_view& t, float* dst, std::size_t n) {
  check(dtype_is_float(t.type), "safetensors '", t.file, "': tensor '", t.name, "' has dtype ", dtype_name(t.type),
        ", not a floating-point dtype");
  check(n == t.numel, "safetensors '", t.file, "': tensor '", t.name, "' has ", t.numel,
        " elements, destination holds ", n);
  to_float(t.type, t.bytes, dst, n);
}
inline std::vector<float> to_float(const tensor_view& t) {
  std::vector<float> out(static_cast<std::size_t>(t.numel));
  to_float(t, out.data(), out.size());
  return out;
}

namespace detail {

inline std::uint64_t load_u64_le(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Parses JSON, rejecting duplicate keys (nlohmann keeps the last one silently) and deep nesting.
inline nlohmann::json parse_json_strict(const char* begin, const char* end, const std::string& where, int max_depth) {
  using json = nlohmann::json;
  std::vector<std::unordered_set<std::string>> keys;  // one set per open object
  auto cb = [&](int depth, json::parse_event_t ev, json& parsed) -> bool {
    if (depth > max_depth) mla::detail::throw_error(where, ": JSON nests deeper than ", max_depth, " levels");
    switch (ev) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& k = parsed.get_ref<const std::string&>();
        if (!keys.empty() && !keys.back().insert(k).second) {
          mla::detail::throw_error(where, ": duplicate key '", k, "' in the JSON");
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(begin, end, cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    mla::detail::throw_error(where, ": invalid JSON: ", e.what());
  }
}

inline bool json_to_u64(const nlohmann::json& j, std::uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<std::uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<std::int64_t>() >= 0) {
    out = static_cast<std::uint64_t>(j.get<std::int64_t>());
    return true;
  }
  return false;
}

}  // namespace detail

class safetensors_file {
 public:
  // Maps and validates `path`.
  static safetensors_file open(const std::string& path) {
    safetensors_file f;
    f.map_ = mapped_file(path);
    f.path_ = path;
    f.parse(f.map_.bytes());
    return f;
  }

  // Validates bytes in memory (not copied: they must outlive the object). `name` is used in errors.
  static safetensors_file from_bytes(byte_span bytes, std::string name = "<memory>") {
    safetensors_file f;
    f.path_ = std::move(name);
    f.parse(bytes);
    return f;
  }

  const std::string& path() const noexcept { return path_; }
  const mapped_file& mapping() const noexcept { return map_; }  // not mapped for from_bytes
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  // All tensors, sorted by name.
  const std::vector<tensor_view>& tensors() const noexcept { return tensors_; }
  std::size_t size() const noexcept { return tensors_.size(); }
  std::uint64_t header_size() const noexcept { return header_size_; }
  std::uint64_t data_offset() const noexcept { return 8 + header_size_; }  // file offset of the data

  const tensor_view* find(std::string_view name) const {
    auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                               [](const tensor_view& t, std::string_view n) { return t.name < n; });
    return it != tensors_.end() && it->name == name ? &*it : nullptr;
  }
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  const tensor_view& tensor(std::string_view name) const {
    const tensor_view* t = find(name);
    if (t == nullptr) mla::detail::throw_error("safetensors '", path_, "': no tensor named '", name, "'");
    return *t;
  }

 private:
  safetensors_file() = default;

  template <class... Parts>
  [[noreturn]] void fail(Parts&&... parts) const {
    mla::detail::throw_error("safetensors '", path_, "': ", std::forward<Parts>(parts)...);
  }

  void parse(byte_span file) {
    using json = nlohmann::json;
    if (file.size < 8) fail("file is ", file.size, " bytes, too short for the 8-byte header length");
    const std::uint64_t n = detail::load_u64_le(file.data);
    if (n > safetensors_max_header_bytes) {
      fail("header length ", n, " exceeds the limit of ", safetensors_max_header_bytes, " bytes");
    }
    if (n > file.size - 8) {
      fail("header length ", n, " exceeds the ", file.size - 8, " bytes after the length field");
    }
    header_size_ = n;
    const char* hb = reinterpret_cast<const char*>(file.data + 8);
    if (n == 0 || hb[0] != '{') fail("header does not start with '{'");
    const json header = detail::parse_json_strict(hb, hb + n, "safetensors '" + path_ + "': header", 8);
    if (!header.is_object()) fail("header is not a JSON object");

    const std::uint64_t data_size = file.size - 8 - n;
    const std::uint8_t* data = file.data + 8 + n;
    tensors_.reserve(header.size());
    for (const auto& [key, value] : header.items()) {
      if (key == "__metadata__") {
        if (!value.is_object()) fail("__metadata__ is not an object of strings");
        for (const auto& [mk, mv] : value.items()) {
          if (!mv.is_string()) fail("__metadata__ value for '", mk, "' is not a string (", mv.type_name(), ")");
          metadata_.emplace(mk, mv.get<std::string>());
        }
        continue;
      }
      tensors_.push_back(parse_entry(key, value, data, data_size));
    }

    // The offsets must tile [0, data_size) exactly.
    std::vector<const tensor_view*> by_offset;
    by_offset.reserve(tensors_.size());
    for (const auto& t : tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](const tensor_view* a, const tensor_view* b) {
      return a->data_begin != b->data_begin ? a->data_begin < b->data_begin : a->bytes.size < b->bytes.size;
    });
    std::uint64_t covered = 0;
    const tensor_view* prev = nullptr;
    for (const tensor_view* t : by_offset) {
      if (t->data_begin < covered) {
        fail("tensor '", t->name, "' at data_offsets [", t->data_begin, ", ", t->data_begin + t->bytes.size,
             "] overlaps tensor '", prev->name, "' at [", prev->data_begin, ", ", prev->data_begin + prev->bytes.size,
             "]");
      }
      if (t->data_begin > covered) {
        fail("bytes [", covered, ", ", t->data_begin,
             ") of the data section belong to no tensor "
             "(a hole before tensor '",
             t->name, "')");
      }
      covered = t->data_begin + t->bytes.size;
      prev = t;
    }
    if (covered != data_size) {
      fail("bytes [", covered, ", ", data_size, ") at the end of the data section belong to no tensor");
    }
    std::sort(tensors_.begin(), tensors_.end(),
              [](const tensor_view& a, const tensor_view& b) { return a.name < b.name; });
  }

  tensor_view parse_entry(const std::string& name, const nlohmann::json& v, const std::uint8_t* data,
                          std::uint64_t data_size) {
    if (!v.is_object()) fail("tensor '", name, "': entry is a JSON ", v.type_name(), ", expected an object");
    tensor_view t;
    t.name = name;
    t.file = path_;
    const auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail("tensor '", name, "': missing or non-string \"dtype\"");
    if (!parse_dtype(dt->get_ref<const std::string&>(), t.type)) {
      fail("tensor '", name, "': unknown dtype '", dt->get_ref<const std::string&>(), "'");
    }
    const auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail("tensor '", name, "': missing or non-array \"shape\"");
    t.numel = 1;
    bool overflow = false, zero_dim = false;
    for (const auto& d : *sh) {
      std::uint64_t dim = 0;
      if (!detail::json_to_u64(d, dim) || dim > static_cast<std::uint64_t>(INT64_MAX)) {
        fail("tensor '", name, "': shape entry ", d.dump(), " is not a non-negative integer");
      }
      t.shape.push_back(static_cast<std::int64_t>(dim));
      if (dim == 0)
        zero_dim = true;
      else if (t.numel > std::numeric_limits<std::uint64_t>::max() / dim)
        overflow = true;
      t.numel *= dim;  // may wrap; only used when there is no overflow
    }
    // A zero dimension makes the tensor empty even when the other dimensions overflow.
    if (zero_dim) {
      overflow = false;
      t.numel = 0;
    }
    if (overflow) {
      fail("tensor '", name, "': shape ", shape_string(t.shape), " has too many elements (overflow)");
    }
    if (t.numel > std::numeric_limits<std::uint64_t>::max() / dtype_bits(t.type)) {
      fail("tensor '", name, "': shape ", shape_string(t.shape), " of dtype ", dtype_name(t.type),
           " has too many bytes (overflow)");
    }
    std::uint64_t nbytes = 0;
    if (!dtype_nbytes(t.type, t.numel, nbytes)) {
      fail("tensor '", name, "': shape ", shape_string(t.shape), " of dtype ", dtype_name(t.type),
           " is not a whole number of bytes");
    }
    const auto off = v.find("data_offsets");
    std::uint64_t b = 0, e = 0;
    if (off == v.end() || !off->is_array() || off->size() != 2 || !detail::json_to_u64((*off)[0], b) ||
        !detail::json_to_u64((*off)[1], e)) {
      fail("tensor '", name, "': \"data_offsets\" must be [BEGIN, END] with non-negative integers");
    }
    if (b > e) fail("tensor '", name, "': data_offsets [", b, ", ", e, "] have BEGIN > END");
    if (e > data_size) {
      fail("tensor '", name, "': data_offsets [", b, ", ", e, "] extend past the data section (", data_size, " bytes)");
    }
    if (e - b != nbytes) {
      fail("tensor '", name, "': data_offsets [", b, ", ", e, "] span ", e - b, " bytes, but dtype ",
           dtype_name(t.type), " with shape ", shape_string(t.shape), " needs ", nbytes);
    }
    t.data_begin = b;
    t.bytes = byte_span{data + b, static_cast<std::size_t>(nbytes)};
    return t;
  }

  mapped_file map_;  // empty for from_bytes
  std::string path_;
  std::uint64_t header_size_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<tensor_view> tensors_;
};

// A checkpoint: one .safetensors file, or shards listed by a model.safetensors.index.json.
class safetensors_checkpoint {
 public:
  static constexpr const char* index_name = "model.safetensors.index.json";
  static constexpr const char* single_name = "model.safetensors";

  // `path` is a .safetensors file, an index .json, or a directory holding model.safetensors.index.json
  // or model.safetensors.
  static safetensors_checkpoint open(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      const fs::path dir(path);
      if (fs::exists(dir / index_name, ec)) return open_index((dir / index_name).string());
      if (fs::exists(dir / single_name, ec)) return open((dir / single_name).string());
      mla::detail::throw_error("safetensors checkpoint '", path, "': directory has neither ", index_name, " nor ",
                               single_name);
    }
    if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return open_index(path);
    safetensors_checkpoint c;
    c.path_ = path;
    c.files_.push_back(std::make_unique<safetensors_file>(safetensors_file::open(path)));
    for (const auto& t : c.files_[0]->tensors()) c.index_.emplace(t.name, &t);
    return c;
  }

  const std::string& path() const noexcept { return path_; }
  std::size_t shard_count() const noexcept { return files_.size(); }
  const safetensors_file& shard(std::size_t i) const { return *files_.at(i); }
  // "metadata" of the index (empty for a single file).
  const nlohmann::json& index_metadata() const noexcept { return index_metadata_; }
  std::size_t size() const noexcept { return index_.size(); }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(index_.size());
    for (const auto& [name, view] : index_) out.push_back(name);
    return out;
  }
  const tensor_view* find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : it->second;
  }
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  const tensor_view& tensor(std::string_view name) const {
    const tensor_view* t = find(name);
    if (t == nullptr) mla::detail::throw_error("safetensors checkpoint '", path_, "': no tensor named '", name, "'");
    return *t;
  }

  // Hands the mapped pages of bytes `s` (part of a tensor of this checkpoint) back to the kernel once they have
  // been read into another form (mapped_file::release): what a large checkpoint read tensor by tensor, or an
  // expert expanded on demand, leaves resident is then bounded by what is being read. Bytes not in a mapping of
  // this checkpoint (a checkpoint parsed from memory) are left alone; returns whether pages were released.
  bool release(byte_span s) const noexcept {
    for (const auto& f : files_)
      if (f->mapping().release(s)) return true;
    return false;
  }

 private:
  safetensors_checkpoint() = default;

  static safetensors_checkpoint open_index(const std::string& index_path) {
    namespace fs = std::filesystem;
    const std::string where = "safetensors index '" + index_path + "'";
    const mapped_file m(index_path);
    check(m.size() <= safetensors_max_header_bytes, where, ": ", m.size(), " bytes exceeds the limit of ",
          safetensors_max_header_bytes);
    const char* b = reinterpret_cast<const char*>(m.data());
    const nlohmann::json j = detail::parse_json_strict(b, b + m.size(), where, 16);
    check(j.is_object(), where, ": not a JSON object");
    const auto wm = j.find("weight_map");
    check(wm != j.end() && wm->is_object(), where, ": missing \"weight_map\" object");

    safetensors_checkpoint c;
    c.path_ = index_path;
    if (const auto md = j.find("metadata"); md != j.end()) c.index_metadata_ = *md;
    const fs::path dir = fs::path(index_path).parent_path();
    std::map<std::string, std::size_t> shard_of_file;
    for (const auto& [tensor, file] : wm->items()) {
      check(file.is_string(), where, ": weight_map entry for '", tensor, "' is not a string");
      const std::string& f = file.get_ref<const std::string&>();
      check(is_safe_relative(f), where, ": shard name '", f, "' for tensor '", tensor,
            "' must be a relative path inside the checkpoint directory");
      auto it = shard_of_file.find(f);
      if (it == shard_of_file.end()) {
        c.files_.push_back(std::make_unique<safetensors_file>(safetensors_file::open((dir / f).string())));
        it = shard_of_file.emplace(f, c.files_.size() - 1).first;
      }
      const tensor_view* t = c.files_[it->second]->find(tensor);
      check(t != nullptr, where, ": tensor '", tensor, "' is mapped to shard '", f, "', which does not contain it");
      c.index_.emplace(tensor, t);
    }
    return c;
  }

  // No absolute paths, no "..", no empty components: shards stay under the index's directory.
  static bool is_safe_relative(const std::string& f) {
    if (f.empty() || f[0] == '/' || f.find('\0') != std::string::npos) return false;
    std::size_t start = 0;
    while (start <= f.size()) {
      const std::size_t slash = std::min(f.find('/', start), f.size());
      const std::string_view part(f.data() + start, slash - start);
      if (part.empty() || part == "." || part == "..") return false;
      start = slash + 1;
    }
    return true;
  }

  std::string path_;
  std::vector<std::unique_ptr<safetensors_file>> files_;  // stable addresses for the index
  std::map<std::string, const tensor_view*, std::less<>> index_;
  nlohmann::json index_metadata_ = nlohmann::json::object();
};

// Collects tensors and writes them as one safetensors file or as shards + index, atomically.
// Data is laid out by descending element size, then name (as the reference writer does), so every
// tensor is aligned to its element size; the header is space-padded to a multiple of 8.
class safetensors_writer {
 public:
  void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }

  // Copies nothing: `bytes` is moved in.
  void add(std::string name, dtype type, std::vector<std::int64_t> shape, std::vector<std::uint8_t> bytes) {
    entry e = make_entry(std::move(name), type, std::move(shape));
    e.owned = std::make_shared<std::vector<std::uint8_t>>(std::move(bytes));
    e.bytes = byte_span{e.owned->data(), e.owned->size()};
    push(std::move(e));
  }
  // Borrows `bytes`: the caller keeps them alive until the last write call. `written`, when given, runs after
  // each write of them (e.g. safetensors_checkpoint::release, so that copying a mapped checkpoint's tensors does
  // not leave them all resident).
  void add_borrowed(std::string name, dtype type, std::vector<std::int64_t> shape, byte_span bytes,
                    std::function<void()> written = {}) {
    entry e = make_entry(std::move(name), type, std::move(shape));
    e.bytes = bytes;
    e.written = std::move(written);
    push(std::move(e));
  }
  // Converts floats to F32, F16 or BF16 (round to nearest even).
  void add_float(std::string name, dtype type, std::vector<std::int64_t> shape, const float* values,
                 std::size_t count) {
    add(std::move(name), type, std::move(shape), from_float(type, values, count));
  }
  // The same, borrowing `values` (kept alive by the caller until the last write call) and converting them when
  // written, a block at a time: a model's weights are saved without a second copy of them in memory.
  void add_float_borrowed(std::string name, dtype type, std::vector<std::int64_t> shape, const float* values,
                          std::size_t count) {
    check(type == dtype::F32 || type == dtype::F16 || type == dtype::BF16, "safetensors writer: tensor '", name,
          "': floats are written as F32, F16 or BF16, not ", dtype_name(type));
    entry e = make_entry(std::move(name), type, std::move(shape));
    e.floats = values;
    // Only the size is read from here on (push checks it against the shape); the bytes come from `floats`.
    e.bytes = byte_span{reinterpret_cast<const std::uint8_t*>(values), count * dtype_size(type)};
    push(std::move(e));
  }

  std::size_t size() const noexcept { return entries_.size(); }
  std::uint64_t total_bytes() const noexcept {
    std::uint64_t s = 0;
    for (const auto& e : entries_) s += e.bytes.size;
    return s;
  }

  // Writes every tensor to `path`.
  void write(const std::string& path) const {
    std::vector<const entry*> all;
    for (const auto& e : entries_) all.push_back(&e);
    write_file(path, all);
  }

  // Writes `<stem>-0000i-of-0000n.safetensors` shards of at most `max_shard_bytes` of tensor data
  // (a larger tensor gets a shard of its own, in insertion order) and `<stem>.safetensors.index.json`
  // into `directory`. With a single shard, writes `<stem>.safetensors` and no index, as HF does.
  // Returns the file names written.
  std::vector<std::string> write_sharded(const std::string& directory, std::uint64_t max_shard_bytes,
                                         const std::string& stem = "model") const {
    namespace fs = std::filesystem;
    check(max_shard_bytes > 0, "safetensors writer: max_shard_bytes must be positive");
    std::vector<std::vector<const entry*>> shards;
    std::uint64_t current = 0;
    for (const auto& e : entries_) {
      if (shards.empty() || (current + e.bytes.size > max_shard_bytes && !shards.back().empty())) {
        shards.emplace_back();
        current = 0;
      }
      shards.back().push_back(&e);
      current += e.bytes.size;
    }
    if (shards.empty()) shards.emplace_back();
    const fs::path dir(directory);
    if (shards.size() == 1) {
      const std::string name = stem + ".safetensors";
      write_file((dir / name).string(), shards[0]);
      return {name};
    }
    std::vector<std::string> names;
    nlohmann::json weight_map = nlohmann::json::object();
    auto five = [](std::size_t v) {
      std::string s = std::to_string(v);
      return std::string(s.size() < 5 ? 5 - s.size() : 0, '0') + s;
    };
    for (std::size_t i = 0; i < shards.size(); ++i) {
      const std::string name = stem + "-" + five(i + 1) + "-of-" + five(shards.size()) + ".safetensors";
      write_file((dir / name).string(), shards[i]);
      for (const entry* e : shards[i]) weight_map[e->name] = name;
      names.push_back(name);
    }
    nlohmann::json index = {{"metadata", {{"total_size", total_bytes()}}}, {"weight_map", weight_map}};
    const std::string index_name = stem + ".safetensors.index.json";
    write_file_atomically((dir / index_name).string(), index.dump(2) + "\n");
    names.push_back(index_name);
    return names;
  }

 private:
  struct entry {
    std::string name;
    dtype type = dtype::U8;
    std::vector<std::int64_t> shape;
    byte_span bytes;  // the data; for a borrowed float tensor only its size (the floats are converted when written)
    std::shared_ptr<std::vector<std::uint8_t>> owned;
    const float* floats = nullptr;  // add_float_borrowed: the values
    std::function<void()> written;  // add_borrowed: run after the bytes are written
  };

  // One entry's bytes into `out`: as they are, or its floats converted a block at a time.
  static void write_entry(atomic_file& out, const entry& e) {
    if (e.floats == nullptr || e.type == dtype::F32) {
      out.write(e.bytes);
    } else {
      constexpr std::size_t block = std::size_t(1) << 20;  // values
      const std::size_t count = e.bytes.size / dtype_size(e.type);
      for (std::size_t i = 0; i < count; i += block) {
        const std::vector<std::uint8_t> b = from_float(e.type, e.floats + i, std::min(block, count - i));
        out.write(byte_span{b.data(), b.size()});
      }
    }
    if (e.written) e.written();
  }

  static entry make_entry(std::string name, dtype type, std::vector<std::int64_t> shape) {
    check(name != "__metadata__", "safetensors writer: '__metadata__' is not a valid tensor name");
    entry e;
    e.name = std::move(name);
    e.type = type;
    e.shape = std::move(shape);
    return e;
  }

  void push(entry e) {
    std::uint64_t numel = 1;
    for (const std::int64_t d : e.shape) {
      check(d >= 0, "safetensors writer: tensor '", e.name, "' has a negative dimension in ", shape_string(e.shape));
      const auto ud = static_cast<std::uint64_t>(d);
      check(ud == 0 || numel <= std::numeric_limits<std::uint64_t>::max() / ud, "safetensors writer: tensor '", e.name,
            "' shape ", shape_string(e.shape), " overflows");
      numel *= ud;
    }
    std::uint64_t nbytes = 0;
    check(dtype_nbytes(e.type, numel, nbytes), "safetensors writer: tensor '", e.name, "' shape ",
          shape_string(e.shape), " of ", dtype_name(e.type), " is not a whole number of bytes");
    check(nbytes == e.bytes.size, "safetensors writer: tensor '", e.name, "' (", dtype_name(e.type), " ",
          shape_string(e.shape), ") needs ", nbytes, " bytes, got ", e.bytes.size);
    check(names_.insert(e.name).second, "safetensors writer: duplicate tensor name '", e.name, "'");
    entries_.push_back(std::move(e));
  }

  void write_file(const std::string& path, std::vector<const entry*> list) const {
    // Descending element size (sub-byte types count as 1), then name: keeps every tensor aligned.
    auto align = [](const entry* e) { return std::max<std::size_t>(1, dtype_size(e->type)); };
    std::sort(list.begin(), list.end(), [&](const entry* a, const entry* b) {
      return align(a) != align(b) ? align(a) > align(b) : a->name < b->name;
    });
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    std::uint64_t offset = 0;
    for (const entry* e : list) {
      header[e->name] = {
          {"dtype", dtype_name(e->type)}, {"shape", e->shape}, {"data_offsets", {offset, offset + e->bytes.size}}};
      offset += e->bytes.size;
    }
    std::string text;
    try {
      text = header.dump();
    } catch (const nlohmann::json::exception& ex) {
      mla::detail::throw_error("safetensors writer '", path,
                               "': cannot encode the header (tensor names and "
                               "metadata must be valid UTF-8): ",
                               ex.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    check(text.size() <= safetensors_max_header_bytes, "safetensors writer '", path, "': header of ", text.size(),
          " bytes exceeds the limit of ", safetensors_max_header_bytes);
    std::uint8_t len[8];
    const std::uint64_t n = text.size();
    std::memcpy(len, &n, 8);
    atomic_file out(path);
    out.write(len, 8);
    out.write(text);
    for (const entry* e : list) write_entry(out, *e);
    out.commit();
  }

  std::map<std::string, std::string> metadata_;
  std::vector<entry> entries_;
  std::unordered_set<std::string> names_;
};

}  // namespace mla::io
