// mla::tok::bpe_model: byte-level BPE over one pre-tokenized word: vocabulary, merge ranks, encode
// (lowest-rank adjacent pair first, leftmost on ties) and decode, with a per-word cache.
//
// Token texts are in GPT-2 byte-level form (byte_level.hpp): a word's bytes start as one symbol per
// byte, and merge #r joins the adjacent symbols (left, right) into the token left+right. Merges are
// applied lowest rank first; among equal ranks (the same pair at several places) the leftmost
// first. This is the Hugging Face BPE algorithm without dropout. GPT-2's "merge every occurrence of
// the best pair" loop gives the same ids when every token has one producing merge (trained vocabularies);
// when a token can be made by several merges, a merge can create a pair ranked below the one being merged,
// and Hugging Face (as here) merges that new pair before the remaining occurrences.
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/tokenizer/byte_level.hpp"
#include "mla/tokenizer/unicode.hpp"

namespace mla::tok {

using merge_pair = std::pair<std::string, std::string>;

// Splits a merge written "left right" (GGUF tokenizer.ggml.merges, older tokenizer.json). Byte-level
// tokens never hold a literal space, so there must be exactly one.
inline merge_pair split_merge(std::string_view merge, std::size_t index) {
  const std::size_t space = merge.find(' ');
  check(space != std::string_view::npos && space > 0 && space + 1 < merge.size() &&
            merge.find(' ', space + 1) == std::string_view::npos,
        "merge #", index, " '", merge, "': expected two tokens separated by one space");
  return {std::string(merge.substr(0, space)), std::string(merge.substr(space + 1))};
}

struct bpe_options {
  // Hugging Face `ignore_merges`: a word that is itself a token is emitted as that token without
  // running the merges (Llama 3 style). SmolLM2: false.
  bool ignore_merges = false;
  // Token for bytes whose byte-level symbol is missing from the vocabulary; none: such a byte is an
  // error at encode time.
  std::optional<std::int32_t> unk_id;
  // Words cached (the cache is cleared when full); 0 disables the cache. Words longer than
  // max_cached_word_bytes are never cached (long whitespace runs would only churn it).
  std::size_t cache_capacity = std::size_t{1} << 16;
  std::size_t max_cached_word_bytes = 64;
};

class bpe_model {
 public:
  bpe_model() { byte_ids_.fill(-1); }  // empty: every byte is "missing"

  // `tokens[id]` is the byte-level text of token `id` (empty strings are allowed and never match).
  // Throws mla::error for duplicate token texts, merges naming unknown tokens, merges whose result
  // is not a token, and duplicate merges.
  bpe_model(std::vector<std::string> tokens, const std::vector<merge_pair>& merges, bpe_options options = {})
      : tokens_(std::move(tokens)), options_(options), cache_(std::make_unique<word_cache>()) {
    check(tokens_.size() < static_cast<std::size_t>(INT32_MAX), "bpe: vocabulary too large");
    check(!options_.unk_id || (*options_.unk_id >= 0 && static_cast<std::size_t>(*options_.unk_id) < tokens_.size()),
          "bpe: unknown-token id ", options_.unk_id.value_or(-1), " is outside the vocabulary of ", tokens_.size());
    ids_.reserve(tokens_.size());
    for (std::size_t id = 0; id < tokens_.size(); ++id) {
      if (tokens_[id].empty()) continue;
      const auto [it, inserted] = ids_.emplace(tokens_[id], static_cast<std::int32_t>(id));
      check(inserted, "bpe: token text '", tokens_[id], "' appears twice (ids ", it->second, " and ", id, ")");
    }
    for (unsigned b = 0; b < 256; ++b) {
      std::string symbol;
      append_byte_level(symbol, std::string_view(reinterpret_cast<const char*>(&b), 1));
      const auto it = ids_.find(symbol);
      byte_ids_[b] = it != ids_.end() ? it->second : -1;
    }
    merges_.reserve(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& [left, right] = merges[rank];
      const auto l = ids_.find(left);
      const auto r = ids_.find(right);
      const auto m = ids_.find(left + right);
      check(l != ids_.end(), "bpe: merge #", rank, " '", left, " ", right, "': '", left, "' is not in the vocabulary");
      check(r != ids_.end(), "bpe: merge #", rank, " '", left, " ", right, "': '", right, "' is not in the vocabulary");
      check(m != ids_.end(), "bpe: merge #", rank, " '", left, " ", right, "': the result '", left, right,
            "' is not in the vocabulary");
      const auto [it, inserted] =
          merges_.emplace(pair_key(l->second, r->second), merge_value{static_cast<std::uint32_t>(rank), m->second});
      check(inserted, "bpe: merge #", rank, " '", left, " ", right, "' repeats merge #", it->second.rank);
    }
    // Decoded bytes of every token. A text that is not byte-level (a special token with a character
    // outside the byte map) decodes to its own UTF-8, like the Hugging Face ByteLevel decoder.
    token_bytes_.resize(tokens_.size());
    for (std::size_t id = 0; id < tokens_.size(); ++id) {
      std::string bytes;
      if (!try_append_from_byte_level(bytes, tokens_[id])) bytes = tokens_[id];
      token_bytes_[id] = std::move(bytes);
    }
  }

  // The cache is per object: copies start with an empty one.
  bpe_model(const bpe_model& other)
      : tokens_(other.tokens_),
        token_bytes_(other.token_bytes_),
        ids_(other.ids_),
        merges_(other.merges_),
        byte_ids_(other.byte_ids_),
        options_(other.options_),
        cache_(std::make_unique<word_cache>()) {}
  bpe_model& operator=(const bpe_model& other) {
    if (this != &other) *this = bpe_model(other);
    return *this;
  }
  bpe_model(bpe_model&&) noexcept = default;
  bpe_model& operator=(bpe_model&&) noexcept = default;

  std::size_t vocab_size() const noexcept { return tokens_.size(); }
  std::size_t merge_count() const noexcept { return merges_.size(); }
  const bpe_options& options() const noexcept { return options_; }

  // Byte-level text of a token.
  const std::string& token_text(std::int32_t id) const {
    check_id(id);
    return tokens_[static_cast<std::size_t>(id)];
  }
  // The bytes a token stands for.
  const std::string& token_bytes(std::int32_t id) const {
    check_id(id);
    return token_bytes_[static_cast<std::size_t>(id)];
  }
  std::optional<std::int32_t> find(std::string_view text) const {
    const auto it = ids_.find(std::string(text));
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  // Rank of the merge (left, right), if there is one.
  std::optional<std::uint32_t> merge_rank(std::int32_t left, std::int32_t right) const {
    const auto it = merges_.find(pair_key(left, right));
    if (it == merges_.end()) return std::nullopt;
    return it->second.rank;
  }

  // Appends the ids of one word: arbitrary bytes (normally one pre-tokenizer piece).
  void encode_word(std::string_view word, std::vector<std::int32_t>& out) const {
    if (word.empty()) return;
    if (word.size() == 1) {
      out.push_back(byte_id(static_cast<unsigned char>(word[0])));
      return;
    }
    const bool cacheable = cache_ && options_.cache_capacity > 0 && word.size() <= options_.max_cached_word_bytes;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      const auto it = cache_->words.find(std::string(word));
      if (it != cache_->words.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const std::size_t first = out.size();
    encode_word_uncached(word, out);
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      if (cache_->words.size() >= options_.cache_capacity) cache_->words.clear();
      cache_->words.emplace(std::string(word), std::vector<std::int32_t>(out.begin() + first, out.end()));
    }
  }
  std::vector<std::int32_t> encode_word(std::string_view word) const {
    std::vector<std::int32_t> out;
    encode_word(word, out);
    return out;
  }

  // Appends the bytes of the tokens.
  void decode(const std::vector<std::int32_t>& ids, std::string& out) const {
    for (const std::int32_t id : ids) out += token_bytes(id);
  }
  std::string decode(const std::vector<std::int32_t>& ids) const {
    std::string out;
    decode(ids, out);
    return out;
  }

 private:
  struct merge_value {
    std::uint32_t rank;
    std::int32_t result;
  };
  struct word_cache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<std::int32_t>> words;
  };

  static std::uint64_t pair_key(std::int32_t left, std::int32_t right) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }

  void check_id(std::int32_t id) const {
    check(id >= 0 && static_cast<std::size_t>(id) < tokens_.size(), "bpe: token id ", id,
          " is outside the vocabulary of ", tokens_.size());
  }

  std::int32_t byte_id(unsigned char b) const {
    const std::int32_t id = byte_ids_[b];
    if (id >= 0) return id;
    if (options_.unk_id) return *options_.unk_id;
    static constexpr char hex[] = "0123456789ABCDEF";
    const char text[] = {'0', 'x', hex[b >> 4], hex[b & 15], 0};
    mla::detail::throw_error("bpe: byte ", text, " has no token (its byte-level symbol '",
                             to_byte_level(std::string_view(reinterpret_cast<const char*>(&b), 1)),
                             "' is not in the vocabulary) and there is no unknown token");
  }

  void encode_word_uncached(std::string_view word, std::vector<std::int32_t>& out) const {
    if (options_.ignore_merges) {
      const auto it = ids_.find(to_byte_level(word));
      if (it != ids_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    // Symbols form a linked list over the word; a merge keeps the left symbol and unlinks the right.
    struct symbol {
      std::int32_t id;
      std::int32_t prev;
      std::int32_t next;
    };
    struct candidate {
      std::uint32_t rank;
      std::int32_t pos;  // the left symbol
      std::int32_t result;
      bool operator>(const candidate& o) const noexcept { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    check(word.size() < static_cast<std::size_t>(INT32_MAX), "bpe: word of ", word.size(), " bytes is too long");
    const auto n = static_cast<std::int32_t>(word.size());
    std::vector<symbol> symbols(word.size());
    for (std::int32_t i = 0; i < n; ++i) {
      symbols[static_cast<std::size_t>(i)] = {byte_id(static_cast<unsigned char>(word[static_cast<std::size_t>(i)])),
                                              i - 1, i + 1 < n ? i + 1 : -1};
    }
    std::priority_queue<candidate, std::vector<candidate>, std::greater<candidate>> queue;
    const auto push = [&](std::int32_t pos) {
      const symbol& s = symbols[static_cast<std::size_t>(pos)];
      if (s.next < 0) return;
      const auto it = merges_.find(pair_key(s.id, symbols[static_cast<std::size_t>(s.next)].id));
      if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.result});
    };
    for (std::int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!queue.empty()) {
      const candidate top = queue.top();
      queue.pop();
      symbol& left = symbols[static_cast<std::size_t>(top.pos)];
      // Skip stale entries: the left symbol was absorbed, or a side has grown since the push. Checking
      // the result token is enough: a symbol keeps its start and only grows by absorbing its whole
      // right neighbour, so a pair at `pos` with the same result text covers the same bytes with
      // the same split.
      if (left.id < 0 || left.next < 0) continue;
      symbol& right = symbols[static_cast<std::size_t>(left.next)];
      const auto it = merges_.find(pair_key(left.id, right.id));
      if (it == merges_.end() || it->second.result != top.result) continue;
      left.id = top.result;
      right.id = -1;
      left.next = right.next;
      if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = top.pos;
      if (left.prev >= 0) push(left.prev);
      push(top.pos);
    }
    for (std::int32_t i = 0; i >= 0; i = symbols[static_cast<std::size_t>(i)].next) {
      out.push_back(symbols[static_cast<std::size_t>(i)].id);
    }
  }

  std::vector<std::string> tokens_;
  std::vector<std::string> token_bytes_;
  std::unordered_map<std::string, std::int32_t> ids_;
  std::unordered_map<std::uint64_t, merge_value> merges_;
  std::array<std::int32_t, 256> byte_ids_{};  // -1: no token for that byte
  bpe_options options_;
  std::unique_ptr<word_cache> cache_;
};

}  // namespace mla::tok
