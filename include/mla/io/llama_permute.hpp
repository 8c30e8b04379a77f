// mla::io llama.cpp's q/k row permutation (formats.md §3.4), and its inverse so a GGUF loader can
// restore the Hugging Face row order.
//
// llama.cpp's converter views the rows of q_proj / k_proj (weight or bias) as [n_head, 2, d/2, ...],
// swaps axes 1 and 2 and flattens back. Within each head of d rows:
//     GGUF row 2j + t  =  HF row t * d/2 + j        (t in {0, 1}, j < d/2)
// i.e. HF's half-split rotary pairs (j, j + d/2) become adjacent rows (2j, 2j + 1). Pass the number
// of heads whose rows the tensor holds: n_head for q, n_head_kv for k (the converter does the same).
// The permutation moves whole rows, so it applies to any element type, including quantised rows
// (a GGUF row is ne[0] elements = ggml_nbytes(type, ne[0]) bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "mla/core/error.hpp"

namespace mla::io {

// The GGUF row that HF row `hf_row` lands on.
inline std::size_t llama_permuted_row(std::size_t hf_row, std::size_t rows, std::size_t n_head) {
  check(n_head > 0 && rows % n_head == 0 && (rows / n_head) % 2 == 0, "llama_permute: ", rows,
        " rows do not split into ", n_head, " heads of an even number of rows");
  check(hf_row < rows, "llama_permute: row ", hf_row, " out of range (", rows, " rows)");
  const std::size_t d = rows / n_head;
  const std::size_t head = hf_row / d, r = hf_row % d;
  const std::size_t t = r / (d / 2), j = r % (d / 2);
  return head * d + 2 * j + t;
}

namespace detail {
// inverse == false: dst[perm(r)] = src[r] (HF -> GGUF); true: dst[r] = src[perm(r)] (GGUF -> HF).
inline void llama_permute_impl(const void* src, void* dst, std::size_t rows, std::size_t row_bytes, std::size_t n_head,
                               bool inverse) {
  check(n_head > 0 && rows % n_head == 0 && (rows / n_head) % 2 == 0, "llama_permute: ", rows,
        " rows do not split into ", n_head, " heads of an even number of rows");
  check(src != dst || rows == 0 || row_bytes == 0, "llama_permute: source and destination must not be the same buffer");
  const auto* s = static_cast<const std::uint8_t*>(src);
  auto* o = static_cast<std::uint8_t*>(dst);
  const std::size_t d = rows / n_head, half = d / 2;
  for (std::size_t h = 0; h < n_head; ++h) {
    for (std::size_t t = 0; t < 2; ++t) {
      for (std::size_t j = 0; j < half; ++j) {
        const std::size_t hf = h * d + t * half + j;
        const std::size_t gg = h * d + 2 * j + t;
        const std::size_t from = inverse ? gg : hf, to = inverse ? hf : gg;
        if (row_bytes > 0) std::memcpy(o + to * row_bytes, s + from * row_bytes, row_bytes);
      }
    }
  }
}
}  // namespace detail

// HF -> GGUF: `rows` rows of `row_bytes` bytes each from src into dst (distinct buffers).
inline void llama_permute_rows(const void* src, void* dst, std::size_t rows, std::size_t row_bytes,
                               std::size_t n_head) {
  detail::llama_permute_impl(src, dst, rows, row_bytes, n_head, false);
}

// GGUF -> HF: undoes llama_permute_rows.
inline void llama_unpermute_rows(const void* src, void* dst, std::size_t rows, std::size_t row_bytes,
                                 std::size_t n_head) {
  detail::llama_permute_impl(src, dst, rows, row_bytes, n_head, true);
}

// Typed conveniences on a row-major [rows, cols] buffer (cols = 1 for a bias).
template <class T>
std::vector<T> llama_permute(const std::vector<T>& hf, std::size_t rows, std::size_t cols, std::size_t n_head) {
  static_assert(std::is_trivially_copyable_v<T>, "llama_permute moves rows with memcpy");
  check(hf.size() == rows * cols, "llama_permute: buffer has ", hf.size(), " elements, expected ", rows, " x ", cols);
  std::vector<T> out(hf.size());
  llama_permute_rows(hf.data(), out.data(), rows, cols * sizeof(T), n_head);
  return out;
}

template <class T>
std::vector<T> llama_unpermute(const std::vector<T>& gguf, std::size_t rows, std::size_t cols, std::size_t n_head) {
  static_assert(std::is_trivially_copyable_v<T>, "llama_unpermute moves rows with memcpy");
  check(gguf.size() == rows * cols, "llama_unpermute: buffer has ", gguf.size(), " elements, expected ", rows, " x ",
        cols);
  std::vector<T> out(gguf.size());
  llama_unpermute_rows(gguf.data(), out.data(), rows, cols * sizeof(T), n_head);
  return out;
}

}  // namespace mla::io
