// mla::io::atomic_file: write a file so that readers see either the old file or the complete new one.
//
// Bytes go to `<path>.tmp.<pid>` in the same directory (so the rename stays on one file system);
// commit() fsyncs the data, renames it over `<path>` and fsyncs the directory. If the object is
// destroyed without commit() (an exception, an early return) the temporary file is removed and the
// target is untouched: nothing partial is ever left under `<path>`. While it exists the temporary is
// registered with util::cleanup_registration, so a tool's SIGINT/SIGTERM handler removes it too.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mla/core/error.hpp"
#include "mla/io/mapped_file.hpp"
#include "mla/util/signal_cleanup.hpp"

namespace mla::io {

class atomic_file {
 public:
  // Creates the temporary file. It is opened O_EXCL: two writers for the same target in one process
  // (or a stale temporary left by a crashed process with the same pid) give an error naming it,
  // rather than two writers sharing one file.
  explicit atomic_file(std::string path) : path_(std::move(path)) {
    check(!path_.empty(), "atomic_file: empty path");
    temp_path_ = path_ + ".tmp." + std::to_string(static_cast<long long>(::getpid()));
    do {
      fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    } while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) {
      const int err = errno;
      mla::detail::throw_error("cannot create temporary file '", temp_path_, "' for '", path_,
                               "': ", detail::errno_text(err));
    }
    cleanup_ = util::cleanup_registration(temp_path_, util::cleanup_kind::file);
  }

  atomic_file(const atomic_file&) = delete;
  atomic_file& operator=(const atomic_file&) = delete;

  atomic_file(atomic_file&& other) noexcept
      : path_(std::move(other.path_)),
        temp_path_(std::move(other.temp_path_)),
        fd_(std::exchange(other.fd_, -1)),
        bytes_written_(std::exchange(other.bytes_written_, 0)),
        committed_(std::exchange(other.committed_, true)),
        cleanup_(std::move(other.cleanup_)) {}

  atomic_file& operator=(atomic_file&& other) noexcept {
    if (this != &other) {
      discard();
      path_ = std::move(other.path_);
      temp_path_ = std::move(other.temp_path_);
      fd_ = std::exchange(other.fd_, -1);
      bytes_written_ = std::exchange(other.bytes_written_, 0);
      committed_ = std::exchange(other.committed_, true);
      cleanup_ = std::move(other.cleanup_);
    }
    return *this;
  }

  ~atomic_file() { discard(); }

  // Appends `size` bytes (handles short writes and EINTR).
  void write(const void* data, std::size_t size) {
    check(fd_ >= 0 && !committed_, "atomic_file '", path_, "': write after commit or discard");
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (size > 0) {
      const std::size_t chunk = size < (std::size_t{1} << 30) ? size : (std::size_t{1} << 30);
      const ssize_t n = ::write(fd_, p, chunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        mla::detail::throw_error("cannot write to '", temp_path_, "' (after ", bytes_written_,
                                 " bytes): ", detail::errno_text(err));
      }
      p += n;
      size -= static_cast<std::size_t>(n);
      bytes_written_ += static_cast<std::uint64_t>(n);
    }
  }
  void write(byte_span bytes) { write(bytes.data, bytes.size); }
  void write(const std::string& s) { write(s.data(), s.size()); }

  // fsync, close, rename into place, fsync the directory. After a failure the temporary is removed.
  void commit() {
    check(fd_ >= 0 && !committed_, "atomic_file '", path_, "': commit after commit or discard");
    if (::fsync(fd_) != 0) fail("cannot fsync '", temp_path_, "'");
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) fail("cannot close '", temp_path_, "'");
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
      fail("cannot rename '", temp_path_, "' to '", path_, "'");
    }
    committed_ = true;
    cleanup_.release();
    sync_directory();
  }

  // Removes the temporary file now (the destructor does the same).
  void discard() noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
    committed_ = true;
    cleanup_.release();
  }

  const std::string& path() const noexcept { return path_; }
  const std::string& temp_path() const noexcept { return temp_path_; }
  std::uint64_t bytes_written() const noexcept { return bytes_written_; }

 private:
  template <class... Parts>
  [[noreturn]] void fail(Parts&&... parts) {
    const int err = errno;
    discard();
    mla::detail::throw_error(std::forward<Parts>(parts)..., ": ", detail::errno_text(err));
  }

  // Makes the rename durable. Best effort: some file systems refuse fsync on a directory.
  void sync_directory() const noexcept {
    const auto slash = path_.find_last_of('/');
    const std::string dir = slash == std::string::npos ? std::string(".")
                            : slash == 0               ? std::string("/")
                                                       : path_.substr(0, slash);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
  }

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  std::uint64_t bytes_written_ = 0;
  bool committed_ = false;
  util::cleanup_registration cleanup_;  // the temporary, for a signal handler
};

// Writes `bytes` to `path` atomically.
inline void write_file_atomically(const std::string& path, byte_span bytes) {
  atomic_file f(path);
  f.write(bytes);
  f.commit();
}
inline void write_file_atomically(const std::string& path, const std::string& text) {
  atomic_file f(path);
  f.write(text);
  f.commit();
}

}  // namespace mla::io
