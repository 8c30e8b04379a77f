// The seed of a random test: a fresh one per run, or MLA_TEST_SEED=<n> to replay one. Tests print it
// through BOOST_TEST_CONTEXT so that a failure can be replayed.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

namespace mla::test {

inline std::uint64_t test_seed() {
  if (const char* s = std::getenv("MLA_TEST_SEED")) return std::stoull(s);
  std::random_device rd;
  return (std::uint64_t(rd()) << 32) ^ rd();
}

}  // namespace mla::test
