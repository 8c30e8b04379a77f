// mla::util output paths of the tools: check before any work that an output can be created, and write a file so
// that a failed write leaves nothing behind.
//
//   check_can_create("--out", path)   the path is not empty and its parent is an existing, writable directory
//                                     (probed by creating and removing <parent>/.mla-probe.<pid>)
//   write_file("--json", path, text)  writes <path>.tmp.<pid>, checks the stream after closing it, renames
//   stale_temporaries(path)           the `<path>.tmp.<pid>` that an interrupted or killed run left beside path
//   check_no_stale_temporary("--out", path)   refuses them by name (before any work); remove_stale_temporaries
//                                     (the tools' --force) removes those whose process is gone
#pragma once

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>
#include <unistd.h>

#include "mla/core/error.hpp"
#include "mla/util/signal_cleanup.hpp"

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
  const cleanup_registration cleanup(tmp, cleanup_kind::file);
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

// A temporary that an earlier run left: `<path>.tmp.<pid>` beside `path`, and whether process <pid> still runs
// (then another run may be writing the same output now).
struct stale_temporary {
  std::string path;
  long pid = 0;
  bool running = false;
};

// The `<path>.tmp.<digits>` entries beside `path` (files or directories), except this process's own.
inline std::vector<stale_temporary> stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<stale_temporary> found;
  if (path.empty()) return found;
  const fs::path p = fs::path(path).lexically_normal();
  const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string prefix = p.filename().string() + ".tmp.";
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const long pid = std::strtol(digits.c_str(), nullptr, 10);
    if (pid == long(::getpid())) continue;
    const bool running = pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
    found.push_back({(parent / name).string(), pid, running});
  }
  return found;
}

// Throws mla::error naming `flag` and each temporary an earlier run left beside `path`, and how to remove it.
inline void check_no_stale_temporary(const std::string& flag, const std::string& path) {
  for (const stale_temporary& t : stale_temporaries(path))
    check(false, flag, ": '", t.path, "' is left from an earlier run of process ", t.pid,
          t.running ? " (which is still running: another run writing the same output?)"
                    : " (no longer running: interrupted or killed)",
          "; remove it, or pass --force to remove it");
}

// Removes the temporaries an earlier run left beside `path` whose process is gone (--force) and returns their
// paths; one whose process still runs is refused (it may be writing the same output now).
inline std::vector<std::string> remove_stale_temporaries(const std::string& flag, const std::string& path) {
  const std::vector<stale_temporary> found = stale_temporaries(path);
  for (const stale_temporary& t : found)  // all or nothing
    check(!t.running, flag, ": '", t.path, "' belongs to process ", t.pid,
          ", which is still running (another run writing the same output?); --force removes only what a finished "
          "run left");
  std::vector<std::string> removed;
  for (const stale_temporary& t : found) {
    std::error_code ec;
    std::filesystem::remove_all(t.path, ec);
    check(!ec, flag, ": cannot remove '", t.path, "': ", ec.message());
    removed.push_back(t.path);
  }
  return removed;
}

}  // namespace mla::util
