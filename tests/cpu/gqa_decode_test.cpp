#include "mla/cpu/gqa_decode.hpp"

#include <boost/test/unit_test.hpp>
#include <string>

#include "decode_case.hpp"
#include "expect_error.hpp"

using namespace mla_cpu_test;
using mla::test::expect_error;

namespace {

// gpt-oss (64 query heads on 8 KV heads of 64), SmolLM2 (9 on 3), plain MHA, MQA, and a head_dim that is
// not a multiple of 16 (the value loop's tail).
const gqa_config configs[] = {{64, 8, 64}, {9, 3, 64}, {4, 4, 32}, {6, 1, 16}, {10, 5, 20}};

template <class Elem>
void run_cases(int cases_per_page_size, bool bf16_dot = true) {
  const std::uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed << " (replay with MLA_TEST_SEED=" << seed << ")") {
    for (const gqa_config& g : configs) {
      for (decode_case c : edge_cases()) {
        c.bf16_dot = bf16_dot;
        check_gqa_case<Elem>(g, c, rng);
      }
      for (int page_size : {1, 3, 16, 64})
        for (int k = 0; k < cases_per_page_size; ++k) {
          decode_case c = random_case(page_size, rng);
          c.bf16_dot = bf16_dot;
          check_gqa_case<Elem>(g, c, rng);
        }
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cpu_gqa_decode)

BOOST_AUTO_TEST_CASE(matches_float64_reference) { run_cases<float>(2); }

// bf16: the pairs path where the CPU has AVX512-BF16 (against the rounded reference, decode_case.hpp), and the
// portable path always.
BOOST_AUTO_TEST_CASE(bf16_cache_matches_float64_reference) { run_cases<mla::cpu::bf16>(1); }

BOOST_AUTO_TEST_CASE(bf16_cache_portable_path_matches_float64_reference) { run_cases<mla::cpu::bf16>(1, false); }

BOOST_AUTO_TEST_CASE(bad_arguments_name_the_field) {
  const mla::paged_layout layout = mla::make_paged_layout({3, 7}, 4);
  std::vector<float> k(static_cast<std::size_t>(layout.num_pages) * 4 * 2 * 8, 0.5f), v = k;
  std::vector<float> q(2 * 4 * 8, 0.1f), out(2 * 4 * 8);
  auto args = [&] {
    mla::cpu::gqa_decode_args<float> a;
    a.q = q.data();
    a.k_cache = k.data();
    a.v_cache = v.data();
    a.pages = layout.view();
    a.num_heads = 4;
    a.num_kv_heads = 2;
    a.head_dim = 8;
    a.options.softmax_scale = 0.3f;
    a.out = out.data();
    return a;
  };
  BOOST_CHECK_NO_THROW(mla::cpu::gqa_decode(args()));
  auto run = [&](auto mutate) {
    return [&args, mutate] {
      auto a = args();
      mutate(a);
      mla::cpu::gqa_decode(a);
    };
  };
  expect_error(run([](auto& a) { a.num_heads = 5; }),
               {"num_heads = 5, expected a positive multiple of num_kv_heads = 2"});
  expect_error(run([](auto& a) { a.num_kv_heads = 0; }), {"num_kv_heads must be > 0"});
  expect_error(run([](auto& a) { a.head_dim = 0; }), {"head_dim must be > 0"});
  expect_error(run([](auto& a) { a.v_cache = nullptr; }), {"v_cache is null"});
  expect_error(run([](auto& a) { a.options.sliding_window = -3; }),
               {"options.sliding_window must be >= 0 (0 = full causal), found -3"});
  expect_error(run([](auto& a) { a.pages.num_pages = 2; }),
               {"pages.page_table[1][1] = 2, expected a physical page in [0, pages.num_pages = 2)"});
}

BOOST_AUTO_TEST_SUITE_END()
