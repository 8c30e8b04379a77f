// Checks against a golden from an independent implementation (tools/*_golden.py): the 64-bit FNV-1a hash those
// scripts give the files and tensors they read, logits stored as JSON rows, and the per-position comparison
// (relative error <= tolerance, identical top-1) that the model golden tests share.
#pragma once

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "files.hpp"
#include "mla/reference/eigen_types.hpp"

namespace mla::test {

// 64-bit FNV-1a, as tools/deepseek2_golden.py and tools/gpt_oss_golden.py compute it.
struct fnv1a64 {
  std::uint64_t h = 0xCBF29CE484222325ull;
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};

// The hash of a whole file.
inline std::string file_fnv1a64(const std::filesystem::path& p) {
  const std::string bytes = read_file(p);
  fnv1a64 f;
  f.add(bytes.data(), bytes.size());
  return f.hex();
}

// A [rows, cols] matrix from JSON rows of numbers (the goldens' "logits": [positions, vocab]).
inline ref::matrix<float> json_matrix(const nlohmann::json& rows) {
  ref::matrix<float> m(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(rows[0].size()));
  for (Eigen::Index r = 0; r < m.rows(); ++r)
    for (Eigen::Index k = 0; k < m.cols(); ++k) m(r, k) = rows[std::size_t(r)][std::size_t(k)].get<float>();
  return m;
}

template <class Row>
int argmax(const Row& r) {
  Eigen::Index i = 0;
  r.maxCoeff(&i);
  return static_cast<int>(i);
}

// Logits [positions, vocab] against the golden's: per position relative error <= tolerance and top-1 == top1[p]
// (the golden's own argmax too: the file is self-consistent). Logs and returns the worst error; `reference` names
// the independent implementation in the log ("llama.cpp").
inline double compare_logits(const std::string& what, const ref::matrix<float>& got, const ref::matrix<float>& want,
                             const std::vector<int>& top1, double tolerance, const char* reference) {
  BOOST_TEST_REQUIRE(got.rows() == want.rows());
  BOOST_TEST_REQUIRE(got.cols() == want.cols());
  double worst = 0;
  for (Eigen::Index p = 0; p < got.rows(); ++p) {
    const double err = ref::relative_error(got.row(p), want.row(p));
    worst = std::max(worst, err);
    BOOST_TEST_CONTEXT(what << " position " << p) {
      BOOST_TEST(err <= tolerance);
      BOOST_TEST(argmax(got.row(p)) == top1[std::size_t(p)]);
      BOOST_TEST(argmax(want.row(p)) == top1[std::size_t(p)]);
    }
  }
  BOOST_TEST_MESSAGE(what << ": worst relative error vs " << reference << " " << worst << " over " << got.rows()
                          << " positions");
  return worst;
}

}  // namespace mla::test
