// mla::tok o200k tokenizer.json: the Hugging Face form of gpt-oss's tokenizer (openai/gpt-oss-*), read
// into the tiktoken tokenizer (tiktoken.hpp), and written for generated checkpoints.
//
// The form (as transformers' tiktoken conversion writes it):
//   pre_tokenizer  Sequence [ Split(pattern.Regex = tiktoken's o200k pattern string, behavior Isolated,
//                             invert false), ByteLevel(add_prefix_space false, use_regex false) ]
//   model          BPE: vocab {byte-level text: id}, merges, no dropout/affixes/byte_fallback
//   decoder        ByteLevel;  normalizer null
//   added_tokens   the harmony special tokens ({"id", "content", "special": true})
// Ids are tiktoken ranks (vocab id == rank), so tiktoken's rule (merge the adjacent pair whose
// concatenation has the lowest rank) is gpt-oss's tokenizer, and the merge list, which the conversion
// derives from the ranks, is not needed: it is checked (each merge's concatenation is a token of a larger
// id than both halves) but not used. Anything else in these fields is an error naming the field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/tokenizer/byte_level.hpp"
#include "mla/tokenizer/tiktoken.hpp"

namespace mla::tok {

// tiktoken's o200k_base pat_str (what o200k.hpp implements), as it appears in gpt-oss's tokenizer.json.
inline constexpr std::string_view o200k_pattern =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|"
    "'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'"
    "ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

namespace detail {
// True when `root` has the o200k pre-tokenizer (a Sequence whose first step splits by the o200k
// pattern): the tokenizer.json is then gpt-oss's form, read by o200k_from_hf_json.
inline bool is_o200k_hf_json(const nlohmann::json& root) {
  if (!root.is_object()) return false;
  const auto pt = root.find("pre_tokenizer");
  if (pt == root.end() || !pt->is_object() || pt->value("type", "") != "Sequence") return false;
  const auto list = pt->find("pretokenizers");
  if (list == pt->end() || !list->is_array() || list->empty()) return false;
  const auto& split = (*list)[0];
  if (!split.is_object() || split.value("type", "") != "Split") return false;
  const auto pattern = split.find("pattern");
  if (pattern == split.end() || !pattern->is_object()) return false;
  const auto regex = pattern->find("Regex");
  return regex != pattern->end() && regex->is_string() && regex->get_ref<const std::string&>() == o200k_pattern;
}

[[noreturn]] inline void o200k_json_fail(std::string_view source, const std::string& field, const std::string& what) {
  mla::detail::throw_error(source, ": ", field, ": ", what);
}
}  // namespace detail

// The tiktoken tokenizer of an o200k-form tokenizer.json (already parsed).
inline tiktoken_bpe o200k_from_hf_json(const nlohmann::json& root, std::string_view source = "tokenizer.json") {
  using detail::o200k_json_fail;
  using json = nlohmann::json;
  const auto fail = [&](const std::string& field, const std::string& what) { o200k_json_fail(source, field, what); };
  if (!detail::is_o200k_hf_json(root)) fail("pre_tokenizer", "expected Sequence [Split(o200k pattern), ByteLevel]");
  if (const auto n = root.find("normalizer"); n != root.end() && !n->is_null())
    fail("normalizer", "expected null, found " + n->dump());
  const json& list = root["pre_tokenizer"]["pretokenizers"];
  if (list.size() != 2) fail("pre_tokenizer.pretokenizers", "expected [Split, ByteLevel], found " + list.dump());
  const json& split = list[0];
  if (split.value("behavior", "Isolated") != "Isolated" || split.value("invert", false))
    fail("pre_tokenizer.pretokenizers[0]", "expected behavior Isolated, invert false, found " + split.dump());
  const json& bl = list[1];
  if (!bl.is_object() || bl.value("type", "") != "ByteLevel" || bl.value("add_prefix_space", false) ||
      bl.value("use_regex", true))
    fail("pre_tokenizer.pretokenizers[1]",
         "expected ByteLevel(add_prefix_space false, use_regex false), found " + bl.dump());
  if (const auto d = root.find("decoder");
      d != root.end() && !d->is_null() && (!d->is_object() || d->value("type", "") != "ByteLevel"))
    fail("decoder", "expected ByteLevel, found " + d->dump());

  const auto m = root.find("model");
  if (m == root.end() || !m->is_object()) fail("model", "expected an object");
  if (m->value("type", "BPE") != "BPE") fail("model.type", "expected BPE, found " + (*m)["type"].dump());
  for (const char* key : {"dropout", "continuing_subword_prefix", "end_of_word_suffix", "unk_token"})
    if (const auto v = m->find(key);
        v != m->end() && !v->is_null() && !(v->is_string() && v->get<std::string>().empty()))
      fail(std::string("model.") + key, "not supported, found " + v->dump());
  if (const auto v = m->find("byte_fallback"); v != m->end() && v->is_boolean() && v->get<bool>())
    fail("model.byte_fallback", "true is not supported");
  const auto vocab = m->find("vocab");
  if (vocab == m->end() || !vocab->is_object() || vocab->empty())
    fail("model.vocab", "expected a non-empty object of text: id");

  std::vector<std::string> tokens;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const std::string field = "model.vocab['" + it.key() + "']";
    if (!it.value().is_number_integer() || it.value().get<std::int64_t>() < 0 ||
        it.value().get<std::int64_t>() >= (1 << 24))
      fail(field, "expected a token id in [0, 2^24), found " + it.value().dump());
    const auto id = static_cast<std::size_t>(it.value().get<std::int64_t>());
    std::string bytes;
    if (!try_append_from_byte_level(bytes, it.key()) || bytes.empty())
      fail(field, "not byte-level text of a non-empty token");
    if (id >= tokens.size()) tokens.resize(id + 1);
    if (!tokens[id].empty()) fail(field, "id " + std::to_string(id) + " appears twice");
    tokens[id] = std::move(bytes);
  }
  // Merges: checked against the ranks, not used.
  if (const auto merges = m->find("merges"); merges != m->end() && !merges->is_null()) {
    if (!merges->is_array()) fail("model.merges", "expected an array");
    std::unordered_map<std::string, std::size_t> rank;
    rank.reserve(tokens.size());
    for (std::size_t r = 0; r < tokens.size(); ++r)
      if (!tokens[r].empty()) rank.emplace(tokens[r], r);
    for (std::size_t i = 0; i < merges->size(); ++i) {
      const json& mg = (*merges)[i];
      const std::string field = "model.merges[" + std::to_string(i) + "]";
      std::string a, b;
      if (mg.is_string()) {
        const std::string& s = mg.get_ref<const std::string&>();
        const std::size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) fail(field, "expected \"left right\"");
        a = s.substr(0, sp), b = s.substr(sp + 1);
      } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
        a = mg[0].get<std::string>(), b = mg[1].get<std::string>();
      } else {
        fail(field, "expected \"left right\" or [\"left\", \"right\"], found " + mg.dump());
      }
      std::string ab, bb;
      if (!try_append_from_byte_level(ab, a) || !try_append_from_byte_level(bb, b)) fail(field, "not byte-level text");
      const auto ra = rank.find(ab), rb = rank.find(bb), rc = rank.find(ab + bb);
      if (ra == rank.end() || rb == rank.end() || rc == rank.end() || rc->second <= ra->second ||
          rc->second <= rb->second)
        fail(field, "'" + a + "' + '" + b +
                        "' is not a merge of two tokens into a token of a larger id "
                        "(the ids are not tiktoken ranks)");
    }
  }
  std::vector<special_token> specials;
  if (const auto added = root.find("added_tokens"); added != root.end() && !added->is_null()) {
    if (!added->is_array()) fail("added_tokens", "expected an array");
    for (std::size_t i = 0; i < added->size(); ++i) {
      const json& t = (*added)[i];
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"].get<std::int64_t>() < 0 ||
          t["id"].get<std::int64_t>() >= (1 << 24) || !t.contains("content") || !t["content"].is_string())
        fail(field, "expected {\"id\": id below 2^24, \"content\": text}, found " + t.dump());
      for (const char* key : {"single_word", "lstrip", "rstrip"})
        if (t.value(key, false)) fail(field + "." + key, "true is not supported");
      const auto id = static_cast<std::int32_t>(t["id"].get<std::int64_t>());
      const std::string text = t["content"].get<std::string>();
      // An added token that is also the vocab token of its id (same bytes) is an ordinary token.
      if (static_cast<std::size_t>(id) < tokens.size() && !tokens[static_cast<std::size_t>(id)].empty()) {
        if (tokens[static_cast<std::size_t>(id)] != text)
          fail(field, "id " + std::to_string(id) + " is another token in model.vocab");
        continue;
      }
      specials.push_back({text, id});
    }
  }
  try {
    return tiktoken_bpe(std::move(tokens), std::move(specials));
  } catch (const mla::error& e) {
    mla::detail::throw_error(source, ": ", e.what());
  }
}

// tokenizer.json text (o200k form) for ranks `tokens` (tokens[rank], empty: no token), `merges` (byte
// pairs, in rank order of their concatenation) and `specials`.
inline std::string o200k_hf_json(const std::vector<std::string>& tokens,
                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                 const std::vector<special_token>& specials) {
  using ojson = nlohmann::ordered_json;
  ojson vocab = ojson::object();
  for (std::size_t r = 0; r < tokens.size(); ++r)
    if (!tokens[r].empty()) vocab[to_byte_level(tokens[r])] = r;
  ojson m = ojson::array();
  for (const auto& [a, b] : merges) m.push_back(ojson::array({to_byte_level(a), to_byte_level(b)}));
  ojson added = ojson::array();
  std::map<std::int32_t, std::string> by_id;
  for (const special_token& s : specials) by_id.emplace(s.id, s.text);
  for (const auto& [id, text] : by_id)
    added.push_back({{"id", id},
                     {"content", text},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  const ojson root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         ojson::array(
             {{{"type", "Split"},
               {"pattern", {{"Regex", std::string(o200k_pattern)}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}})}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", true},
        {"vocab", vocab},
        {"merges", m}}}};
  return root.dump(1) + "\n";
}

}  // namespace mla::tok
