// mla::io::mapped_file: a read-only memory map of a whole file (POSIX mmap), RAII and move-only.
// Also byte_span, the non-owning (pointer, size) view that the io/ parsers take and hand out.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mla/core/error.hpp"

namespace mla::io {

// Non-owning view of bytes (C++17 has no std::span). Never dereferenced past `size`.
struct byte_span {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;

  const std::uint8_t* begin() const noexcept { return data; }
  const std::uint8_t* end() const noexcept { return data + size; }
  bool empty() const noexcept { return size == 0; }
  std::uint8_t operator[](std::size_t i) const noexcept { return data[i]; }
  // Bytes [offset, offset + count); the caller has checked the range.
  byte_span subspan(std::size_t offset, std::size_t count) const noexcept { return byte_span{data + offset, count}; }
};

namespace detail {
inline std::string errno_text(int err) { return std::string(std::strerror(err)); }
}  // namespace detail

// The whole file mapped PROT_READ / MAP_PRIVATE. The descriptor is closed right after mapping; the
// mapping stays valid until destruction. An empty file gives size() == 0 and data() == nullptr (mmap
// rejects length 0). The address does not change when the object is moved, so views into it survive
// a move of the owner.
class mapped_file {
 public:
  mapped_file() = default;

  explicit mapped_file(std::string path) : path_(std::move(path)) {
    int fd = -1;
    do {
      fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      const int err = errno;
      mla::detail::throw_error("cannot open '", path_, "' for reading: ", detail::errno_text(err));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      mla::detail::throw_error("cannot stat '", path_, "': ", detail::errno_text(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      mla::detail::throw_error("cannot map '", path_, "': not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        size_ = 0;
        mla::detail::throw_error("cannot mmap '", path_, "' (", st.st_size, " bytes): ", detail::errno_text(err));
      }
      data_ = static_cast<const std::uint8_t*>(p);
    }
    ::close(fd);
  }

  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  mapped_file(mapped_file&& other) noexcept
      : path_(std::move(other.path_)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}

  mapped_file& operator=(mapped_file&& other) noexcept {
    if (this != &other) {
      unmap();
      path_ = std::move(other.path_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }

  ~mapped_file() { unmap(); }

  const std::uint8_t* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  byte_span bytes() const noexcept { return byte_span{data_, size_}; }
  const std::string& path() const noexcept { return path_; }
  bool is_mapped() const noexcept { return data_ != nullptr; }

  // Hands the pages under `s` back to the kernel (madvise MADV_DONTNEED): they leave this process's resident
  // set and stay in the page cache, so a later read faults them in again from there. What a page holds never
  // changes (the mapping is read-only and file-backed). Returns false and does nothing when `s` is not inside
  // this mapping (bytes of another owner: MADV_DONTNEED would zero anonymous memory).
  bool release(byte_span s) const noexcept {
    if (data_ == nullptr || s.empty() || s.data < data_ || s.size > size_ ||
        static_cast<std::size_t>(s.data - data_) > size_ - s.size)
      return false;
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    // Outward to whole pages: the mapping starts on a page and its last page is mapped whole.
    const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(s.data) & ~(page - 1);
    const std::uintptr_t last = (reinterpret_cast<std::uintptr_t>(s.data) + s.size + page - 1) & ~(page - 1);
    return ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED) == 0;
  }

 private:
  void unmap() noexcept {
    if (data_ != nullptr) {
      ::munmap(const_cast<std::uint8_t*>(data_), size_);
      data_ = nullptr;
      size_ = 0;
    }
  }

  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace mla::io
