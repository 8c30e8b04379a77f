// mla::convert calibration text from a file, as plain UTF-8 text or as JSON Lines with a string field "text" per
// line (the audit's calib_*.jsonl, and what mla-calib writes). A file is JSONL when its name ends in .jsonl or
// .ndjson (is_jsonl_path). Errors name the file and the line.
//   for_each_jsonl_text(path, fn)       fn(text) for each record's "text", in file order; fn returns false to stop
//   read_calibration_text(path, max)    the whole text (JSONL records joined with "\n\n"); at most `max_bytes`
//                                       kept (0: all), cut back to a whole UTF-8 character
#pragma once

#include <cstddef>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"

namespace mla::convert {

inline bool is_jsonl_path(const std::string& path) {
  const auto ends_with = [&](const std::string& suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".jsonl") || ends_with(".ndjson");
}

template <class Fn>
void for_each_jsonl_text(const std::string& path, Fn&& fn) {
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "calibration text '", path, "': cannot open");
  std::string line;
  long line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    check(!j.is_discarded(), "calibration text '", path, "': line ", line_no, " is not valid JSON");
    check(j.is_object() && j.contains("text") && j.at("text").is_string(), "calibration text '", path, "': line ",
          line_no, " has no string field \"text\"");
    if (!fn(j.at("text").get<std::string>())) return;
  }
}

inline std::string read_calibration_text(const std::string& path, std::size_t max_bytes = 0) {
  std::string text;
  if (is_jsonl_path(path)) {
    for_each_jsonl_text(path, [&](const std::string& record) {
      if (!text.empty()) text += "\n\n";
      text += record;
      return !(max_bytes > 0 && text.size() >= max_bytes);
    });
  } else {
    std::ifstream in(path, std::ios::binary);
    check(static_cast<bool>(in), "calibration text '", path, "': cannot open");
    std::ostringstream s;
    s << in.rdbuf();
    text = s.str();
  }
  if (max_bytes > 0 && text.size() > max_bytes) {
    text.resize(max_bytes);
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();
    if (!text.empty() && (static_cast<unsigned char>(text.back()) & 0x80)) text.pop_back();  // a cut lead byte
  }
  check(!text.empty(), "calibration text '", path, "': no text");
  return text;
}

}  // namespace mla::convert
