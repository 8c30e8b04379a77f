// A one-line terminal progress bar with rate and ETA, redrawn in place on stderr ("\r").
// When stderr is not a terminal it prints at most one line per `min_interval` so logs stay short.
// The rate, and the ETA from it, are those of the last minute (at least the last two updates): a slow first
// step (a stage that starts with a long setup, or a machine busy for a while) does not skew the estimate
// of the rest. moving_rate is that estimator.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <utility>

namespace mla::util {

// Units per second over the last `window` seconds of (time, count) samples: the oldest sample kept is the last
// one at least `window` old (or the first), so a rate always spans one update at least.
class moving_rate {
 public:
  explicit moving_rate(double window_seconds = 60.0) : window_(window_seconds) {}
  // A sample: `count` done at `t` seconds (both non-decreasing).
  void add(double t, double count) {
    samples_.emplace_back(t, count);
    while (samples_.size() > 2 && t - samples_[1].first >= window_) samples_.pop_front();
  }
  // 0 before two samples, or when no time has passed.
  double rate() const {
    if (samples_.size() < 2) return 0;
    const double dt = samples_.back().first - samples_.front().first;
    return dt > 0 ? (samples_.back().second - samples_.front().second) / dt : 0;
  }

 private:
  double window_;
  std::deque<std::pair<double, double>> samples_;
};

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
        last_(start_) {
    rate_.add(0, 0);
  }

  // Sets the absolute count done; draws when enough time has passed or the bar is complete.
  void update(double done) {
    const auto now = clock::now();
    rate_.add(seconds(start_, now), done);
    const bool complete = done >= total_;
    if (!complete && seconds(last_, now) < min_interval_ && drawn_) return;
    last_ = now;
    drawn_ = true;
    const double elapsed = seconds(start_, now);
    const double rate = rate_.rate();
    const double eta = rate > 0 ? (total_ - done) / rate : 0;
    const double frac = total_ > 0 ? std::clamp(done / total_, 0.0, 1.0) : 1.0;
    constexpr int width = 30;
    const int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    // Counts below 10 (layers) keep a decimal: 3.5/30 layers.
    const int digits = total_ < 100 && done != static_cast<long>(done) ? 1 : 0;
    std::fprintf(stderr, "%s%s [%s] %5.1f%% %.*f/%.0f %s  %.*f %s/s  elapsed %s  ETA %s   %s", tty_ ? "\r" : "",
                 label_.c_str(), bar.c_str(), 100 * frac, digits, done, total_, unit_.c_str(), rate < 1 ? 3 : 1, rate,
                 unit_.c_str(), clock_text(elapsed).c_str(), complete || rate > 0 ? clock_text(eta).c_str() : "?",
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
  moving_rate rate_;
  bool drawn_ = false;
};

}  // namespace mla::util
