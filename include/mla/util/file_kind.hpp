// mla::util file kinds from content, not from the name: what a path given as a model holds, so that a file of
// the wrong kind gets a message naming what it is rather than the first parser's complaint ("bad magic").
//
//   detect_file_kind(path)   gguf ("GGUF" magic), safetensors (a little-endian u64 header length, then '{'),
//                            json ('{' first), directory, missing, other
//   check_gguf_file(flag, path)   throws, naming the kind found, unless the file is a GGUF file
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "mla/core/error.hpp"

namespace mla::util {

enum class file_kind { missing, directory, gguf, safetensors, json, other };

inline const char* to_string(file_kind k) {
  switch (k) {
    case file_kind::missing:
      return "missing";
    case file_kind::directory:
      return "a directory";
    case file_kind::gguf:
      return "a GGUF file";
    case file_kind::safetensors:
      return "a safetensors file";
    case file_kind::json:
      return "a JSON file";
    case file_kind::other:
      break;
  }
  return "neither GGUF nor safetensors nor JSON";
}

inline file_kind detect_file_kind(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) return file_kind::missing;
  if (fs::is_directory(st)) return file_kind::directory;
  unsigned char head[9] = {};
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const std::streamsize n = in.gcount();
  if (n >= 4 && std::memcmp(head, "GGUF", 4) == 0) return file_kind::gguf;
  if (n == 9 && head[8] == '{') {
    // safetensors: u64 (little-endian) length of the JSON header that follows; it must fit in the file.
    std::uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | head[i];
    const auto size = fs::file_size(path, ec);
    if (!ec && len >= 2 && len <= size - 8) return file_kind::safetensors;
  }
  std::size_t i = 0;
  while (i < std::size_t(n) && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t')) ++i;
  if (i < std::size_t(n) && head[i] == '{') return file_kind::json;
  return file_kind::other;
}

// Throws mla::error unless `path` is a GGUF file (by content); the message names what the file is and what to
// pass instead. Directories and missing paths are the caller's to handle.
inline void check_gguf_file(const std::string& flag, const std::string& path) {
  const file_kind k = detect_file_kind(path);
  if (k == file_kind::gguf || k == file_kind::directory || k == file_kind::missing) return;
  const char* hint = k == file_kind::safetensors
                         ? "; a safetensors checkpoint is read from its directory (config.json, *.safetensors, "
                           "tokenizer.json): pass the directory"
                     : k == file_kind::json ? "; pass the checkpoint directory that holds it"
                                            : "";
  mla::detail::throw_error(flag, ": '", path, "' is ", to_string(k), ", not a GGUF file or a checkpoint directory",
                           hint);
}

}  // namespace mla::util
