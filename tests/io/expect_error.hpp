// Boost.Test helper: asserts that a call throws mla::error whose message holds every given substring.
#pragma once

#include <boost/test/unit_test.hpp>

#include <initializer_list>
#include <string>

#include "mla/core/error.hpp"

namespace mla_test {

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

}  // namespace mla_test
