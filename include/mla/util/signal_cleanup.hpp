// mla::util signal cleanup: on SIGINT or SIGTERM a tool removes the temporary outputs it is writing and exits
// 128 + the signal (130, 143), so an interrupted run leaves no `<out>.tmp.<pid>` behind.
//
//   install_signal_cleanup("mla-convert")   once, at the start of main (a SIGINT ignored at startup, as in a
//                                           background job of a script, stays ignored)
//   cleanup_registration reg(path, kind)    while `path` (a file, or a directory of files) is a temporary that
//                                           must not outlive the process; io::atomic_file and
//                                           io::atomic_directory hold one for their temporaries
//
// The handler runs at once, wherever the work is (a conversion stage can run for minutes between two progress
// callbacks, so a flag that the loops poll would answer late), and uses only async-signal-safe system calls on
// paths copied into fixed slots when they were registered: unlink for a file; for a directory open, getdents64,
// unlinkat of every entry (one level of subdirectories), rmdir, repeated a few times in case a writer thread
// adds a file meanwhile; then write(2) of one line and _exit. No allocation, no lock, no stdio.
#pragma once

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mla::util {

enum class cleanup_kind { file, directory };

namespace cleanup_detail {

struct cleanup_slot {
  std::atomic<int> state{0};  // 0 free, 1 being written, 2 registered
  bool directory = false;
  char path[4096] = {};
};
inline constexpr int cleanup_slots = 64;
inline cleanup_slot cleanup_registry[cleanup_slots];
inline char cleanup_tool[64] = "mla";
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler reads the slots' states");

inline void write_text(const char* s) noexcept {
  std::size_t n = std::strlen(s);  // strlen is async-signal-safe in practice (POSIX.1-2016 lists it)
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w, n -= static_cast<std::size_t>(w);
  }
}

// Removes the entries of directory `path` (and of its direct subdirectories), then `path`: system calls only.
inline bool remove_directory_now(const char* path, int depth = 0) noexcept {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT;
    alignas(8) char buf[4096];
    for (;;) {
      const long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name
        unsigned short reclen;
        std::memcpy(&reclen, buf + off + 16, sizeof reclen);
        const char* name = buf + off + 19;
        off += reclen;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        if (::unlinkat(fd, name, 0) != 0 && (errno == EISDIR || errno == EPERM) && depth == 0) {
          // A subdirectory: its path is <path>/<name>, built on the stack.
          char sub[4096 + 256];
          const std::size_t a = std::strlen(path), b = std::strlen(name);
          if (a + b + 2 <= sizeof sub) {
            std::memcpy(sub, path, a), sub[a] = '/', std::memcpy(sub + a + 1, name, b + 1);
            remove_directory_now(sub, depth + 1);
          }
        }
      }
    }
    ::close(fd);
    if (::rmdir(path) == 0 || errno == ENOENT) return true;
  }
  return false;
}

inline void remove_registered_now() noexcept {
  // Files first (a temporary file inside a registered directory goes with it anyway), then directories.
  for (const bool dirs : {false, true})
    for (cleanup_slot& s : cleanup_registry) {
      if (s.state.load(std::memory_order_acquire) != 2 || s.directory != dirs) continue;
      const bool removed = dirs ? remove_directory_now(s.path) : (::unlink(s.path) == 0 || errno == ENOENT);
      write_text(cleanup_tool);
      write_text(removed ? ": removed the temporary output '" : ": could not remove the temporary output '");
      write_text(s.path);
      write_text("'\n");
    }
}

inline void cleanup_signal_handler(int sig) {
  write_text("\n");
  write_text(cleanup_tool);
  write_text(sig == SIGINT ? ": interrupted (SIGINT)\n" : ": terminated (SIGTERM)\n");
  remove_registered_now();
  ::_exit(128 + sig);
}

}  // namespace cleanup_detail

// Installs the cleanup handler for SIGINT and SIGTERM; `tool` (at most 63 characters) prefixes its lines.
inline void install_signal_cleanup(const char* tool) {
  std::strncpy(cleanup_detail::cleanup_tool, tool, sizeof cleanup_detail::cleanup_tool - 1);
  struct sigaction sa {};
  sa.sa_handler = cleanup_detail::cleanup_signal_handler;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);  // one handler at a time: a second signal waits for the _exit
  sigaddset(&sa.sa_mask, SIGTERM);
  for (const int sig : {SIGINT, SIGTERM}) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN && sig == SIGINT) continue;
    sigaction(sig, &sa, nullptr);
  }
}

// Registers `path` for removal by the handler while the object lives. A path longer than a slot, or a full
// registry (64 temporaries at once), is not registered: the output is then only cleaned up by its own
// destructor, as without a signal.
class cleanup_registration {
 public:
  cleanup_registration() = default;
  cleanup_registration(const std::string& path, cleanup_kind kind) {
    if (path.empty() || path.size() >= sizeof(cleanup_detail::cleanup_slot::path)) return;
    for (int i = 0; i < cleanup_detail::cleanup_slots; ++i) {
      int expected = 0;
      cleanup_detail::cleanup_slot& s = cleanup_detail::cleanup_registry[i];
      if (!s.state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) continue;
      std::memcpy(s.path, path.c_str(), path.size() + 1);
      s.directory = kind == cleanup_kind::directory;
      s.state.store(2, std::memory_order_release);
      slot_ = i;
      return;
    }
  }
  cleanup_registration(const cleanup_registration&) = delete;
  cleanup_registration& operator=(const cleanup_registration&) = delete;
  cleanup_registration(cleanup_registration&& o) noexcept : slot_(o.slot_) { o.slot_ = -1; }
  cleanup_registration& operator=(cleanup_registration&& o) noexcept {
    if (this != &o) release(), slot_ = o.slot_, o.slot_ = -1;
    return *this;
  }
  ~cleanup_registration() { release(); }

  // Unregisters now (after a commit renamed the temporary away, or a discard removed it).
  void release() noexcept {
    if (slot_ >= 0) cleanup_detail::cleanup_registry[slot_].state.store(0, std::memory_order_release);
    slot_ = -1;
  }
  bool registered() const noexcept { return slot_ >= 0; }

 private:
  int slot_ = -1;
};

}  // namespace mla::util
