// mla::inspect csv: quoting one CSV field (RFC 4180: in double quotes, a quote doubled), for the reports' labels.
#pragma once

#include <string>

namespace mla::inspect {

inline std::string csv_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace mla::inspect
