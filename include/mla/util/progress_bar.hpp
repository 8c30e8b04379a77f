// A one-line terminal progress bar with rate and ETA, redrawn in place on stderr ("\r").
// When stderr is not a terminal it prints at most one line per `min_interval` so logs stay short.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

namespace mla::util {

class progress_bar {
 public:
  // `unit` names what is counted ("tok"); `total` is the count at completion.
  progress_bar(std::string label, double total, std::string unit, double min_interval_seconds = 0.2)
      : label_(std::move(label)),
        unit_(std::move(unit)),
        total_(total),
        tty_(isatty(fileno(stderr)) != 0),
        min_interval_(tty_ ? min_interval_seconds : 10.0),
        start_(clock::now()),
        last_(start_) {}

  // Sets the absolute count done; draws when enough time has passed or the bar is complete.
  void update(double done) {
    const auto now = clock::now();
    const bool complete = done >= total_;
    if (!complete && seconds(last_, now) < min_interval_ && drawn_) return;
    last_ = now;
    drawn_ = true;
    const double elapsed = seconds(start_, now);
    const double rate = elapsed > 0 ? done / elapsed : 0;
    const double eta = rate > 0 ? (total_ - done) / rate : 0;
    const double frac = total_ > 0 ? std::clamp(done / total_, 0.0, 1.0) : 1.0;
    constexpr int width = 30;
    const int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "%s%s [%s] %5.1f%% %.0f/%.0f %s  %.1f %s/s  ETA %s   %s", tty_ ? "\r" : "", label_.c_str(),
                 bar.c_str(), 100 * frac, done, total_, unit_.c_str(), rate, unit_.c_str(), clock_text(eta).c_str(),
                 tty_ ? "" : "\n");
    std::fflush(stderr);
  }

  // Ends the line (terminal mode).
  void finish() {
    if (tty_ && drawn_) std::fputc('\n', stderr);
  }

 private:
  using clock = std::chrono::steady_clock;
  static double seconds(clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
  static std::string clock_text(double s) {
    const long t = static_cast<long>(s + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    return buf;
  }

  std::string label_, unit_;
  double total_;
  bool tty_;
  double min_interval_;
  clock::time_point start_, last_;
  bool drawn_ = false;
};

}  // namespace mla::util
