// mla::tok::tokenizer: the byte-level BPE tokenizer of SmolLM2 (GPT-2 family), built from plain
// vectors (GGUF tokenizer.ggml.* metadata) or from a Hugging Face tokenizer.json.
//
// encode(text):
//   1. the whole text must be valid UTF-8 (else mla::error with the byte offset);
//   2. control and user-defined tokens (GGUF token types 3 and 4; tokenizer.json added_tokens) are
//      matched as whole strings first, leftmost-longest, and emitted as their ids;
//   3. the text between them is pre-tokenized (pre_tokenizer.hpp) and each word BPE-encoded
//      (bpe.hpp).
// decode(ids): the bytes of each token; control and user-defined tokens give their text verbatim.
// The result is raw bytes: a cut in the middle of a UTF-8 sequence is kept, not replaced by U+FFFD
// as Hugging Face does.
//
// tokenizer.json support is deliberately narrow, and everything outside it is an error naming the
// field: model BPE (vocab, merges as "a b" strings or ["a", "b"] arrays, ignore_merges, unk_token),
// no normalizer, pre_tokenizer ByteLevel(add_prefix_space = false) alone or after
// Digits(individual_digits = true), decoder ByteLevel or none, added_tokens (lstrip and rstrip
// supported; single_word is not). The post_processor is ignored: ask for BOS/EOS explicitly.
//
// The same class also carries gpt-oss's o200k tokenizer (tiktoken.hpp) when built by from_tiktoken() or
// from a tokenizer.json in the o200k form (o200k_json.hpp): encode/decode/find/type/vocab_size then use
// tiktoken's rules (ranks, no merge list; special tokens are control tokens); model() is empty.
// Needs nlohmann/json (header-only, Debian nlohmann-json3-dev).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/tokenizer/bpe.hpp"
#include "mla/tokenizer/o200k_json.hpp"
#include "mla/tokenizer/pre_tokenizer.hpp"
#include "mla/tokenizer/tiktoken.hpp"
#include "mla/tokenizer/unicode.hpp"

namespace mla::tok {

// GGUF / llama.cpp token types (tokenizer.ggml.token_type).
enum class token_type : std::int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,       // special tokens: <|im_start|>, <|endoftext|>
  user_defined = 4,  // added, non-special tokens
  unused = 5,
  byte = 6,
};

// Hugging Face added-token options for a control or user-defined token: the matched token also
// swallows the whitespace before it (lstrip) or after it (rstrip).
struct added_token_strip {
  std::int32_t id = 0;
  bool lstrip = false;
  bool rstrip = false;
};

// Everything the tokenizer is built from, as plain data.
struct vocabulary {
  std::vector<std::string> tokens;        // byte-level text of each id
  std::vector<std::int32_t> token_types;  // token_type values by id; empty: all normal
  std::vector<merge_pair> merges;         // in rank order
  std::optional<std::int32_t> bos_id;
  std::optional<std::int32_t> eos_id;
  std::optional<std::int32_t> unk_id;
  std::optional<std::int32_t> pad_id;
  bool add_bos = false;  // encode() default
  bool add_eos = false;
  pre_tokenizer_options pre_tokenizer;  // default: SmolLM2 (individual digits)
  bool ignore_merges = false;
  std::vector<added_token_strip> strip;
};

struct encode_options {
  bool parse_special = true;    // false: control/user-defined texts are encoded as plain text
  std::optional<bool> add_bos;  // default: vocabulary::add_bos
  std::optional<bool> add_eos;  // default: vocabulary::add_eos
};

struct decode_options {
  bool skip_special = false;  // drop control tokens (Hugging Face skip_special_tokens)
};

class tokenizer {
 public:
  tokenizer() = default;

  explicit tokenizer(vocabulary v)
      : pre_tokenizer_(v.pre_tokenizer),
        add_bos_(v.add_bos),
        add_eos_(v.add_eos),
        bos_id_(v.bos_id),
        eos_id_(v.eos_id),
        unk_id_(v.unk_id),
        pad_id_(v.pad_id) {
    const std::size_t n = v.tokens.size();
    check(n > 0, "tokenizer: empty vocabulary");
    check(v.token_types.empty() || v.token_types.size() == n, "tokenizer: ", v.token_types.size(), " token types for ",
          n, " tokens");
    types_.assign(n, token_type::normal);
    for (std::size_t id = 0; id < v.token_types.size(); ++id) {
      const std::int32_t t = v.token_types[id];
      check(t >= 0 && t <= 6, "tokenizer: token ", id, " has unknown token type ", t);
      types_[id] = static_cast<token_type>(t);
    }
    const auto check_special = [&](const std::optional<std::int32_t>& id, const char* what) {
      check(!id || (*id >= 0 && static_cast<std::size_t>(*id) < n), "tokenizer: ", what, " id ", id.value_or(-1),
            " is outside the vocabulary of ", n);
    };
    check_special(bos_id_, "BOS");
    check_special(eos_id_, "EOS");
    check_special(unk_id_, "unknown-token");
    check_special(pad_id_, "padding");

    for (std::size_t id = 0; id < n; ++id) {
      if (v.tokens[id].empty() || !is_matched_type(types_[id])) continue;
      validate_utf8(v.tokens[id], "tokenizer: text of special token " + std::to_string(id));
      specials_.push_back({v.tokens[id], static_cast<std::int32_t>(id), false, false});
    }
    for (const added_token_strip& s : v.strip) {
      const auto it =
          std::find_if(specials_.begin(), specials_.end(), [&](const special& sp) { return sp.id == s.id; });
      check(it != specials_.end(), "tokenizer: strip options for token ", s.id,
            ", which is not a control or user-defined token");
      it->lstrip = s.lstrip;
      it->rstrip = s.rstrip;
    }
    // Longest first, so the first hit at a position is the leftmost-longest match.
    std::stable_sort(specials_.begin(), specials_.end(),
                     [](const special& a, const special& b) { return a.text.size() > b.text.size(); });
    for (std::size_t i = 0; i < specials_.size(); ++i) {
      by_first_byte_[static_cast<unsigned char>(specials_[i].text[0])].push_back(i);
    }

    bpe_options options;
    options.ignore_merges = v.ignore_merges;
    options.unk_id = v.unk_id;
    // Only a vocabulary without some byte symbol needs the unknown token; SmolLM2 has all 256.
    model_ = bpe_model(std::move(v.tokens), v.merges, options);
  }

  // gpt-oss's o200k tokenizer (tiktoken rules); EOS for encode options is `eos_id` when given.
  static tokenizer from_tiktoken(tiktoken_bpe t, std::optional<std::int32_t> eos_id = std::nullopt) {
    tokenizer out;
    check(!eos_id || (*eos_id >= 0 && static_cast<std::size_t>(*eos_id) < t.vocab_size()), "tokenizer: EOS id ",
          eos_id.value_or(-1), " is outside the vocabulary of ", t.vocab_size());
    out.eos_id_ = eos_id;
    out.tiktoken_ = std::make_shared<const tiktoken_bpe>(std::move(t));
    return out;
  }
  // The tiktoken tokenizer behind this one (gpt-oss), or null for a byte-level BPE one.
  const tiktoken_bpe* tiktoken() const noexcept { return tiktoken_.get(); }

  // From a Hugging Face tokenizer.json text (the byte-level BPE form above, or gpt-oss's o200k form);
  // `source` names it in error messages.
  static tokenizer from_hf_json(std::string_view json_text, std::string_view source = "tokenizer.json");
  static tokenizer from_hf_json_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    check(static_cast<bool>(in), "cannot open tokenizer file '", path, "'");
    std::ostringstream text;
    text << in.rdbuf();
    check(!in.bad(), "cannot read tokenizer file '", path, "'");
    return from_hf_json(text.str(), path);
  }

  // Appends the ids of `text`.
  void encode(std::string_view text, std::vector<std::int32_t>& out, const encode_options& options = {}) const {
    validate_utf8(text, "tokenizer: input text");
    if (options.add_bos.value_or(add_bos_)) {
      check(bos_id_.has_value(), "tokenizer: BOS requested but the vocabulary has no BOS token");
      out.push_back(*bos_id_);
    }
    if (tiktoken_) {
      const std::vector<std::int32_t> ids =
          options.parse_special ? tiktoken_->encode(text) : tiktoken_->encode_ordinary(text);
      out.insert(out.end(), ids.begin(), ids.end());
    } else if (options.parse_special && !specials_.empty()) {
      encode_with_specials(text, out);
    } else {
      encode_plain(text, out);
    }
    if (options.add_eos.value_or(add_eos_)) {
      check(eos_id_.has_value(), "tokenizer: EOS requested but the vocabulary has no EOS token");
      out.push_back(*eos_id_);
    }
  }
  std::vector<std::int32_t> encode(std::string_view text, const encode_options& options = {}) const {
    std::vector<std::int32_t> out;
    out.reserve(text.size() / 3 + 4);
    encode(text, out, options);
    return out;
  }

  void decode(const std::vector<std::int32_t>& ids, std::string& out, const decode_options& options = {}) const {
    for (const std::int32_t id : ids) {
      const token_type t = type(id);
      if (options.skip_special && t == token_type::control) continue;
      if (tiktoken_) {
        out += tiktoken_->token_bytes(id);
        continue;
      }
      out += is_matched_type(t) ? model_.token_text(id) : model_.token_bytes(id);
    }
  }
  std::string decode(const std::vector<std::int32_t>& ids, const decode_options& options = {}) const {
    std::string out;
    decode(ids, out, options);
    return out;
  }
  // The bytes of one token (a streaming detokenizer concatenates these).
  std::string token_piece(std::int32_t id) const { return decode(std::vector<std::int32_t>{id}); }

  std::size_t vocab_size() const noexcept { return tiktoken_ ? tiktoken_->vocab_size() : types_.size(); }
  token_type type(std::int32_t id) const {
    if (tiktoken_) {
      check(id >= 0 && static_cast<std::size_t>(id) < tiktoken_->vocab_size(), "tokenizer: token id ", id,
            " is outside the vocabulary of ", tiktoken_->vocab_size());
      return tiktoken_->is_special(id) ? token_type::control : token_type::normal;
    }
    check(id >= 0 && static_cast<std::size_t>(id) < types_.size(), "tokenizer: token id ", id,
          " is outside the vocabulary of ", types_.size());
    return types_[static_cast<std::size_t>(id)];
  }
  // Byte-level text (tiktoken: the raw bytes) of a token.
  const std::string& token_text(std::int32_t id) const {
    return tiktoken_ ? tiktoken_->token_bytes(id) : model_.token_text(id);
  }
  std::optional<std::int32_t> find(std::string_view text) const {
    return tiktoken_ ? tiktoken_->find(text) : model_.find(text);
  }
  std::optional<std::int32_t> bos_id() const noexcept { return bos_id_; }
  std::optional<std::int32_t> eos_id() const noexcept { return eos_id_; }
  std::optional<std::int32_t> unk_id() const noexcept { return unk_id_; }
  std::optional<std::int32_t> pad_id() const noexcept { return pad_id_; }
  const pre_tokenizer_options& pre_tokenizer() const noexcept { return pre_tokenizer_; }
  const bpe_model& model() const noexcept { return model_; }

 private:
  struct special {
    std::string text;
    std::int32_t id;
    bool lstrip;
    bool rstrip;
  };

  static bool is_matched_type(token_type t) noexcept {
    return t == token_type::control || t == token_type::user_defined;
  }

  void encode_plain(std::string_view text, std::vector<std::int32_t>& out) const {
    pre_tokenize(text, pre_tokenizer_, [&](std::string_view word) { model_.encode_word(word, out); });
  }

  // Start of the whitespace run that ends at `end`, not before `floor` (text is valid UTF-8).
  static std::size_t whitespace_before(std::string_view text, std::size_t end, std::size_t floor) {
    while (end > floor) {
      std::size_t start = end - 1;
      while (start > floor && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
      const utf8_char c = decode_utf8(text, start);
      if (c.status != utf8_status::ok || start + c.length != end || !is_whitespace(c.cp)) break;
      end = start;
    }
    return end;
  }
  static std::size_t whitespace_after(std::string_view text, std::size_t begin) {
    while (begin < text.size()) {
      const utf8_char c = decode_utf8(text, begin);
      if (c.status != utf8_status::ok || !is_whitespace(c.cp)) break;
      begin += c.length;
    }
    return begin;
  }

  void encode_with_specials(std::string_view text, std::vector<std::int32_t>& out) const {
    std::size_t plain = 0;  // start of the text not yet encoded
    std::size_t i = 0;
    while (i < text.size()) {
      const auto& candidates = by_first_byte_[static_cast<unsigned char>(text[i])];
      const special* hit = nullptr;
      for (const std::size_t c : candidates) {
        if (text.compare(i, specials_[c].text.size(), specials_[c].text) == 0) {
          hit = &specials_[c];
          break;
        }
      }
      if (hit == nullptr) {
        ++i;
        continue;
      }
      const std::size_t start = hit->lstrip ? whitespace_before(text, i, plain) : i;
      const std::size_t end = i + hit->text.size();
      encode_plain(text.substr(plain, start - plain), out);
      out.push_back(hit->id);
      plain = hit->rstrip ? whitespace_after(text, end) : end;
      i = plain;
    }
    encode_plain(text.substr(plain), out);
  }

  bpe_model model_;
  std::vector<token_type> types_;
  pre_tokenizer_options pre_tokenizer_;
  bool add_bos_ = false;
  bool add_eos_ = false;
  std::optional<std::int32_t> bos_id_;
  std::optional<std::int32_t> eos_id_;
  std::optional<std::int32_t> unk_id_;
  std::optional<std::int32_t> pad_id_;
  std::vector<special> specials_;  // longest text first
  std::array<std::vector<std::size_t>, 256> by_first_byte_;
  std::shared_ptr<const tiktoken_bpe> tiktoken_;  // gpt-oss's o200k tokenizer; null: byte-level BPE above
};

// ---- tokenizer.json ------------------------------------------------------------------------------

namespace detail {

using json = nlohmann::json;

// Error context: "<source>: <field>: ...".
struct json_reader {
  std::string source;

  [[noreturn]] void fail(const std::string& field, const std::string& message) const {
    mla::detail::throw_error(source, ": ", field, ": ", message);
  }
  const json& member(const json& object, const std::string& field, const char* key) const {
    const auto it = object.find(key);
    if (it == object.end()) fail(field.empty() ? key : field + "." + key, "missing");
    return *it;
  }
  // A member that may be absent or null.
  const json* optional_member(const json& object, const char* key) const {
    const auto it = object.find(key);
    return (it == object.end() || it->is_null()) ? nullptr : &*it;
  }
  bool boolean(const json& object, const std::string& field, const char* key, bool fallback) const {
    const json* v = optional_member(object, key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) fail(field + "." + key, "expected true or false, found " + v->dump());
    return v->get<bool>();
  }
  std::string string(const json& value, const std::string& field) const {
    if (!value.is_string()) fail(field, "expected a string, found " + value.dump());
    return value.get<std::string>();
  }
  std::int32_t id(const json& value, const std::string& field) const {
    if (!value.is_number_integer() || value.get<std::int64_t>() < 0 || value.get<std::int64_t>() >= INT32_MAX) {
      fail(field, "expected a non-negative integer token id, found " + value.dump());
    }
    return static_cast<std::int32_t>(value.get<std::int64_t>());
  }
};

inline void read_byte_level(const json_reader& r, const json& pt, const std::string& field) {
  if (r.boolean(pt, field, "add_prefix_space", false)) {
    r.fail(field + ".add_prefix_space", "true is not supported (SmolLM2 uses false)");
  }
  if (!r.boolean(pt, field, "use_regex", true)) {
    r.fail(field + ".use_regex", "false is not supported (the GPT-2 regex split is required)");
  }
}

inline pre_tokenizer_options read_pre_tokenizer(const json_reader& r, const json& root) {
  const json* pt = r.optional_member(root, "pre_tokenizer");
  if (pt == nullptr) r.fail("pre_tokenizer", "missing (a ByteLevel pre-tokenizer is required)");
  if (!pt->is_object()) r.fail("pre_tokenizer", "expected an object");
  const std::string type = r.string(r.member(*pt, "pre_tokenizer", "type"), "pre_tokenizer.type");
  pre_tokenizer_options options;
  if (type == "ByteLevel") {
    read_byte_level(r, *pt, "pre_tokenizer");
    options.individual_digits = false;
    return options;
  }
  if (type != "Sequence") {
    r.fail("pre_tokenizer.type", "'" + type +
                                     "' is not supported (ByteLevel, or Sequence of "
                                     "Digits(individual_digits) and ByteLevel)");
  }
  const json& list = r.member(*pt, "pre_tokenizer", "pretokenizers");
  if (!list.is_array() || list.size() != 2) {
    r.fail("pre_tokenizer.pretokenizers", "expected [Digits, ByteLevel], found " + list.dump());
  }
  const json& digits = list[0];
  const json& byte_level = list[1];
  if (!digits.is_object() || digits.value("type", "") != "Digits" ||
      !r.boolean(digits, "pre_tokenizer.pretokenizers[0]", "individual_digits", false)) {
    r.fail("pre_tokenizer.pretokenizers[0]", "expected Digits with individual_digits true, found " + digits.dump());
  }
  if (!byte_level.is_object() || byte_level.value("type", "") != "ByteLevel") {
    r.fail("pre_tokenizer.pretokenizers[1]", "expected ByteLevel, found " + byte_level.dump());
  }
  read_byte_level(r, byte_level, "pre_tokenizer.pretokenizers[1]");
  options.individual_digits = true;
  return options;
}

}  // namespace detail

inline tokenizer tokenizer::from_hf_json(std::string_view json_text, std::string_view source) {
  using detail::json;
  const detail::json_reader r{std::string(source)};
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::parse_error& e) {
    mla::detail::throw_error(source, ": not valid JSON (at byte ", e.byte, "): ", e.what());
  }
  if (!root.is_object()) r.fail("(root)", "expected an object");
  if (detail::is_o200k_hf_json(root)) return from_tiktoken(o200k_from_hf_json(root, source));

  if (const json* normalizer = r.optional_member(root, "normalizer")) {
    r.fail("normalizer", "not supported (expected null), found " + normalizer->dump());
  }
  vocabulary v;
  v.pre_tokenizer = detail::read_pre_tokenizer(r, root);
  if (const json* decoder = r.optional_member(root, "decoder")) {
    if (!decoder->is_object() || decoder->value("type", "") != "ByteLevel") {
      r.fail("decoder", "only ByteLevel is supported, found " + decoder->dump());
    }
  }

  const json& model = r.member(root, "", "model");
  if (!model.is_object()) r.fail("model", "expected an object");
  if (const json* type = r.optional_member(model, "type")) {
    if (r.string(*type, "model.type") != "BPE") {
      r.fail("model.type", "'" + type->get<std::string>() + "' is not supported (BPE)");
    }
  }
  if (r.boolean(model, "model", "byte_fallback", false)) {
    r.fail("model.byte_fallback", "true is not supported");
  }
  if (const json* dropout = r.optional_member(model, "dropout")) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      r.fail("model.dropout", "BPE dropout is not supported, found " + dropout->dump());
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const json* affix = r.optional_member(model, key)) {
      if (!affix->is_string() || !affix->get<std::string>().empty()) {
        r.fail(std::string("model.") + key, "not supported, found " + affix->dump());
      }
    }
  }
  v.ignore_merges = r.boolean(model, "model", "ignore_merges", false);

  // Ids: model.vocab, then added_tokens (which may reuse a vocab id with the same text, or add ids).
  std::map<std::int32_t, std::string> by_id;
  std::map<std::int32_t, token_type> added_types;
  const json& vocab = r.member(model, "model", "vocab");
  if (!vocab.is_object()) r.fail("model.vocab", "expected an object of token: id");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const std::string field = "model.vocab['" + it.key() + "']";
    const std::int32_t id = r.id(it.value(), field);
    const auto [slot, inserted] = by_id.emplace(id, it.key());
    if (!inserted) r.fail(field, "id " + std::to_string(id) + " already names '" + slot->second + "'");
  }
  if (const json* added = r.optional_member(root, "added_tokens")) {
    if (!added->is_array()) r.fail("added_tokens", "expected an array");
    for (std::size_t i = 0; i < added->size(); ++i) {
      const json& t = (*added)[i];
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      if (!t.is_object()) r.fail(field, "expected an object");
      const std::int32_t id = r.id(r.member(t, field, "id"), field + ".id");
      const std::string content = r.string(r.member(t, field, "content"), field + ".content");
      if (content.empty()) r.fail(field + ".content", "empty");
      if (r.boolean(t, field, "single_word", false)) {
        r.fail(field + ".single_word", "true is not supported");
      }
      const auto [slot, inserted] = by_id.emplace(id, content);
      if (!inserted && slot->second != content) {
        r.fail(field, "id " + std::to_string(id) + " is '" + slot->second + "' in model.vocab, not '" + content + "'");
      }
      added_types[id] = r.boolean(t, field, "special", false) ? token_type::control : token_type::user_defined;
      const bool lstrip = r.boolean(t, field, "lstrip", false);
      const bool rstrip = r.boolean(t, field, "rstrip", false);
      if (lstrip || rstrip) v.strip.push_back({id, lstrip, rstrip});
    }
  }
  if (by_id.empty()) r.fail("model.vocab", "empty");
  const std::size_t n = static_cast<std::size_t>(by_id.rbegin()->first) + 1;
  if (by_id.size() != n) {
    std::int32_t hole = 0;
    while (by_id.count(hole) != 0) ++hole;
    r.fail("model.vocab", "ids are not contiguous: no token has id " + std::to_string(hole) + " (largest id " +
                              std::to_string(n - 1) + ")");
  }
  v.tokens.reserve(n);
  v.token_types.reserve(n);
  for (auto& [id, text] : by_id) {
    v.tokens.push_back(std::move(text));
    const auto t = added_types.find(id);
    v.token_types.push_back(static_cast<std::int32_t>(t == added_types.end() ? token_type::normal : t->second));
  }

  const json& merges = r.member(model, "model", "merges");
  if (!merges.is_array()) r.fail("model.merges", "expected an array");
  v.merges.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    const std::string field = "model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      try {
        v.merges.push_back(split_merge(m.get_ref<const std::string&>(), i));
      } catch (const mla::error& e) {
        r.fail(field, e.what());
      }
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      v.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      r.fail(field, "expected \"left right\" or [\"left\", \"right\"], found " + m.dump());
    }
  }

  if (const json* unk = r.optional_member(model, "unk_token")) {
    const std::string text = r.string(*unk, "model.unk_token");
    const auto it = std::find(v.tokens.begin(), v.tokens.end(), text);
    if (it == v.tokens.end()) r.fail("model.unk_token", "'" + text + "' is not a token");
    v.unk_id = static_cast<std::int32_t>(it - v.tokens.begin());
  }
  try {
    return tokenizer(std::move(v));
  } catch (const mla::error& e) {
    mla::detail::throw_error(source, ": ", e.what());
  }
}

}  // namespace mla::tok
