// gpt-oss's tokenizer for checkpoint directories:
//  - o200k_vocabulary_path(where): where the real o200k_base vocabulary is, for a checkpoint that has no
//    tokenizer.json: the first existing file among the locations the caller gives (o200k_locations). The
//    library reads no environment variable; the tools and tests fill the locations from $MLA_O200K_VOCAB,
//    $MLA_O200K_TIKTOKEN and $MLA_CACHE_DIR (or ~/.cache/mla) and pass the result to load_model();
//  - synthetic_o200k_vocabulary(n): a small o200k-style vocabulary for generated checkpoints whose vocabulary
//    is smaller than the real one (the tiny test model has 512 ids): the 256 bytes, BPE merges learned
//    deterministically from a built-in English text with the o200k pre-tokenizer, and the harmony special
//    tokens at the top ids (<|return|> = n - 1, the config's EOS; <|endoftext|> = n - 2, its pad), so that
//    the harmony chat format tokenizes;
//  - harmony_stop_ids(): the ids that end an assistant turn (<|return|>, <|end|>, <|call|>).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/tokenizer/o200k.hpp"
#include "mla/tokenizer/o200k_json.hpp"
#include "mla/tokenizer/tiktoken.hpp"
#include "mla/tokenizer/tokenizer.hpp"

namespace mla::model {

// Where the real o200k_base vocabulary may be; an empty field is not searched.
struct o200k_locations {
  std::string vocab;      // quicktok's o200k.vocab or a tiktoken rank file, first choice (tools: $MLA_O200K_VOCAB)
  std::string tiktoken;   // a tiktoken rank file (tools: $MLA_O200K_TIKTOKEN)
  std::string cache_dir;  // holds whl/quicktok/data/o200k.vocab (scripts/fetch_o200k.sh) and o200k_base.tiktoken
                          // (tools: $MLA_CACHE_DIR, else ~/.cache/mla)
};

// The first existing file of: where.vocab, <cache_dir>/whl/quicktok/data/o200k.vocab, where.tiktoken,
// <cache_dir>/o200k_base.tiktoken; empty when none exists.
inline std::string o200k_vocabulary_path(const o200k_locations& where) {
  namespace fs = std::filesystem;
  const std::string& cache = where.cache_dir;
  std::vector<std::string> candidates = {where.vocab};
  if (!cache.empty()) candidates.push_back(cache + "/whl/quicktok/data/o200k.vocab");
  candidates.push_back(where.tiktoken);
  if (!cache.empty()) candidates.push_back(cache + "/o200k_base.tiktoken");
  std::error_code ec;
  for (const std::string& c : candidates)
    if (!c.empty() && fs::is_regular_file(c, ec)) return c;
  return {};
}

// The harmony special tokens that a synthetic vocabulary of `n` ids carries, top down from n - 1.
inline std::vector<tok::special_token> synthetic_harmony_specials(int n) {
  const char* texts[] = {"<|return|>",  "<|endoftext|>", "<|start|>",       "<|end|>",  "<|message|>",
                         "<|channel|>", "<|constrain|>", "<|startoftext|>", "<|call|>", "<|endofprompt|>"};
  std::vector<tok::special_token> s;
  for (int i = 0; i < 10; ++i) s.push_back({texts[i], n - 1 - i});
  return s;
}

struct synthetic_vocabulary {
  std::vector<std::string> tokens;                          // bytes by rank; empty: unused id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<tok::special_token> specials;
};

// n >= 266 (256 bytes + 10 specials). Deterministic: the same n gives the same vocabulary everywhere.
inline synthetic_vocabulary synthetic_o200k_vocabulary(int n) {
  check(n >= 266, "synthetic_o200k_vocabulary: ", n, " ids are too few (256 bytes + 10 harmony specials)");
  static constexpr std::string_view corpus =
      "The quick brown fox jumps over the lazy dog. A language model reads text as tokens and predicts the next "
      "one. The user asks a question and the assistant answers it; the system sets the rules and the developer "
      "gives instructions. What is the capital of France? The capital of France is Paris. What is two plus two? "
      "Two plus two is four. In the analysis channel the model thinks, in the final channel it answers. Attention "
      "layers compare every token with the tokens before it, and the key value cache keeps what they need. "
      "Multi-head latent attention stores a small latent vector per token instead of the keys and the values of "
      "every head, so that the cache is smaller and the model still attends to all of its context. "
      "There are 1234 numbers, 56 lines and 7890 words in this text; it is only an example, and it is not long. "
      "Hello, world! Hello there. How are you today? I am fine, thank you, and you? We're here, they'll come, "
      "it's what we've done. def main():\n    return 0\n\nint main() { return 0; }\n";
  synthetic_vocabulary v;
  v.specials = synthetic_harmony_specials(n);
  const std::size_t ordinary = static_cast<std::size_t>(n) - v.specials.size();
  for (unsigned b = 0; b < 256; ++b) v.tokens.push_back(std::string(1, static_cast<char>(b)));
  // Words (o200k pieces) with counts, each a sequence of current tokens.
  std::map<std::string, int> counts;
  tok::o200k_pre_tokenize(corpus, [&](std::string_view piece) { ++counts[std::string(piece)]; });
  std::vector<std::pair<std::vector<std::string>, int>> words;
  for (const auto& [w, c] : counts) {
    std::vector<std::string> parts;
    for (const char ch : w) parts.push_back(std::string(1, ch));
    words.emplace_back(std::move(parts), c);
  }
  std::set<std::string> known(v.tokens.begin(), v.tokens.end());
  while (v.tokens.size() < ordinary) {
    std::map<std::pair<std::string, std::string>, int> pairs;  // ordered: ties go to the smallest pair
    for (const auto& [parts, c] : words)
      for (std::size_t i = 0; i + 1 < parts.size(); ++i) pairs[{parts[i], parts[i + 1]}] += c;
    if (pairs.empty()) break;
    auto best = pairs.begin();
    for (auto it = pairs.begin(); it != pairs.end(); ++it)
      if (it->second > best->second) best = it;
    const auto [a, b] = best->first;
    const std::string ab = a + b;
    if (known.insert(ab).second) {
      v.tokens.push_back(ab);
      v.merges.emplace_back(a, b);
    }
    for (auto& [parts, c] : words) {
      std::vector<std::string> merged;
      for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i + 1 < parts.size() && parts[i] == a && parts[i + 1] == b) {
          merged.push_back(ab);
          ++i;
        } else {
          merged.push_back(parts[i]);
        }
      }
      parts = std::move(merged);
    }
  }
  v.tokens.resize(ordinary);  // ids the corpus could not fill stay unused
  return v;
}

inline std::string synthetic_o200k_tokenizer_json(int n) {
  const synthetic_vocabulary v = synthetic_o200k_vocabulary(n);
  return tok::o200k_hf_json(v.tokens, v.merges, v.specials);
}

// Ids that end an assistant turn in the harmony format, those the tokenizer has.
inline std::vector<std::int32_t> harmony_stop_ids(const tok::tokenizer& t) {
  std::vector<std::int32_t> ids;
  for (const char* s : {"<|return|>", "<|end|>", "<|call|>"})
    if (const auto id = t.find(s)) ids.push_back(*id);
  return ids;
}

}  // namespace mla::model
