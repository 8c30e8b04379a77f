// mla::tok::tokenizer_json: writes a vocabulary (e.g. read from GGUF tokenizer.ggml.* metadata) as a Hugging
// Face tokenizer.json that tokenizer::from_hf_json reads back into the same tokenizer, so that a checkpoint
// directory converted from a GGUF file carries its tokenizer.
//
//   model:          BPE, vocab {text: id} in id order, merges as ["left", "right"] pairs, ignore_merges, unk_token
//   pre_tokenizer:  ByteLevel(add_prefix_space false), after Digits(individual_digits) when the vocabulary splits
//                   digits (SmolLM2)
//   decoder:        ByteLevel;  normalizer, post_processor: null
//   added_tokens:   control tokens (special: true) and user-defined tokens (special: false), with lstrip/rstrip
// BOS/EOS insertion is not part of the file (the project's reader ignores post_processor); the model's config
// carries bos/eos ids. Token types other than control/user-defined (unknown, unused, byte) become normal tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/tokenizer/tokenizer.hpp"

namespace mla::tok {

// tokenizer.json text for `v`; throws mla::error naming the token when the vocabulary cannot be written
// (duplicate token texts, which a JSON vocab object cannot hold; invalid UTF-8).
inline std::string tokenizer_json(const vocabulary& v) {
  using json = nlohmann::ordered_json;
  const char* who = "mla::tok::tokenizer_json";
  check(!v.tokens.empty(), who, ": the vocabulary is empty");
  check(v.token_types.empty() || v.token_types.size() == v.tokens.size(), who, ": ", v.token_types.size(),
        " token types for ", v.tokens.size(), " tokens");
  json vocab = json::object();
  std::set<std::string> seen;
  for (std::size_t id = 0; id < v.tokens.size(); ++id) {
    check(seen.insert(v.tokens[id]).second, who, ": token text '", v.tokens[id], "' (id ", id,
          ") appears twice; tokenizer.json cannot hold duplicate texts");
    vocab[v.tokens[id]] = id;
  }
  json added = json::array();
  for (std::size_t id = 0; id < v.token_types.size(); ++id) {
    const auto t = static_cast<token_type>(v.token_types[id]);
    if (t != token_type::control && t != token_type::user_defined) continue;
    bool lstrip = false, rstrip = false;
    for (const added_token_strip& s : v.strip)
      if (s.id == static_cast<std::int32_t>(id)) lstrip = s.lstrip, rstrip = s.rstrip;
    added.push_back({{"id", id},
                     {"content", v.tokens[id]},
                     {"single_word", false},
                     {"lstrip", lstrip},
                     {"rstrip", rstrip},
                     {"normalized", false},
                     {"special", t == token_type::control}});
  }
  json merges = json::array();
  for (const merge_pair& m : v.merges) merges.push_back(json::array({m.first, m.second}));
  const json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  const json pre =
      v.pre_tokenizer.individual_digits
          ? json{{"type", "Sequence"},
                 {"pretokenizers", json::array({json{{"type", "Digits"}, {"individual_digits", true}}, byte_level})}}
          : byte_level;
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", v.ignore_merges}};
  if (v.unk_id) {
    check(*v.unk_id >= 0 && static_cast<std::size_t>(*v.unk_id) < v.tokens.size(), who, ": unk id ", *v.unk_id,
          " is outside the vocabulary");
    model["unk_token"] = v.tokens[static_cast<std::size_t>(*v.unk_id)];
  }
  model["vocab"] = std::move(vocab);
  model["merges"] = std::move(merges);
  const json root = {{"version", "1.0"},          {"truncation", nullptr}, {"padding", nullptr},
                     {"added_tokens", added},     {"normalizer", nullptr}, {"pre_tokenizer", pre},
                     {"post_processor", nullptr}, {"decoder", byte_level}, {"model", std::move(model)}};
  try {
    return root.dump(1, ' ', false, json::error_handler_t::strict) + "\n";
  } catch (const nlohmann::json::exception& e) {
    mla::detail::throw_error(who, ": a token is not valid UTF-8: ", e.what());
  }
}

}  // namespace mla::tok
