// Sliding-window KV trim (gqa_cache ring buffer, decoder::new_session): on a generated tiny gpt-oss
// checkpoint (window 8 on even layers) with fresh random tokens over a context several windows long,
// prefill (whole, and in chunks) and decode give the same logits with the trimmed caches as with caches
// that keep every token; the window layers' caches hold exactly min(tokens, window) rows, so the
// session's KV bytes are those of the full layers plus window-sized rings.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "files.hpp"
#include "mla/model/gpt_oss_checkpoint.hpp"
#include "mla/model/load_safetensors.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "random.hpp"

using mla::ref::matrix;

BOOST_AUTO_TEST_SUITE(model_kv_window)

BOOST_AUTO_TEST_CASE(trimmed_caches_give_the_same_logits) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 rng(seed);
    const mla::test::temp_dir dir("mla-kv-window-tiny");
    mla::model::gpt_oss_shape shape = mla::model::gpt_oss_shape::tiny();
    mla::model::write_gpt_oss_checkpoint(dir.path(), shape, seed, 1 << 20);
    const mla::model::decoder<float> model = mla::model::load_safetensors(dir.path());
    const auto& c = model.config();
    const int window = shape.sliding_window;
    BOOST_TEST_REQUIRE(window == 8);
    const int total = 5 * window + 3;  // several windows
    std::uniform_int_distribution<int> tok(0, c.vocab_size - 1);
    std::vector<int> tokens(static_cast<std::size_t>(total));
    for (int& t : tokens) t = tok(rng);

    // Reference: caches that keep every token.
    auto full_s = model.new_session(false);
    const matrix<float> want = model.forward(full_s, tokens);

    for (const int prefill : {1, 3, window, 2 * window + 5, total}) {
      BOOST_TEST_CONTEXT("prefill " << prefill << " then decode") {
        auto s = model.new_session();
        auto u = model.new_session(false);
        const std::vector<int> head(tokens.begin(), tokens.begin() + prefill);
        const matrix<float> got = model.forward(s, head);
        const matrix<float> ref_head = model.forward(u, head);
        BOOST_TEST(mla::ref::relative_error(got, ref_head) <= 1e-6);
        BOOST_TEST(mla::ref::relative_error(got, want.topRows(prefill)) <= 1e-5);
        for (int t = prefill; t < total; ++t) {
          const auto a = model.decode(s, tokens[static_cast<std::size_t>(t)]);
          const auto b = model.decode(u, tokens[static_cast<std::size_t>(t)]);
          BOOST_TEST_REQUIRE(mla::ref::relative_error(a, b) <= 1e-6, "token " << t);
          BOOST_TEST_REQUIRE(mla::ref::relative_error(a, want.row(t)) <= 1e-5, "token " << t);
        }
        // Bytes: full layers hold every token, window layers min(tokens, window).
        const std::size_t row = 2 * std::size_t(c.n_kv_heads) * std::size_t(c.head_dim) * sizeof(float);  // k + v
        std::size_t expect = 0, untrimmed = 0;
        for (int l = 0; l < c.n_layers; ++l) {
          const bool sliding = c.layers[static_cast<std::size_t>(l)].sliding_window > 0;
          const auto& cache = s.gqa[static_cast<std::size_t>(l)];
          BOOST_TEST(cache.length() == total);
          BOOST_TEST(cache.k.rows() == (sliding ? window : total));
          expect += row * std::size_t(sliding ? window : total);
          untrimmed += row * std::size_t(total);
        }
        BOOST_TEST(s.kv_bytes() == expect);
        BOOST_TEST(u.kv_bytes() == untrimmed);
        BOOST_TEST(s.kv_bytes() < u.kv_bytes());
      }
    }

    // Chunked prefill of random sizes (some longer than the window), then decode.
    auto s = model.new_session();
    std::uniform_int_distribution<int> chunk(1, 2 * window + 1);
    int at = 0;
    while (at < total) {
      const int n = std::min(chunk(rng), total - at);
      const std::vector<int> part(tokens.begin() + at, tokens.begin() + at + n);
      const matrix<float> got = model.forward(s, part);
      BOOST_TEST_REQUIRE(mla::ref::relative_error(got, want.middleRows(at, n)) <= 1e-5, "chunk at " << at);
      at += n;
    }
  }
}

BOOST_AUTO_TEST_CASE(ring_cache_smaller_than_the_window_is_an_error) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 rng(seed);
  const mla::test::temp_dir dir("mla-kv-window-bad");
  mla::model::write_gpt_oss_checkpoint(dir.path(), mla::model::gpt_oss_shape::tiny(), seed, 1 << 20);
  const mla::model::decoder<float> model = mla::model::load_safetensors(dir.path());
  auto s = model.new_session();
  s.gqa[0].window = 4;  // layer 0 has window 8
  mla::test::expect_error([&] { model.forward(s, std::vector<int>{1, 2, 3}); }, {"ring cache of 4 tokens"});
  auto f = model.new_session();
  f.gqa[1].window = 8;  // layer 1 is full attention
  BOOST_CHECK_THROW(model.forward(f, std::vector<int>{1, 2, 3}), mla::error);
}

BOOST_AUTO_TEST_SUITE_END()
