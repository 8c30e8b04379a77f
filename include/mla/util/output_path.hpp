// mla::util output paths of the tools: check before any work that an output can be created, and write a file so
// that a failed write leaves nothing behind.
//
//   check_can_create("--out", path)   the path is not empty and its parent is an existing, writable directory
//                                     (probed by creating and removing <parent>/.mla-probe.<pid>)
//   write_file("--json", path, text)  writes <path>.tmp.<pid>, checks the stream after closing it, renames
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <unistd.h>

#include "mla/core/error.hpp"

namespace mla::util {

// Throws mla::error naming `flag` and `path` when `path` cannot be created: it does not say whether `path` itself
// exists (the caller decides whether that is allowed).
inline void check_can_create(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  check(!path.empty(), flag, ": the path is empty");
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  const fs::file_status st = fs::status(parent, ec);
  check(fs::exists(st), flag, ": cannot create '", path, "': the directory '", parent.string(), "' does not exist");
  check(fs::is_directory(st), flag, ": cannot create '", path, "': '", parent.string(), "' is not a directory");
  const fs::path probe = parent / (".mla-probe." + std::to_string(::getpid()));
  const bool writable = static_cast<bool>(std::ofstream(probe));
  fs::remove(probe, ec);
  check(writable, flag, ": cannot create '", path, "': the directory '", parent.string(), "' is not writable");
}

// Writes `text` to `path` (replacing it) through a temporary beside it; on any failure the temporary is removed
// and an mla::error names `flag` and `path`.
inline void write_file(const std::string& flag, const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.close();
    if (!out) {
      fs::remove(tmp, ec);
      detail::throw_error(flag, ": cannot write '", path, "'");
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(tmp, ec);
    detail::throw_error(flag, ": cannot write '", path, "': ", why);
  }
}

}  // namespace mla::util
