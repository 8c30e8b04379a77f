#include "mla/io/llama_permute.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "expect_error.hpp"
#include "io_test_support.hpp"
#include "mla/io/quant_blocks.hpp"

using namespace mla::io;

namespace {
// The converter's definition, index by index: view rows as [n_head, 2, d/2, cols], swap axes 1 and 2
// (out[h][j][t][c] = in[h][t][j][c]), flatten.
std::vector<int> reshape_swap_reference(const std::vector<int>& in, std::size_t rows, std::size_t cols,
                                        std::size_t n_head) {
  const std::size_t d = rows / n_head, half = d / 2;
  std::vector<int> out(in.size());
  for (std::size_t h = 0; h < n_head; ++h)
    for (std::size_t t = 0; t < 2; ++t)
      for (std::size_t j = 0; j < half; ++j)
        for (std::size_t c = 0; c < cols; ++c) {
          const std::size_t src = ((h * 2 + t) * half + j) * cols + c;  // [h][t][j][c]
          const std::size_t dst = ((h * half + j) * 2 + t) * cols + c;  // [h][j][t][c]
          out[dst] = in[src];
        }
  return out;
}
std::vector<int> iota(std::size_t n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(io_llama_permute)

BOOST_AUTO_TEST_CASE(hand_examples) {
  // One head of 4 rows: GGUF row 2j + t = HF row 2t + j -> HF rows in GGUF order 0, 2, 1, 3.
  BOOST_TEST(llama_permute(iota(4), 4, 1, 1) == (std::vector<int>{0, 2, 1, 3}), boost::test_tools::per_element());
  // Two heads of 6 rows: per head HF rows 0, 3, 1, 4, 2, 5.
  BOOST_TEST(llama_permute(iota(12), 12, 1, 2) == (std::vector<int>{0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11}),
             boost::test_tools::per_element());
  // Whole rows move: [4 rows, 2 cols].
  BOOST_TEST(llama_permute(iota(8), 4, 2, 1) == (std::vector<int>{0, 1, 4, 5, 2, 3, 6, 7}),
             boost::test_tools::per_element());
  BOOST_TEST(llama_permuted_row(2, 4, 1) == 1u);
  BOOST_TEST(llama_permuted_row(1, 4, 1) == 2u);
  BOOST_TEST(llama_permuted_row(9, 12, 2) == 7u);  // head 1, t = 1, j = 0
}

BOOST_AUTO_TEST_CASE(matches_the_converter_on_smollm2_shapes) {
  // SmolLM2-135M: q [576, 576] with 9 heads of 64, k [192, 576] with 3 kv heads (8 cols here).
  const std::pair<std::size_t, std::size_t> cases[] = {{576, 9}, {192, 3}, {64, 1}};
  for (const auto& [rows, n_head] : cases) {
    const std::size_t cols = 8;
    const auto hf = iota(rows * cols);
    const auto gg = llama_permute(hf, rows, cols, n_head);
    BOOST_TEST(gg == reshape_swap_reference(hf, rows, cols, n_head), boost::test_tools::per_element());
    BOOST_TEST(llama_unpermute(gg, rows, cols, n_head) == hf, boost::test_tools::per_element());
    for (std::size_t r = 0; r < rows; ++r) {
      BOOST_TEST_REQUIRE(gg[llama_permuted_row(r, rows, n_head) * cols] == hf[r * cols]);
    }
    // The inverse is a two-sided inverse; bias vectors are the cols = 1 case.
    BOOST_TEST(llama_permute(llama_unpermute(hf, rows, cols, n_head), rows, cols, n_head) == hf,
               boost::test_tools::per_element());
    const auto bias = iota(rows);
    BOOST_TEST(llama_unpermute(llama_permute(bias, rows, 1, n_head), rows, 1, n_head) == bias,
               boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(quantised_rows_permute_like_their_values) {
  // 8 rows of 64 Q8_0 elements (2 blocks = 68 bytes per row), 2 heads.
  mla_test::rng r(3);
  const std::size_t rows = 8, row_elems = 64, row_bytes = 68;
  mla_test::bytes q(rows * row_bytes);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = r.byte();
  for (std::size_t blk = 0; blk < rows * 2; ++blk) {  // finite scales
    q[blk * 34] = 0x00;
    q[blk * 34 + 1] = static_cast<std::uint8_t>(0x30 + r.below(8));
  }
  mla_test::bytes unpermuted(q.size());
  llama_unpermute_rows(q.data(), unpermuted.data(), rows, row_bytes, 2);
  const auto deq_then = dequantize(ggml_type::Q8_0, byte_span{q.data(), q.size()}, rows * row_elems);
  const auto then_deq = dequantize(ggml_type::Q8_0, byte_span{unpermuted.data(), unpermuted.size()}, rows * row_elems);
  BOOST_TEST(then_deq == llama_unpermute(deq_then, rows, row_elems, 2), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(errors) {
  mla::test::expect_error([] { (void)llama_permute(iota(12), 12, 1, 5); }, {"12 rows", "5 heads"});
  mla::test::expect_error([] { (void)llama_permute(iota(6), 6, 1, 2); }, {"6 rows", "2 heads of an even number"});
  mla::test::expect_error([] { (void)llama_permute(iota(7), 4, 2, 1); }, {"7 elements, expected 4 x 2"});
  mla::test::expect_error([] { (void)llama_permuted_row(4, 4, 1); }, {"row 4 out of range"});
  std::vector<int> buf(4);
  mla::test::expect_error([&] { llama_permute_rows(buf.data(), buf.data(), 4, 4, 1); }, {"same buffer"});
}

BOOST_AUTO_TEST_SUITE_END()
