// mla::tok pre-tokenizer: splits text into the words that BPE encodes one at a time, exactly like
// the Hugging Face SmolLM2 pre-tokenizer
//
//   Sequence[ Digits(individual_digits = true),
//             ByteLevel(add_prefix_space = false, use_regex = true) ]
//
// i.e. every \p{N} character becomes a word of its own, then each remaining stretch is split by the
// GPT-2 regex (leftmost alternative that matches, as Oniguruma does):
//
//   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
//
// The regex runs on each stretch separately, so (?!\S) sees the end of the stretch as the end of
// the text: in "abc 12" the space before the digits is a word of its own. The scanner is hand-written
// (one pass, no backtracking beyond one character) because std::regex has no \p{..} classes and is
// slow; the only look-ahead the regex needs is "does the whitespace run end the text".
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/tokenizer/unicode.hpp"

namespace mla::tok {

struct pre_tokenizer_options {
  // Digits(individual_digits = true) before the regex (SmolLM2). false: the plain GPT-2 split, where
  // digit runs stay together (` ?\p{N}+`).
  bool individual_digits = true;
};

namespace detail {

struct scanned_char {
  char_class cls;
  std::size_t length;
};

// Class and length of the character at byte `i` of valid UTF-8 text; throws on invalid UTF-8.
inline scanned_char scan_char(std::string_view text, std::size_t i) {
  const auto b = static_cast<unsigned char>(text[i]);
  if (b < 0x80) return {ascii_class(b), 1};
  const utf8_char c = decode_utf8(text, i);
  if (c.status != utf8_status::ok) validate_utf8(text, "pre-tokenizer input");
  return {classify(c.cp), c.length};
}

// Length of the contraction ('s 't 'm 'd 're 've 'll) starting at the apostrophe at `i`, or 0.
// Case-sensitive and ASCII-only, as in the regex.
inline std::size_t contraction_length(std::string_view text, std::size_t i, std::size_t end) {
  if (i + 1 >= end) return 0;
  const char a = text[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= end) return 0;
  const char b = text[i + 2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// The GPT-2 regex over text[begin, end), which is a whole "text" for the regex.
template <class OnPiece>
void gpt2_split(std::string_view text, std::size_t begin, std::size_t end, OnPiece& on_piece) {
  std::size_t i = begin;
  while (i < end) {
    if (text[i] == '\'') {
      if (const std::size_t n = contraction_length(text, i, end)) {
        on_piece(text.substr(i, n));
        i += n;
        continue;
      }
    }
    const scanned_char first = scan_char(text, i);
    char_class run = first.cls;
    std::size_t j = i;
    // ` ?X+`: a single U+0020 joins the run of letters, numbers or "other" that follows it.
    if (text[i] == ' ' && i + 1 < end) {
      const scanned_char second = scan_char(text, i + 1);
      if (second.cls != char_class::whitespace) {
        run = second.cls;
        j = i + 1;
      }
    }
    if (run != char_class::whitespace) {
      while (j < end) {
        const scanned_char c = scan_char(text, j);
        if (c.cls != run) break;
        j += c.length;
      }
      on_piece(text.substr(i, j - i));
      i = j;
      continue;
    }
    // Whitespace: `\s+(?!\S)` takes the whole run when it ends the text, else the run minus its last
    // character (which then starts the next word, e.g. " world"); a single whitespace character
    // before a non-space falls through to `\s+`.
    std::size_t last = i;
    while (j < end) {
      const scanned_char c = scan_char(text, j);
      if (c.cls != char_class::whitespace) break;
      last = j;
      j += c.length;
    }
    if (j < end && last > i) j = last;
    on_piece(text.substr(i, j - i));
    i = j;
  }
}

}  // namespace detail

// Calls on_piece(std::string_view) for each word of `text`, in order; the words are views into
// `text` and concatenate to it. Throws mla::error (with the byte offset) on invalid UTF-8.
template <class OnPiece>
void pre_tokenize(std::string_view text, const pre_tokenizer_options& options, OnPiece&& on_piece) {
  if (!options.individual_digits) {
    detail::gpt2_split(text, 0, text.size(), on_piece);
    return;
  }
  std::size_t stretch = 0;  // start of the current digit-free stretch
  std::size_t i = 0;
  while (i < text.size()) {
    const detail::scanned_char c = detail::scan_char(text, i);
    if (c.cls == char_class::number) {
      if (stretch < i) detail::gpt2_split(text, stretch, i, on_piece);
      on_piece(text.substr(i, c.length));
      stretch = i + c.length;
    }
    i += c.length;
  }
  if (stretch < text.size()) detail::gpt2_split(text, stretch, text.size(), on_piece);
}

inline std::vector<std::string_view> pre_tokenize(std::string_view text, const pre_tokenizer_options& options = {}) {
  std::vector<std::string_view> pieces;
  pre_tokenize(text, options, [&](std::string_view piece) { pieces.push_back(piece); });
  return pieces;
}

}  // namespace mla::tok
