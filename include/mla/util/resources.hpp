// Process resource readings for reports.
#pragma once

#include <sys/resource.h>

#include <cstddef>

namespace mla::util {

// Peak resident set size of this process so far, in bytes (Linux reports ru_maxrss in KiB).
inline std::size_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::size_t>(u.ru_maxrss) * 1024u;
}

}  // namespace mla::util
