// Shared helpers for the tokenizer tests: data files, golden data, and tiny byte-level vocabularies built by
// hand; the seed, error-message and file helpers of every test area (tests/support) under tok_test:: too.
#pragma once

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/tokenizer/bpe.hpp"
#include "mla/tokenizer/byte_level.hpp"
#include "mla/tokenizer/tokenizer.hpp"
#include "mla/tokenizer/unicode.hpp"

#include "expect_error.hpp"
#include "files.hpp"
#include "resources.hpp"
#include "seed.hpp"

// Printable enums for BOOST_TEST (found by argument-dependent lookup).
namespace mla::tok {
inline std::ostream& operator<<(std::ostream& os, utf8_status s) { return os << utf8_status_text(s); }
inline std::ostream& operator<<(std::ostream& os, token_type t) {
  return os << "token_type(" << static_cast<int>(t) << ")";
}
}  // namespace mla::tok

namespace tok_test {

using mla::test::expect_error;
using mla::test::read_file;
using mla::test::test_seed;

inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : fallback;
}

inline bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

inline std::string data_path(const std::string& name) { return std::string(MLA_TOKENIZER_TEST_DATA_DIR) + "/" + name; }

// The o200k_base vocabulary for the o200k id tests, first found of:
//   $MLA_O200K_VOCAB                                   quicktok's o200k.vocab or a tiktoken rank file
//   ~/.cache/mla/whl/quicktok/data/o200k.vocab         unpacked by scripts/fetch_o200k.sh
//   $MLA_O200K_TIKTOKEN, ~/.cache/mla/o200k_base.tiktoken   the rank file of tools/o200k_golden.py
// Empty when none exists (the tests that need it skip).
inline std::string o200k_vocab_path() {
  const char* home = std::getenv("HOME");
  const std::string cache = std::string(home ? home : "") + "/.cache/mla";
  for (const std::string& p : {env_or("MLA_O200K_VOCAB", ""), cache + "/whl/quicktok/data/o200k.vocab",
                               env_or("MLA_O200K_TIKTOKEN", ""), cache + "/o200k_base.tiktoken"})
    if (!p.empty() && file_exists(p)) return p;
  return {};
}

// Precondition: the o200k vocabulary is at hand (`vocab_file`: quicktok's .vocab file itself, not the rank file).
struct has_o200k {
  bool vocab_file = false;
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    const std::string p = o200k_vocab_path();
    const bool is_vocab = p.size() >= 6 && p.compare(p.size() - 6, 6, ".vocab") == 0;
    return mla::test::skip_unless(!p.empty() && (!vocab_file || is_vocab),
                                  vocab_file ? "quicktok's o200k.vocab not found (run scripts/fetch_o200k.sh or set "
                                               "MLA_O200K_VOCAB)"
                                             : "no o200k vocabulary (run scripts/fetch_o200k.sh, or set "
                                               "MLA_O200K_VOCAB to quicktok's o200k.vocab or a tiktoken rank file)");
  }
};

// tests/tokenizer/data/smollm2_golden.json, written by tools/tokenizer_golden.py (HF tokenizers).
inline const nlohmann::json& golden() {
  static const nlohmann::json g = nlohmann::json::parse(read_file(data_path("smollm2_golden.json")));
  return g;
}

// tests/tokenizer/data/o200k_golden.json, written by tools/o200k_golden.py (tiktoken).
inline const nlohmann::json& o200k_golden() {
  static const nlohmann::json g = nlohmann::json::parse(read_file(data_path("o200k_golden.json")));
  return g;
}

inline std::vector<std::int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<std::int32_t>>(); }

// Byte-level symbol of one byte, e.g. sym(' ') == "Ġ".
inline std::string sym(unsigned char b) { return mla::tok::to_byte_level(std::string(1, static_cast<char>(b))); }

// Token list whose ids 0..255 are the byte symbols (id == byte value), then `extra` in order.
inline std::vector<std::string> byte_tokens(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> tokens;
  for (unsigned b = 0; b < 256; ++b) tokens.push_back(sym(static_cast<unsigned char>(b)));
  tokens.insert(tokens.end(), extra.begin(), extra.end());
  return tokens;
}

// Printable form of ids for failure messages.
inline std::string show(const std::vector<std::int32_t>& ids) {
  std::ostringstream s;
  s << "[";
  for (std::size_t i = 0; i < ids.size(); ++i) s << (i ? ", " : "") << ids[i];
  s << "]";
  return s.str();
}

}  // namespace tok_test
