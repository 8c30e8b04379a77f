// mla::tok GGUF adapter: builds the tokenizer's plain vocabulary from a GGUF file's tokenizer.ggml.*
// metadata (mla::io::gguf_file).
//
//   tokenizer.ggml.model        must be "gpt2" (byte-level BPE)
//   tokenizer.ggml.pre          "smollm" / "starcoder": digits split individually, then the GPT-2
//                               regex; "gpt-2": the GPT-2 regex alone. Others are an error, since
//                               their split rules (Llama 3, gpt-4o, ...) are not implemented.
//   tokenizer.ggml.tokens, .merges ("a b"), .token_type (optional; absent: all normal)
//   tokenizer.ggml.{bos,eos,unknown,padding}_token_id, .add_bos_token, .add_eos_token (optional)
//   tokenizer.ggml.add_space_prefix must be false if present.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/io/gguf.hpp"
#include "mla/tokenizer/tokenizer.hpp"

namespace mla::tok {

namespace detail {
// An optional token id; writers use -1 (or its u32 image) for "none".
inline std::optional<std::int32_t> gguf_token_id(const io::gguf_file& f, std::string_view key) {
  if (!f.contains(key)) return std::nullopt;
  const auto v = f.get_integer<std::int64_t>(key);
  if (v < 0 || v == 0xFFFFFFFFll) return std::nullopt;
  check(v < INT32_MAX, "gguf '", f.path(), "': ", key, " = ", v, " is not a token id");
  return static_cast<std::int32_t>(v);
}
}  // namespace detail

inline vocabulary vocabulary_from_gguf(const io::gguf_file& f) {
  const std::string where = "gguf '" + f.path() + "': ";
  const auto& model = f.get<std::string>("tokenizer.ggml.model");
  check(model == "gpt2", where, "tokenizer.ggml.model is '", model, "'; only 'gpt2' (byte-level BPE) is supported");
  vocabulary v;
  const std::string pre = f.get_or<std::string>("tokenizer.ggml.pre", "");
  if (pre == "smollm" || pre == "starcoder") {
    v.pre_tokenizer.individual_digits = true;
  } else if (pre == "gpt-2") {
    v.pre_tokenizer.individual_digits = false;
  } else {
    mla::detail::throw_error(where, "tokenizer.ggml.pre is '", pre, "'; supported: smollm, starcoder, gpt-2");
  }
  check(!f.get_or<bool>("tokenizer.ggml.add_space_prefix", false), where,
        "tokenizer.ggml.add_space_prefix = true is not supported");

  v.tokens = f.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  if (f.contains("tokenizer.ggml.token_type")) {
    v.token_types = f.get<std::vector<std::int32_t>>("tokenizer.ggml.token_type");
    check(v.token_types.size() == v.tokens.size(), where, "tokenizer.ggml.token_type has ", v.token_types.size(),
          " entries for ", v.tokens.size(), " tokens");
  }
  const auto& merges = f.get<std::vector<std::string>>("tokenizer.ggml.merges");
  v.merges.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    try {
      v.merges.push_back(split_merge(merges[i], i));
    } catch (const mla::error& e) {
      mla::detail::throw_error(where, "tokenizer.ggml.merges: ", e.what());
    }
  }
  v.bos_id = detail::gguf_token_id(f, "tokenizer.ggml.bos_token_id");
  v.eos_id = detail::gguf_token_id(f, "tokenizer.ggml.eos_token_id");
  v.unk_id = detail::gguf_token_id(f, "tokenizer.ggml.unknown_token_id");
  v.pad_id = detail::gguf_token_id(f, "tokenizer.ggml.padding_token_id");
  v.add_bos = f.get_or<bool>("tokenizer.ggml.add_bos_token", false);
  v.add_eos = f.get_or<bool>("tokenizer.ggml.add_eos_token", false);
  return v;
}

inline tokenizer tokenizer_from_gguf(const io::gguf_file& f) {
  try {
    return tokenizer(vocabulary_from_gguf(f));
  } catch (const mla::error& e) {
    const std::string what = e.what();
    if (what.rfind("gguf '", 0) == 0) throw;
    mla::detail::throw_error("gguf '", f.path(), "': ", what);
  }
}

inline tokenizer tokenizer_from_gguf(const std::string& path) { return tokenizer_from_gguf(io::gguf_file::open(path)); }

// tokenizer.chat_template, if the file has one.
inline std::optional<std::string> chat_template_from_gguf(const io::gguf_file& f) {
  if (!f.contains("tokenizer.chat_template")) return std::nullopt;
  return f.get<std::string>("tokenizer.chat_template");
}

}  // namespace mla::tok
