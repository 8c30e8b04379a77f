// Random texts for tokenizer round trips: pieces drawn from a small list (words, spaces, digits, special
// tokens, non-ASCII letters), so that merges and special-token splits actually happen.
#pragma once

#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace mla::test {

// 0 to max_pieces pieces, each drawn uniformly from `pieces`, concatenated.
inline std::string random_text(std::mt19937_64& gen, const std::vector<std::string>& pieces, std::size_t max_pieces) {
  std::uniform_int_distribution<std::size_t> pick(0, pieces.size() - 1), len(0, max_pieces);
  std::string t;
  for (std::size_t i = len(gen); i > 0; --i) t += pieces[pick(gen)];
  return t;
}

}  // namespace mla::test
