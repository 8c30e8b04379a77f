// mla::error: the one exception type the library throws for bad configuration or bad input.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mla {

// Thrown for host-side configuration errors (unsupported shape, inconsistent sizes) and bad input.
// Messages name the entity, what was found and what was expected.
class error : public std::runtime_error {
 public:
  explicit error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Parts>
[[noreturn]] inline void throw_error(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  throw error(os.str());
}
}  // namespace detail

// Throws mla::error with the concatenation of the message parts when `condition` is false.
template <class... Parts>
inline void check(bool condition, Parts&&... parts) {
  if (!condition) detail::throw_error(std::forward<Parts>(parts)...);
}

}  // namespace mla
