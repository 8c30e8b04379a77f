// What every example program does around CLI11 (the library has no CLI11 dependency; mla/util/tool_run.hpp
// holds the rest):
//   start(app, tool)                 the SIGINT/SIGTERM cleanup, the exit-status footer of --help, defaults shown
//                                    in --help
//   MLA_CLI_PARSE(app, argc, argv)   CLI11_PARSE with the project's exit status: 0 for --help, 2 for a usage error
//   names(map)                       a name -> value option whose error lists the allowed names
//   one_of({...})                    the same for a string option
//   integer(lo, hi) / number(lo, hi) "expected an integer, found 'abc'", "must be >= 0, found -1" (CLI11's own
//                                    range text ends in a 300-digit number)
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <mla/util/free_cores.hpp>
#include <mla/util/signal_cleanup.hpp>
#include <mla/util/tool_run.hpp>

namespace mla_examples {

inline void start(CLI::App& app, const char* tool) {
  mla::util::install_signal_cleanup(tool);
  app.footer(mla::util::exit_status_help());
  app.option_defaults()->always_capture_default();
}

// A name -> value option (use with ->transform): the error names the value given and every allowed name, e.g.
// "--method: 'foo' is not one of activation_pca, attention_aware, care, weight_svd"; names ignore case.
template <class E>
CLI::Validator names(const std::map<std::string, E>& m) {
  std::string allowed;
  for (const auto& [name, value] : m) allowed += (allowed.empty() ? "" : ", ") + name;
  return CLI::Validator(
      [m, allowed](std::string& input) -> std::string {
        for (const auto& [name, value] : m)
          if (CLI::detail::to_lower(name) == CLI::detail::to_lower(input)) {
            input = std::to_string(static_cast<long long>(value));
            return {};
          }
        return "'" + input + "' is not one of " + allowed;
      },
      "one of: " + allowed);
}

// The name of `value` in a names() map (the default shown by --help).
template <class E>
std::string name_of(const std::map<std::string, E>& m, E value) {
  for (const auto& [name, v] : m)
    if (v == value) return name;
  return "?";
}

// A string option with a fixed set of values, with the same message.
inline CLI::Validator one_of(std::initializer_list<std::string> values) {
  std::string allowed;
  for (const std::string& v : values) allowed += (allowed.empty() ? "" : ", ") + v;
  std::vector<std::string> list(values);
  return CLI::Validator(
      [list, allowed](std::string& input) -> std::string {
        for (const std::string& v : list)
          if (v == input) return {};
        return "'" + input + "' is not one of " + allowed;
      },
      "one of: " + allowed);
}

// A whole number in [lo, hi]: "expected an integer, found 'abc'", "must be >= 0, found -1".
inline CLI::Validator integer(long long lo = std::numeric_limits<long long>::min(),
                              long long hi = std::numeric_limits<long long>::max()) {
  const bool has_lo = lo != std::numeric_limits<long long>::min(), has_hi = hi != std::numeric_limits<long long>::max();
  const std::string range = has_lo && has_hi ? "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"
                            : has_lo         ? ">= " + std::to_string(lo)
                            : has_hi         ? "<= " + std::to_string(hi)
                                             : "";
  return CLI::Validator(
      [lo, hi, range](std::string& input) -> std::string {
        long long v = 0;
        if (!CLI::detail::lexical_cast(input, v)) return "expected an integer, found '" + input + "'";
        if (v < lo || v > hi) return "must be " + range + ", found " + input;
        return {};
      },
      range.empty() ? "integer" : "integer " + range);
}

// A real number at least `lo` (above lo when `above`) and at most `hi`: "expected a number, found 'x'".
inline CLI::Validator number(double lo = -HUGE_VAL, double hi = HUGE_VAL, bool above = false) {
  auto text = [](double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  std::string range;
  if (lo != -HUGE_VAL) range = (above ? "> " : ">= ") + text(lo);
  if (hi != HUGE_VAL)
    range = lo != -HUGE_VAL ? (above ? "in (" : "in [") + text(lo) + ", " + text(hi) + "]" : "<= " + text(hi);
  return CLI::Validator(
      [lo, hi, above, range](std::string& input) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(input, v)) return "expected a number, found '" + input + "'";
        if (v < lo || (above && v == lo) || v > hi) return "must be " + range + ", found " + input;
        return {};
      },
      range.empty() ? "number" : "number " + range);
}

}  // namespace mla_examples

// CLI11_PARSE with the project's exit statuses (mla/util/tool_run.hpp): --help 0, any usage error 2.
#define MLA_CLI_PARSE(app, argc, argv)                                         \
  do {                                                                         \
    try {                                                                      \
      (app).parse((argc), (argv));                                             \
    } catch (const CLI::ParseError& e_) {                                      \
      return (app).exit(e_) == 0 ? mla::util::exit_ok : mla::util::exit_usage; \
    }                                                                          \
  } while (0)
