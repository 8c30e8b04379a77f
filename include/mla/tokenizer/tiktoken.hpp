// mla::tok::tiktoken_bpe: OpenAI's tiktoken byte-level BPE from a rank file (o200k_base.tiktoken:
// one "base64(token bytes) rank" line per token), with the o200k pre-tokenizer (o200k.hpp) and special
// tokens, e.g. the harmony ones of gpt-oss (o200k_harmony: vocabulary 201088).
//
// encode(text), as tiktoken's Encoding.encode(text, allowed_special="all"):
//   1. special tokens are matched as whole strings first (leftmost, longest), emitted as their ids;
//   2. the text between them is split by the o200k regex;
//   3. a piece that is itself a token is that token; otherwise tiktoken's byte_pair_merge: start
//      from single bytes and repeatedly join the adjacent pair whose concatenation has the lowest
//      rank (the leftmost on ties) until no adjacent concatenation is a token.
// encode_ordinary(text) skips step 1 (tiktoken's encode_ordinary). decode(ids) concatenates bytes.
//
// Ranks are merge priorities and ids at once; there is no merge list. (A Hugging Face tokenizer.json
// for gpt-oss expresses the same thing as byte-level vocab + merges; o200k_json.hpp reads that form.)
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/tokenizer/o200k.hpp"
#include "mla/tokenizer/unicode.hpp"

namespace mla::tok {

namespace detail {
inline int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with '=' padding; false on anything else.
inline bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const unsigned char c = static_cast<unsigned char>(in[i + std::size_t(k)]);
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0, ++pad;
      } else {
        if (pad) return false;  // data after padding
        v[k] = base64_value(c);
        if (v[k] < 0) return false;
      }
    }
    const std::uint32_t w =
        (std::uint32_t(v[0]) << 18) | (std::uint32_t(v[1]) << 12) | (std::uint32_t(v[2]) << 6) | std::uint32_t(v[3]);
    out.push_back(static_cast<char>(w >> 16));
    if (pad < 2) out.push_back(static_cast<char>((w >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(w & 0xFF));
  }
  return true;
}
}  // namespace detail

// "<|...|>" text and id of one special token.
struct special_token {
  std::string text;
  std::int32_t id;
};

// The special tokens of tiktoken's o200k_harmony (gpt-oss): o200k_base's <|endoftext|> 199999 and
// <|endofprompt|> 200018, the harmony tokens 199998..200012, and <|reserved_N|> for every other id up
// to 201087. Id 200018 has two texts (<|endofprompt|> and <|reserved_200018|>), as in tiktoken.
inline std::vector<special_token> o200k_harmony_special_tokens() {
  std::vector<special_token> s = {{"<|startoftext|>", 199998},
                                  {"<|endoftext|>", 199999},
                                  {"<|reserved_200000|>", 200000},
                                  {"<|reserved_200001|>", 200001},
                                  {"<|return|>", 200002},
                                  {"<|constrain|>", 200003},
                                  {"<|reserved_200004|>", 200004},
                                  {"<|channel|>", 200005},
                                  {"<|start|>", 200006},
                                  {"<|end|>", 200007},
                                  {"<|message|>", 200008},
                                  {"<|reserved_200009|>", 200009},
                                  {"<|reserved_200010|>", 200010},
                                  {"<|reserved_200011|>", 200011},
                                  {"<|call|>", 200012},
                                  {"<|endofprompt|>", 200018}};
  for (std::int32_t i = 200013; i < 201088; ++i) s.push_back({"<|reserved_" + std::to_string(i) + "|>", i});
  return s;
}

class tiktoken_bpe {
 public:
  tiktoken_bpe() = default;

  // tokens[rank] = the token's bytes (an empty string is a hole: no token has that rank).
  tiktoken_bpe(std::vector<std::string> tokens, std::vector<special_token> specials)
      : tokens_(std::move(tokens)), specials_(std::move(specials)) {
    const char* who = "tiktoken_bpe";
    check(tokens_.size() < static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()), who,
          ": too many tokens");
    ranks_.reserve(tokens_.size());
    for (std::size_t r = 0; r < tokens_.size(); ++r) {
      if (tokens_[r].empty()) continue;
      const auto [it, inserted] = ranks_.emplace(tokens_[r], static_cast<std::int32_t>(r));
      check(inserted, who, ": the bytes of rank ", r, " are also rank ", it->second);
    }
    for (unsigned b = 0; b < 256; ++b)
      check(ranks_.count(std::string(1, static_cast<char>(b))) != 0, who, ": byte ", b,
            " is not a token (every single byte must be, or some text cannot be encoded)");
    for (const special_token& s : specials_) {
      check(!s.text.empty(), who, ": empty special token text (id ", s.id, ")");
      check(s.id >= 0, who, ": special token '", s.text, "' has a negative id");
      check(static_cast<std::size_t>(s.id) >= tokens_.size() || tokens_[static_cast<std::size_t>(s.id)].empty(), who,
            ": special token '", s.text, "' reuses rank ", s.id, " of an ordinary token");
      validate_utf8(s.text, "tiktoken_bpe: special token text");
      n_vocab_ = std::max(n_vocab_, static_cast<std::size_t>(s.id) + 1);
      special_text_.emplace(s.id, s.text);  // the first text given for an id decodes it
    }
    n_vocab_ = std::max(n_vocab_, tokens_.size());
    // Longest first, so the first hit at a position is the longest.
    std::stable_sort(specials_.begin(), specials_.end(),
                     [](const special_token& a, const special_token& b) { return a.text.size() > b.text.size(); });
    for (std::size_t i = 0; i < specials_.size(); ++i)
      by_first_byte_[static_cast<unsigned char>(specials_[i].text[0])].push_back(i);
  }

  // A rank file's text ("base64 rank" lines; tiktoken's load_tiktoken_bpe format).
  static tiktoken_bpe from_rank_text(std::string_view text, std::vector<special_token> specials,
                                     std::string_view source = "rank file") {
    std::vector<std::string> tokens;
    std::size_t line_no = 0;
    std::string bytes;
    for (std::size_t pos = 0; pos < text.size();) {
      std::size_t eol = text.find('\n', pos);
      if (eol == std::string_view::npos) eol = text.size();
      std::string_view line = text.substr(pos, eol - pos);
      pos = eol + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      const std::size_t space = line.find(' ');
      check(space != std::string_view::npos && space > 0 && line.find(' ', space + 1) == std::string_view::npos, source,
            ": line ", line_no, ": expected 'base64 rank'");
      check(detail::base64_decode(line.substr(0, space), bytes) && !bytes.empty(), source, ": line ", line_no, ": '",
            line.substr(0, space), "' is not base64 of a non-empty token");
      const std::string_view rank_text = line.substr(space + 1);
      std::uint64_t rank = 0;
      check(!rank_text.empty() && rank_text.size() <= 9 &&
                std::all_of(rank_text.begin(), rank_text.end(), [](char c) { return c >= '0' && c <= '9'; }),
            source, ": line ", line_no, ": rank '", rank_text, "' is not a number below 10^9");
      for (const char c : rank_text) rank = rank * 10 + std::uint64_t(c - '0');
      if (rank >= tokens.size()) tokens.resize(static_cast<std::size_t>(rank) + 1);
      check(tokens[static_cast<std::size_t>(rank)].empty(), source, ": line ", line_no, ": rank ", rank,
            " appears twice");
      tokens[static_cast<std::size_t>(rank)] = bytes;
    }
    check(!tokens.empty(), source, ": no tokens");
    try {
      return tiktoken_bpe(std::move(tokens), std::move(specials));
    } catch (const mla::error& e) {
      mla::detail::throw_error(source, ": ", e.what());
    }
  }

  static tiktoken_bpe from_rank_file(const std::string& path, std::vector<special_token> specials) {
    std::ifstream in(path, std::ios::binary);
    check(static_cast<bool>(in), "cannot open rank file '", path, "'");
    std::ostringstream text;
    text << in.rdbuf();
    check(!in.bad(), "cannot read rank file '", path, "'");
    return from_rank_text(text.str(), std::move(specials), path);
  }

  // gpt-oss's tokenizer: o200k_base ranks + the harmony special tokens.
  static tiktoken_bpe o200k_harmony(const std::string& o200k_base_rank_file) {
    return from_rank_file(o200k_base_rank_file, o200k_harmony_special_tokens());
  }

  // Special tokens recognised (tiktoken allowed_special="all").
  std::vector<std::int32_t> encode(std::string_view text) const {
    validate_utf8(text, "tiktoken_bpe: input text");
    std::vector<std::int32_t> out;
    std::size_t plain = 0, i = 0;
    while (i < text.size()) {
      const special_token* hit = nullptr;
      for (const std::size_t c : by_first_byte_[static_cast<unsigned char>(text[i])])
        if (text.compare(i, specials_[c].text.size(), specials_[c].text) == 0) {
          hit = &specials_[c];
          break;
        }
      if (!hit) {
        ++i;
        continue;
      }
      encode_plain(text.substr(plain, i - plain), out);
      out.push_back(hit->id);
      i += hit->text.size();
      plain = i;
    }
    encode_plain(text.substr(plain), out);
    return out;
  }

  // Special-token texts are plain text (tiktoken encode_ordinary).
  std::vector<std::int32_t> encode_ordinary(std::string_view text) const {
    validate_utf8(text, "tiktoken_bpe: input text");
    std::vector<std::int32_t> out;
    encode_plain(text, out);
    return out;
  }

  std::string decode(const std::vector<std::int32_t>& ids) const {
    std::string out;
    for (const std::int32_t id : ids) out += token_bytes(id);
    return out;
  }

  // The bytes of an ordinary token or the text of a special one.
  const std::string& token_bytes(std::int32_t id) const {
    check(id >= 0 && static_cast<std::size_t>(id) < n_vocab_, "tiktoken_bpe: token id ", id,
          " is outside the vocabulary of ", n_vocab_);
    if (static_cast<std::size_t>(id) < tokens_.size() && !tokens_[static_cast<std::size_t>(id)].empty())
      return tokens_[static_cast<std::size_t>(id)];
    const auto it = special_text_.find(id);
    check(it != special_text_.end(), "tiktoken_bpe: no token has id ", id);
    return it->second;
  }

  std::size_t vocab_size() const noexcept { return n_vocab_; }  // largest id + 1, specials included
  std::size_t rank_count() const noexcept { return ranks_.size(); }

  // The id of a special token's text, else of the ordinary token with these bytes; nullopt if neither.
  std::optional<std::int32_t> find(std::string_view text) const {
    for (const special_token& s : specials_)
      if (s.text == text) return s.id;
    if (const auto it = ranks_.find(std::string(text)); it != ranks_.end()) return it->second;
    return std::nullopt;
  }
  // True for the id of a special token (an id with no ordinary token's bytes that a special names).
  bool is_special(std::int32_t id) const {
    return id >= 0 &&
           (static_cast<std::size_t>(id) >= tokens_.size() || tokens_[static_cast<std::size_t>(id)].empty()) &&
           special_text_.count(id) != 0;
  }
  const std::vector<std::string>& tokens() const noexcept { return tokens_; }        // bytes by rank
  const std::vector<special_token>& specials() const noexcept { return specials_; }  // longest text first

  // BPE of one pre-tokenized piece (no special tokens), appended to `out`.
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const {
    if (piece.empty()) return;
    if (const auto it = ranks_.find(std::string(piece)); it != ranks_.end()) {
      out.push_back(it->second);
      return;
    }
    // tiktoken's _byte_pair_merge: parts[i] = (start, rank of bytes [start, start of parts[i + 2])).
    constexpr std::int32_t none = std::numeric_limits<std::int32_t>::max();
    std::vector<std::pair<std::size_t, std::int32_t>> parts;
    parts.reserve(piece.size() + 1);
    auto rank_of = [&](std::size_t a, std::size_t b) {
      const auto it = ranks_.find(std::string(piece.substr(a, b - a)));
      return it == ranks_.end() ? none : it->second;
    };
    for (std::size_t i = 0; i + 1 < piece.size(); ++i) parts.emplace_back(i, rank_of(i, i + 2));
    parts.emplace_back(piece.size() - 1, none);
    parts.emplace_back(piece.size(), none);
    auto pair_rank = [&](std::size_t i) {
      return i + 3 < parts.size() ? rank_of(parts[i].first, parts[i + 3].first) : none;
    };
    for (;;) {
      std::int32_t best = none;
      std::size_t at = 0;
      for (std::size_t i = 0; i + 1 < parts.size(); ++i)
        if (parts[i].second < best) best = parts[i].second, at = i;
      if (best == none) break;
      if (at > 0) parts[at - 1].second = pair_rank(at - 1);
      parts[at].second = pair_rank(at);
      parts.erase(parts.begin() + std::ptrdiff_t(at) + 1);
    }
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      const std::int32_t r = rank_of(parts[i].first, parts[i + 1].first);
      check(r != none, "tiktoken_bpe: internal error: a merged part is not a token");
      out.push_back(r);
    }
  }

 private:
  void encode_plain(std::string_view text, std::vector<std::int32_t>& out) const {
    o200k_pre_tokenize(text, [&](std::string_view piece) { encode_piece(piece, out); });
  }

  std::vector<std::string> tokens_;                      // bytes by rank
  std::unordered_map<std::string, std::int32_t> ranks_;  // bytes -> rank
  std::vector<special_token> specials_;                  // longest text first
  std::unordered_map<std::int32_t, std::string> special_text_;
  std::vector<std::size_t> by_first_byte_[256];
  std::size_t n_vocab_ = 0;
};

}  // namespace mla::tok
