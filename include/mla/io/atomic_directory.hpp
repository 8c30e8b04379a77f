// mla::io::atomic_directory: build a directory so that readers see either nothing or the complete directory.
//
// Files go into `<path>.tmp.<pid>` beside the target (so the rename stays on one file system; the target's
// missing parent directories are created first); commit() renames it to `<path>`. If the object is destroyed
// without commit() (an exception, an early return) the temporary directory and everything in it are removed:
// nothing partial is ever left under `<path>`. An existing `<path>` is refused (nothing is overwritten), and so
// is an existing temporary directory (a crashed earlier run with the same pid). The single-file twin is
// atomic_file.hpp; the files inside are written with it (file()). While it exists the temporary directory is
// registered with util::cleanup_registration, so a tool's SIGINT/SIGTERM handler removes it too.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include <unistd.h>

#include "mla/core/error.hpp"
#include "mla/io/atomic_file.hpp"
#include "mla/io/mapped_file.hpp"
#include "mla/util/signal_cleanup.hpp"

namespace mla::io {

// Throws "<who>: output '<path>' already exists; choose a new path (nothing is overwritten)" when `path`
// exists. Writers call it before their expensive work, so that a taken path fails at once.
inline void check_new_output_path(const std::string& path, const std::string& who) {
  check(!std::filesystem::exists(path), who, ": output '", path,
        "' already exists; choose a new path (nothing is overwritten)");
}

class atomic_directory {
 public:
  // Creates `<path>.tmp.<pid>` (path normalised lexically). `who` prefixes the error messages.
  explicit atomic_directory(const std::string& path, std::string who = "mla::io::atomic_directory")
      : who_(std::move(who)) {
    namespace fs = std::filesystem;
    check(!path.empty(), who_, ": empty output path");
    path_ = fs::path(path).lexically_normal();
    check_new_output_path(path_.string(), who_);
    if (!path_.parent_path().empty()) fs::create_directories(path_.parent_path());
    temp_path_ = path_;
    temp_path_ += ".tmp." + std::to_string(static_cast<long long>(::getpid()));
    check(!fs::exists(temp_path_), who_, ": temporary directory '", temp_path_.string(),
          "' already exists (a crashed earlier run?)");
    fs::create_directory(temp_path_);
    cleanup_ = util::cleanup_registration(temp_path_.string(), util::cleanup_kind::directory);
  }

  atomic_directory(const atomic_directory&) = delete;
  atomic_directory& operator=(const atomic_directory&) = delete;

  ~atomic_directory() { discard(); }

  // The path of file `name` inside the temporary directory (write there, then commit()).
  std::string file(const std::string& name) const { return (temp_path_ / name).string(); }

  // Writes `contents` to file `name` (a plain name, no directories) atomically.
  void write_file(const std::string& name, const std::string& contents) const {
    check(!committed_, who_, ": write of '", name, "' after commit or discard");
    check(!name.empty() && name.find('/') == std::string::npos, who_, ": file name '", name, "' is not allowed");
    write_file_atomically(file(name), contents);
  }

  // Renames the temporary directory to the target. After a failure the temporary directory is removed.
  void commit() {
    check(!committed_, who_, ": commit after commit or discard");
    std::error_code ec;
    std::filesystem::rename(temp_path_, path_, ec);
    if (ec) {
      const std::string msg = ec.message();
      discard();
      mla::detail::throw_error(who_, ": cannot rename '", temp_path_.string(), "' to '", path_.string(), "': ", msg);
    }
    committed_ = true;
    cleanup_.release();
  }

  // Removes the temporary directory and its contents now (the destructor does the same).
  void discard() noexcept {
    if (committed_) return;
    committed_ = true;
    std::error_code ec;
    std::filesystem::remove_all(temp_path_, ec);
    cleanup_.release();
  }

  const std::filesystem::path& path() const noexcept { return path_; }
  const std::filesystem::path& temp_path() const noexcept { return temp_path_; }

 private:
  std::string who_;
  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  bool committed_ = false;
  util::cleanup_registration cleanup_;  // the temporary directory, for a signal handler
};

}  // namespace mla::io
