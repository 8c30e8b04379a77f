// Boost.Test checks of mla::error messages, for every test area: a call must throw an mla::error whose
// message holds every given part (the field, the file, the value the caller needs to fix the input).
#pragma once

#include <boost/test/unit_test.hpp>

#include <exception>
#include <initializer_list>
#include <string>

#include "mla/core/error.hpp"

namespace mla::test {

// Whether e's message holds every part; the first missing part is logged. For BOOST_CHECK_EXCEPTION.
inline bool message_has(const std::exception& e, std::initializer_list<std::string> parts) {
  const std::string msg = e.what();
  for (const auto& p : parts)
    if (msg.find(p) == std::string::npos) {
      BOOST_TEST_MESSAGE("error message \"" << msg << "\" does not contain \"" << p << "\"");
      return false;
    }
  return true;
}

// Asserts that f() throws mla::error whose message holds every part; returns the message (empty when
// nothing, or another exception, was thrown).
template <class F>
std::string expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const mla::error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) {
      BOOST_CHECK_MESSAGE(msg.find(p) != std::string::npos,
                          "error message \"" << msg << "\" does not contain \"" << p << "\"");
    }
    return msg;
  } catch (const std::exception& e) {
    BOOST_ERROR("expected mla::error, got another exception: " << e.what());
    return {};
  }
  std::string joined;
  for (const auto& p : parts) joined += "\"" + p + "\" ";
  BOOST_ERROR("expected mla::error containing " << joined << "but nothing was thrown");
  return {};
}

}  // namespace mla::test
