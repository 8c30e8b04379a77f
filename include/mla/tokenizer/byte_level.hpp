// mla::tok byte-level map: GPT-2's reversible map from the 256 byte values to 256 printable code
// points, so that BPE vocabularies can store arbitrary bytes as ordinary text.
//
// Bytes that are already printable and unambiguous map to themselves ('!'..'~', U+00A1..U+00AC,
// U+00AE..U+00FF); the other 68 (controls, space, DEL, U+00A0, soft hyphen) map, in byte order, to
// U+0100, U+0101, ... So ' ' (0x20) becomes 'Ġ' (U+0120) and '\n' becomes 'Ċ' (U+010A).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mla/core/error.hpp"
#include "mla/tokenizer/unicode.hpp"

namespace mla::tok {

namespace detail {
inline constexpr bool byte_maps_to_itself(unsigned b) noexcept {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct byte_level_tables {
  std::array<char32_t, 256> byte_to_char{};
  // UTF-8 of byte_to_char[b]: every mapped code point is below U+0800, so at most 2 bytes.
  std::array<std::array<char, 2>, 256> utf8{};
  std::array<std::uint8_t, 256> utf8_length{};
  // Inverse over U+0000..U+0143 (the mapped range); -1 where no byte maps there.
  std::array<std::int16_t, 0x144> char_to_byte{};
};

inline constexpr byte_level_tables make_byte_level_tables() noexcept {
  byte_level_tables t{};
  for (auto& v : t.char_to_byte) v = -1;
  char32_t next = 0x100;
  for (unsigned b = 0; b < 256; ++b) {
    const char32_t c = byte_maps_to_itself(b) ? static_cast<char32_t>(b) : next++;
    t.byte_to_char[b] = c;
    t.char_to_byte[c] = static_cast<std::int16_t>(b);
    if (c < 0x80) {
      t.utf8[b] = {static_cast<char>(c), 0};
      t.utf8_length[b] = 1;
    } else {
      t.utf8[b] = {static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))};
      t.utf8_length[b] = 2;
    }
  }
  return t;
}

inline constexpr byte_level_tables byte_level = make_byte_level_tables();
}  // namespace detail

// The code point that stands for byte `b`.
inline constexpr char32_t byte_to_char(std::uint8_t b) noexcept { return detail::byte_level.byte_to_char[b]; }

// The byte that code point `c` stands for, or -1 when `c` is not in the map's image.
inline constexpr int char_to_byte(char32_t c) noexcept {
  return c < detail::byte_level.char_to_byte.size() ? detail::byte_level.char_to_byte[c] : -1;
}

// Appends the byte-level text of arbitrary bytes (each byte becomes one code point, UTF-8 encoded).
inline void append_byte_level(std::string& out, std::string_view bytes) {
  for (const char ch : bytes) {
    const auto b = static_cast<std::uint8_t>(ch);
    out.append(detail::byte_level.utf8[b].data(), detail::byte_level.utf8_length[b]);
  }
}

inline std::string to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  append_byte_level(out, bytes);
  return out;
}

// The bytes behind byte-level text. Returns false (leaving `out` partly appended) when `text` is
// not valid UTF-8 or holds a code point outside the map's image.
inline bool try_append_from_byte_level(std::string& out, std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const utf8_char c = decode_utf8(text, i);
    if (c.status != utf8_status::ok) return false;
    const int b = char_to_byte(c.cp);
    if (b < 0) return false;
    out += static_cast<char>(b);
    i += c.length;
  }
  return true;
}

// Like try_append_from_byte_level, returning the bytes; throws mla::error naming the first code
// point that has no byte (or the invalid UTF-8 offset).
inline std::string from_byte_level(std::string_view text) {
  validate_utf8(text, "byte-level text");
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const utf8_char c = decode_utf8(text, i);
    const int b = char_to_byte(c.cp);
    check(b >= 0, "byte-level text: ", code_point_name(c.cp), " at byte offset ", i, " is not in the GPT-2 byte map");
    out += static_cast<char>(b);
    i += c.length;
  }
  return out;
}

}  // namespace mla::tok
