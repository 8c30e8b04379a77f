// mla::inspect gnuplot: pictures (PNG and SVG) drawn by gnuplot, the plotting tool from Debian (package
// gnuplot-nox), and only when it is installed; the library draws nothing itself.
//   find_gnuplot(path_env)        the gnuplot executable on a PATH-like list ("" when there is none)
//   gnuplot_missing_message()     what to say when it is missing (how to install it)
//   heatmap{...}; write_heatmap(dir, hm) -> script   writes <dir>/<name>.dat (the matrix, rows = y) and
//                                 <dir>/<name>.gp, which draws <name>.png (pngcairo) and <name>.svg
//   run_gnuplot(gnuplot, script, outputs)   runs the script in its directory with suffix = '.tmp', so that it
//                                 writes each output as <output>.tmp, renamed over <output> once gnuplot succeeded
//                                 (removed otherwise); `gnuplot <name>.gp` by hand writes the pictures directly
// The .dat and .gp files stay beside the pictures, so that a picture can be redrawn or restyled by hand.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/util/output_path.hpp"

namespace mla::inspect {

// The first executable `gnuplot` in the ':'-separated directories of path_env (the value of $PATH).
inline std::string find_gnuplot(const std::string& path_env) {
  namespace fs = std::filesystem;
  std::size_t start = 0;
  while (start <= path_env.size()) {
    const std::size_t end = std::min(path_env.find(':', start), path_env.size());
    const std::string dir = path_env.substr(start, end - start);
    if (!dir.empty()) {
      const fs::path p = fs::path(dir) / "gnuplot";
      std::error_code ec;
      if (fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0) return p.string();
    }
    start = end + 1;
  }
  return "";
}

inline std::string gnuplot_missing_message() {
  return "gnuplot was not found on PATH, so no pictures were drawn; install it (Debian/Ubuntu: sudo apt-get "
         "install gnuplot-nox, or scripts/deps.sh) and run again";
}

namespace detail {
// A gnuplot string literal: single quotes, a quote doubled (no backslash escapes inside single quotes).
inline std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}
}  // namespace detail

// A matrix drawn as an image: values(r, c) at x = c, y = r.
struct heatmap {
  std::string name;      // file stem: <name>.png, <name>.svg, <name>.dat, <name>.gp
  std::string title;     // the picture's title
  std::string subtitle;  // a second, smaller title line (what was measured on what); may be empty
  std::string xlabel, ylabel, cblabel;
  ref::matrix<double> values;  // [rows (y), cols (x)]
};

// Writes <dir>/<name>.dat and <dir>/<name>.gp; returns the script's path. The pictures are 1000 x 720 pixels.
inline std::string write_heatmap(const std::string& dir, const heatmap& hm) {
  namespace fs = std::filesystem;
  check(hm.values.rows() > 0 && hm.values.cols() > 0, "mla::inspect::write_heatmap: '", hm.name, "' has no values");
  check(!hm.name.empty() && hm.name.find('/') == std::string::npos, "mla::inspect::write_heatmap: bad name '", hm.name,
        "'");
  std::string data;
  char num[32];
  for (Eigen::Index r = 0; r < hm.values.rows(); ++r) {
    for (Eigen::Index c = 0; c < hm.values.cols(); ++c) {
      const double v = hm.values(r, c);
      std::snprintf(num, sizeof num, "%s%.6g", c ? " " : "", std::isfinite(v) ? v : 0.0);
      data += num;
    }
    data += "\n";
  }
  const std::string stem = (fs::path(dir) / hm.name).string();
  util::write_file("--plot", stem + ".dat", data);
  const long rows = long(hm.values.rows()), cols = long(hm.values.cols());
  // Tick every 1, 2, 5, ... so that at most ~16 labels share an axis.
  auto step = [](long n) {
    for (long s : {1L, 2L, 5L, 10L, 20L, 50L, 100L})
      if (n / s <= 16) return s;
    return n / 16 + 1;
  };
  std::string gp;
  gp += "# drawn by mla-inspect (mla::inspect::write_heatmap); redraw with: gnuplot " + hm.name + ".gp\n";
  gp += "if (!exists('suffix')) suffix = ''  # run_gnuplot sets '.tmp' and renames the outputs afterwards\n";
  gp += "set title " + detail::gp_quote(hm.title);
  if (!hm.subtitle.empty()) gp += ".\"\\n\"." + detail::gp_quote(hm.subtitle);
  gp += " noenhanced\n";
  gp += "set xlabel " + detail::gp_quote(hm.xlabel) + " noenhanced\n";
  gp += "set ylabel " + detail::gp_quote(hm.ylabel) + " noenhanced\n";
  gp += "set cblabel " + detail::gp_quote(hm.cblabel) + " noenhanced\n";
  gp += "set xrange [-0.5:" + std::to_string(cols) + "-0.5]\n";
  gp += "set yrange [-0.5:" + std::to_string(rows) + "-0.5]\n";
  gp += "set xtics 0," + std::to_string(step(cols)) + " out nomirror\n";
  gp += "set ytics 0," + std::to_string(step(rows)) + " out nomirror\n";
  gp += "set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')\n";
  gp += "set tics font ',11'\nset key off\n";
  gp += "set terminal pngcairo size 1000,720 font 'DejaVu Sans,13' noenhanced\n";
  gp += "set output " + detail::gp_quote(hm.name + ".png") + ".suffix\n";
  gp += "plot " + detail::gp_quote(hm.name + ".dat") + " matrix with image\n";
  gp += "set terminal svg size 1000,720 font 'DejaVu Sans,13' noenhanced background '#ffffff'\n";
  gp += "set output " + detail::gp_quote(hm.name + ".svg") + ".suffix\n";
  gp += "replot\nunset output\n";
  util::write_file("--plot", stem + ".gp", gp);
  return stem + ".gp";
}

// Runs `gnuplot script` in the script's directory; each of `outputs` (paths) is then renamed from
// <output>.tmp. Throws naming the script when gnuplot fails or an output is missing (and removes the .tmp files).
inline void run_gnuplot(const std::string& gnuplot, const std::string& script,
                        const std::vector<std::string>& outputs) {
  namespace fs = std::filesystem;
  check(!gnuplot.empty(), gnuplot_missing_message());
  const fs::path sp = fs::absolute(script);
  auto clean = [&] {
    std::error_code ec;
    for (const auto& o : outputs) fs::remove(o + ".tmp", ec);
  };
  const std::string dir = sp.parent_path().string(), file = sp.filename().string();  // (no allocation after fork)
  const pid_t pid = ::fork();
  check(pid >= 0, "mla::inspect::run_gnuplot: cannot start ", gnuplot);
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(127);
    ::execl(gnuplot.c_str(), gnuplot.c_str(), "-e", "suffix = '.tmp'", file.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    clean();
    mla::detail::throw_error("mla::inspect::run_gnuplot: ", gnuplot, " ", sp.string(), " failed (exit status ",
                             WIFEXITED(status) ? WEXITSTATUS(status) : -1, ")");
  }
  for (const auto& o : outputs) {
    std::error_code ec;
    fs::rename(o + ".tmp", o, ec);
    if (ec) {
      clean();
      mla::detail::throw_error("mla::inspect::run_gnuplot: ", sp.string(), " did not write '", o, "': ", ec.message());
    }
  }
}

// Writes and draws a heatmap: <dir>/<name>.png and .svg. Returns the two pictures' paths.
inline std::vector<std::string> draw_heatmap(const std::string& gnuplot, const std::string& dir, const heatmap& hm) {
  const std::string script = write_heatmap(dir, hm);
  const std::string stem = (std::filesystem::path(dir) / hm.name).string();
  const std::vector<std::string> outputs{stem + ".png", stem + ".svg"};
  run_gnuplot(gnuplot, script, outputs);
  return outputs;
}

}  // namespace mla::inspect
