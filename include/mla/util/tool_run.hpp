// mla::util tool runs: what every command-line tool of the project does around its work.
//
//   exit_ok / exit_failure / exit_usage   0 done, 1 bad input or failed work, 2 usage error (a flag, a value);
//                                         128 + signal when interrupted (signal_cleanup.hpp): 130, 143
//   exit_status_help                      the text each tool's --help ends with
//   run_summary summary("mla-eval")       on destruction, a last line on stderr: wall time and peak RSS
//   check_stdout()                        throws when what the tool printed could not be written (a full disk)
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mla/core/error.hpp"
#include "mla/util/resources.hpp"

namespace mla::util {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

inline const char* exit_status_help() {
  return "Exit status: 0 done; 1 bad input or failed work (one message names the file, flag or field); 2 usage "
         "error (an unknown flag, a missing or malformed value); 130 / 143 interrupted by SIGINT / SIGTERM (the "
         "temporary output is removed).";
}

// Flushes stdout and throws mla::error when any of it could not be written (stdout on a full disk, a closed
// pipe): the report is the tool's output, so losing it is a failure, not a success.
inline void check_stdout() {
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    const int err = errno;
    mla::detail::throw_error("cannot write to standard output", err != 0 ? ": " : "",
                             err != 0 ? std::strerror(err) : "");
  }
}

// Prints "<tool>: wall time H:MM:SS.s, peak memory X MiB (resident), N threads" on stderr when destroyed:
// construct it after the command line is parsed, so that every run that did work ends with it, errors included.
// `threads`: the OpenMP threads the tool ran with (free_cores.hpp), 0 to leave them out.
class run_summary {
 public:
  explicit run_summary(std::string tool, int threads = 0)
      : tool_(std::move(tool)), threads_(threads), start_(std::chrono::steady_clock::now()) {}
  run_summary(const run_summary&) = delete;
  run_summary& operator=(const run_summary&) = delete;
  ~run_summary() {
    const double s = seconds();
    const long whole = static_cast<long>(s);
    std::fflush(stdout);
    std::fprintf(stderr, "%s: wall time %ld:%02ld:%04.1f, peak memory %.1f MiB (resident)", tool_.c_str(), whole / 3600,
                 (whole / 60) % 60, s - double(whole - whole % 60), double(peak_rss_bytes()) / 1048576.0);
    if (threads_ > 0) std::fprintf(stderr, ", %d thread%s", threads_, threads_ == 1 ? "" : "s");
    std::fprintf(stderr, "\n");
  }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::string tool_;
  int threads_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace mla::util
