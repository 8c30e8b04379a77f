#include "mla/inspect/kv.hpp"

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "inspect_test_support.hpp"
#include "seed.hpp"

BOOST_AUTO_TEST_SUITE(inspect_kv)

// Per layer: bytes per token against the layer's own formula (GQA 2 x KV heads x head_dim, MLA latent rank + d_R)
// and the config's kv_elements_per_token; totals at each context against kv_elements_at_context and against what a
// session of the decoder holds after a prefill of that many tokens (windows trimmed, so the ring layer stops at
// its window).
BOOST_AUTO_TEST_CASE(bytes_match_the_allocations) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    mla::test::inspect_model im = mla::test::random_inspect_model(gen);
    const mla::model::decoder<float> m(im.cfg, im.w);
    const std::vector<long> contexts{1, long(mla::test::pick(gen, 2, im.window)),
                                     long(im.window + mla::test::pick(gen, 1, 20)), 32768};
    const mla::inspect::kv_report r = mla::inspect::kv_usage(m, contexts, "random");
    BOOST_TEST_REQUIRE(r.layers.size() == 3u);
    const long g = im.cfg.n_kv_heads, d = im.cfg.head_dim;
    const long expected_elements[3] = {2 * g * d, 2 * g * d, 10 + 4};
    const long ring[3] = {0, im.window, 0};
    std::size_t per_token = 0;
    for (int l = 0; l < 3; ++l) {
      const auto& k = r.layers[std::size_t(l)];
      BOOST_TEST(k.elements_per_token == expected_elements[l]);
      BOOST_TEST(k.elements_per_token == im.cfg.kv_elements_per_token(l));
      BOOST_TEST(k.bytes_per_token == std::size_t(expected_elements[l]) * sizeof(float));
      BOOST_TEST(k.ring_window == ring[l]);
      per_token += k.bytes_per_token;
    }
    BOOST_TEST((r.layers[2].attention == mla::model::attention_kind::mla));
    BOOST_TEST(r.bytes_per_token == per_token);
    for (std::size_t c = 0; c < contexts.size(); ++c) {
      BOOST_TEST_CONTEXT("context " << contexts[c]) {
        std::size_t direct = 0;
        for (int l = 0; l < 3; ++l)
          direct += std::size_t(expected_elements[l]) * sizeof(float) *
                    std::size_t(ring[l] ? std::min(contexts[c], ring[l]) : contexts[c]);
        BOOST_TEST(r.total_at[c] == direct);
        BOOST_TEST(r.total_at[c] == std::size_t(im.cfg.kv_elements_at_context(contexts[c])) * sizeof(float));
        if (contexts[c] <= 64) {  // what the decoder holds after a prefill of that many tokens
          mla::model::session<float> s = m.new_session();
          m.hidden_states(s, mla::test::random_tokens(gen, im.cfg.vocab_size, int(contexts[c])));
          BOOST_TEST(r.total_at[c] == s.kv_bytes());
        }
      }
    }
  }
}

// The CSV has a row per layer and a totals row per model, and the JSON carries the same numbers.
BOOST_AUTO_TEST_CASE(csv_and_json_carry_the_report) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    mla::test::inspect_model im = mla::test::random_inspect_model(gen);
    const mla::model::decoder<float> m(im.cfg, im.w);
    const std::vector<long> contexts{100, 4096};
    const std::vector<mla::inspect::kv_report> rs{mla::inspect::kv_usage(m, contexts, "a \"quoted\" model"),
                                                  mla::inspect::kv_usage(m, contexts, "b")};
    std::istringstream csv(mla::inspect::kv_csv(rs));
    std::string line;
    std::getline(csv, line);
    BOOST_TEST(line ==
               "model,layer,attention,ring_window,elements_per_token,bytes_per_token,bytes_at_100,bytes_at_4096");
    std::vector<std::string> rows;
    while (std::getline(csv, line)) rows.push_back(line);
    BOOST_TEST_REQUIRE(rows.size() == 8u);
    BOOST_TEST(rows[1] == "\"a \"\"quoted\"\" model\",1,gqa," + std::to_string(im.window) + "," +
                              std::to_string(4 * im.cfg.head_dim) + "," + std::to_string(16 * im.cfg.head_dim) + "," +
                              std::to_string(16 * im.cfg.head_dim * im.window) + "," +
                              std::to_string(16 * im.cfg.head_dim * im.window));
    BOOST_TEST(rows[3] == "\"a \"\"quoted\"\" model\",all,,," + std::to_string(8 * im.cfg.head_dim + 14) + "," +
                              std::to_string(rs[0].bytes_per_token) + "," + std::to_string(rs[0].total_at[0]) + "," +
                              std::to_string(rs[0].total_at[1]));
    const nlohmann::json j = mla::inspect::kv_json(rs);
    BOOST_TEST(j["kv"].size() == 2u);
    BOOST_TEST(j["kv"][1]["model"] == "b");
    BOOST_TEST(j["kv"][0]["total_bytes_at_context"][1].get<std::size_t>() == rs[0].total_at[1]);
    BOOST_TEST(j["kv"][0]["layers"][2]["attention"] == "mla");
    BOOST_TEST(j["kv"][0]["layers"][2]["bytes_per_token"].get<std::size_t>() == 14 * sizeof(float));
    const std::string table = mla::inspect::kv_table(rs);
    BOOST_TEST(table.find("56 mla") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(rejects_bad_arguments) {
  std::mt19937_64 gen(1);
  mla::test::inspect_model im = mla::test::random_inspect_model(gen);
  const mla::model::decoder<float> m(im.cfg, im.w);
  BOOST_CHECK_EXCEPTION(mla::inspect::kv_usage(m, {0}), mla::error, [](const mla::error& e) {
    return std::string(e.what()).find("contexts must be > 0 tokens, found 0") != std::string::npos;
  });
  BOOST_CHECK_THROW(mla::inspect::kv_usage(m, {10}, "", 0), mla::error);
}

BOOST_AUTO_TEST_SUITE_END()
