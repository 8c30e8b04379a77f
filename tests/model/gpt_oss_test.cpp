// gpt-oss: the MoE block against an independent float64 loop, config.json parsing, and a synthetic
// checkpoint in the hub layout written, loaded and run (prefill == decode, window and sinks matter).
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "json_file.hpp"
#include "mla/io/mxfp4.hpp"
#include "mla/io/safetensors.hpp"
#include "mla/model/gpt_oss_checkpoint.hpp"
#include "mla/model/hf_config.hpp"
#include "mla/model/load.hpp"
#include "mla/model/load_safetensors.hpp"
#include "mla/reference/moe.hpp"
#include "random.hpp"

namespace {
namespace fs = std::filesystem;
using mla::ref::matrix;
using mla::ref::vector;

using mla::test::randn;

// The gpt-oss MoE written as plain loops in double, sharing nothing with moe.hpp: router, top-k by
// repeated arg-max, softmax over the k, interleaved gate/up, clamped SwiGLU with the +1, weighted sum.
struct loop_moe {
  int hidden = 24, inter = 16, n_experts = 6, k = 3;
  double alpha = 1.702, limit = 7.0;
  matrix<double> router_w;
  vector<double> router_b;
  std::vector<mla::ref::moe_expert<double>> experts;
  mutable int gate_clamped = 0, up_clamped = 0;

  std::vector<double> token(const std::vector<double>& x) const {
    std::vector<double> logits(static_cast<std::size_t>(n_experts));
    for (int e = 0; e < n_experts; ++e) {
      double s = router_b(e);
      for (int i = 0; i < hidden; ++i) s += router_w(e, i) * x[static_cast<std::size_t>(i)];
      logits[static_cast<std::size_t>(e)] = s;
    }
    std::vector<int> chosen;
    std::vector<bool> used(static_cast<std::size_t>(n_experts), false);
    for (int j = 0; j < k; ++j) {
      int best = -1;
      for (int e = 0; e < n_experts; ++e)
        if (!used[static_cast<std::size_t>(e)] &&
            (best < 0 || logits[static_cast<std::size_t>(e)] > logits[static_cast<std::size_t>(best)]))
          best = e;
      used[static_cast<std::size_t>(best)] = true;
      chosen.push_back(best);
    }
    double denom = 0;
    for (const int e : chosen) denom += std::exp(logits[static_cast<std::size_t>(e)]);
    std::vector<double> out(static_cast<std::size_t>(hidden), 0.0);
    for (const int e : chosen) {
      const double weight = std::exp(logits[static_cast<std::size_t>(e)]) / denom;
      const auto& ex = experts[static_cast<std::size_t>(e)];
      std::vector<double> act(static_cast<std::size_t>(inter));
      for (int i = 0; i < inter; ++i) {
        double gate = ex.b_gate_up(2 * i), up = ex.b_gate_up(2 * i + 1);
        for (int c = 0; c < hidden; ++c) {
          gate += ex.w_gate_up(2 * i, c) * x[static_cast<std::size_t>(c)];
          up += ex.w_gate_up(2 * i + 1, c) * x[static_cast<std::size_t>(c)];
        }
        if (gate > limit) gate = limit, ++gate_clamped;
        if (up > limit || up < -limit) up = up > 0 ? limit : -limit, ++up_clamped;
        act[static_cast<std::size_t>(i)] = gate / (1.0 + std::exp(-alpha * gate)) * (up + 1.0);
      }
      for (int o = 0; o < hidden; ++o) {
        double y = ex.b_down(o);
        for (int i = 0; i < inter; ++i) y += ex.w_down(o, i) * act[static_cast<std::size_t>(i)];
        out[static_cast<std::size_t>(o)] += weight * y;
      }
    }
    return out;
  }
};

loop_moe random_loop_moe(std::mt19937_64& rng) {
  loop_moe m;
  m.router_w = randn<double>(rng, m.n_experts, m.hidden, 0.5);
  m.router_b = randn<double>(rng, m.n_experts, 1, 0.3).col(0);
  for (int e = 0; e < m.n_experts; ++e) {
    mla::ref::moe_expert<double> ex;
    ex.w_gate_up = randn<double>(rng, 2 * m.inter, m.hidden, 0.9);  // pre-activations of std ~4: clamps engage
    ex.b_gate_up = randn<double>(rng, 2 * m.inter, 1, 0.5).col(0);
    ex.w_down = randn<double>(rng, m.hidden, m.inter, 0.1);
    ex.b_down = randn<double>(rng, m.hidden, 1, 0.1).col(0);
    m.experts.push_back(ex);
  }
  return m;
}

template <class T>
mla::ref::moe_block<T> block_of(const loop_moe& m) {
  mla::ref::moe_block<T> b;
  b.hidden = m.hidden, b.intermediate = m.inter, b.n_experts = m.n_experts, b.experts_per_token = m.k;
  b.w_router = m.router_w.cast<T>();
  b.b_router = m.router_b.cast<T>();
  std::vector<mla::ref::moe_expert<T>> ex;
  for (const auto& e : m.experts)
    ex.push_back({e.w_gate_up.cast<T>(), e.b_gate_up.cast<T>(), e.w_down.cast<T>(), e.b_down.cast<T>()});
  b.experts = std::make_shared<mla::ref::dense_experts<T>>(std::move(ex));
  return b;
}

// Counts loads, to show that experts are expanded one at a time and only when routed to.
struct counting_source final : mla::ref::expert_source<double> {
  std::shared_ptr<const mla::ref::expert_source<double>> inner;
  mutable std::vector<int> loads;
  int count() const override { return inner->count(); }
  void load(int e, mla::ref::moe_expert<double>& out) const override {
    loads.push_back(e);
    inner->load(e, out);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(model_gpt_oss)

BOOST_AUTO_TEST_CASE(moe_matches_an_independent_float64_loop) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const loop_moe ref = random_loop_moe(rng);
    const matrix<double> x = randn<double>(rng, 9, ref.hidden, 1.0);
    matrix<double> expected(x.rows(), ref.hidden);
    for (long t = 0; t < x.rows(); ++t) {
      const std::vector<double> xt(x.row(t).data(), x.row(t).data() + ref.hidden);
      const std::vector<double> y = ref.token(xt);
      for (int o = 0; o < ref.hidden; ++o) expected(t, o) = y[static_cast<std::size_t>(o)];
    }
    // The clamps must have engaged on both sides, or this test would not check them.
    BOOST_TEST_REQUIRE(ref.gate_clamped > 0);
    BOOST_TEST_REQUIRE(ref.up_clamped > 0);
    const matrix<double> got = block_of<double>(ref).forward(x);
    BOOST_TEST(mla::ref::relative_error(got, expected) <= 1e-12);
    const matrix<float> got_f = block_of<float>(ref).forward(x.cast<float>());
    BOOST_TEST(mla::ref::relative_error(got_f, expected) <= 1e-5);
    // One row at a time (the decode path) gives the same rows.
    const auto b = block_of<double>(ref);
    for (long t = 0; t < x.rows(); ++t)
      BOOST_TEST(mla::ref::relative_error(b.forward(x.row(t)), expected.row(t)) <= 1e-12);
  }
}

BOOST_AUTO_TEST_CASE(moe_loads_each_routed_expert_once) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const loop_moe ref = random_loop_moe(rng);
    auto b = block_of<double>(ref);
    auto counter = std::make_shared<counting_source>();
    counter->inner = b.experts;
    b.experts = counter;
    const matrix<double> x = randn<double>(rng, 12, ref.hidden, 1.0);
    const auto routes = b.route(x);
    std::vector<int> routed;
    for (const auto& r : routes)
      for (const int e : r.experts)
        if (std::find(routed.begin(), routed.end(), e) == routed.end()) routed.push_back(e);
    std::sort(routed.begin(), routed.end());
    (void)b.forward(x);
    BOOST_TEST(counter->loads == routed, boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(routing_takes_top_k_of_raw_logits_then_softmax_over_k) {
  vector<double> logits(5);
  logits << 0.5, 3.0, -1.0, 3.0, 2.0;
  const mla::ref::moe_route r = mla::ref::route_top_k(logits, 3);
  BOOST_TEST(r.experts == (std::vector<int>{1, 3, 4}), boost::test_tools::per_element());  // ties: lower id first
  const double d = 2 * std::exp(3.0) + std::exp(2.0);
  BOOST_TEST(r.weights[0] == std::exp(3.0) / d, boost::test_tools::tolerance(1e-15));
  BOOST_TEST(r.weights[2] == std::exp(2.0) / d, boost::test_tools::tolerance(1e-15));
  mla::test::expect_error([&] { (void)mla::ref::route_top_k(logits, 6); }, {"k = 6"});
}

BOOST_AUTO_TEST_CASE(gpt_oss_config_json_in_both_rope_forms) {
  const mla::model::gpt_oss_shape s = mla::model::gpt_oss_shape::gpt_oss_20b();
  const nlohmann::json j = nlohmann::json::parse(mla::model::gpt_oss_config_json(s).dump());
  BOOST_TEST(j["architectures"][0] == "GptOssForCausalLM");
  BOOST_TEST(j["layer_types"].size() == 24u);
  const mla::model::model_config c = mla::model::config_from_hf_json(j);
  BOOST_TEST(c.architecture == "gpt_oss");
  BOOST_TEST(c.n_layers == 24);
  BOOST_TEST(c.hidden == 2880);
  BOOST_TEST(c.n_heads == 64);
  BOOST_TEST(c.n_kv_heads == 8);
  BOOST_TEST(c.head_dim == 64);
  BOOST_TEST(c.intermediate == 2880);
  BOOST_TEST(c.vocab_size == 201088);
  BOOST_TEST(c.n_experts == 32);
  BOOST_TEST(c.experts_per_token == 4);
  BOOST_TEST(c.swiglu_limit == 7.0);
  BOOST_TEST((c.mlp == mla::model::mlp_kind::moe));
  BOOST_TEST(c.attention_bias);
  BOOST_TEST(c.attention_sinks);
  BOOST_TEST(!c.tied_embeddings);
  BOOST_TEST(c.eos_id == 200002);
  BOOST_TEST(c.context_length == 131072);
  for (int l = 0; l < 24; ++l) BOOST_TEST(c.layers[std::size_t(l)].sliding_window == (l % 2 == 0 ? 128 : 0));
  const mla::ref::rope_config want = mla::ref::rope_config::gpt_oss();
  auto same_rope = [&](const mla::ref::rope_config& r) {
    BOOST_TEST((r.scaling == mla::ref::rope_scaling::yarn));
    BOOST_TEST(r.dim == want.dim);
    BOOST_TEST(r.theta == want.theta);
    BOOST_TEST(r.factor == want.factor);
    BOOST_TEST(r.original_max_position == want.original_max_position);
    BOOST_TEST(r.beta_fast == want.beta_fast);
    BOOST_TEST(r.beta_slow == want.beta_slow);
    BOOST_TEST(r.truncate == want.truncate);
    BOOST_TEST(r.attention_factor == want.attention_factor);
  };
  same_rope(c.rope);

  // Newer transformers: rope_parameters with rope_theta inside; no layer_types -> even layers slide.
  nlohmann::json n = j;
  n["rope_parameters"] = n["rope_scaling"];
  n["rope_parameters"]["rope_theta"] = 150000.0;
  n.erase("rope_scaling");
  n.erase("rope_theta");
  n.erase("layer_types");
  const mla::model::model_config c2 = mla::model::config_from_hf_json(n);
  same_rope(c2.rope);
  for (int l = 0; l < 24; ++l)
    BOOST_TEST(c2.layers[std::size_t(l)].sliding_window == c.layers[std::size_t(l)].sliding_window);

  // Errors name the field.
  auto without = [&](const char* key) {
    nlohmann::json b = j;
    b.erase(key);
    return b;
  };
  mla::test::expect_error([&] { mla::model::config_from_hf_json(without("num_local_experts"), "cfg.json"); },
                          {"cfg.json", "num_local_experts"});
  mla::test::expect_error([&] { mla::model::config_from_hf_json(without("hidden_size")); }, {"hidden_size"});
  nlohmann::json bad = j;
  bad["rope_scaling"]["rope_type"] = "dynamic";
  mla::test::expect_error([&] { mla::model::config_from_hf_json(bad); }, {"rope_scaling", "rope_type", "dynamic"});
  bad = j;
  bad["layer_types"].erase(0);
  mla::test::expect_error([&] { mla::model::config_from_hf_json(bad); }, {"layer_types", "24"});
  bad = j;
  bad["layer_types"][3] = "chunked_attention";
  mla::test::expect_error([&] { mla::model::config_from_hf_json(bad); }, {"layer_types\"[3]", "chunked_attention"});
  bad = j;
  bad["num_attention_heads"] = "64";
  mla::test::expect_error([&] { mla::model::config_from_hf_json(bad); }, {"num_attention_heads", "integer"});
  bad = j;
  bad["rope_scaling"].erase("factor");
  mla::test::expect_error([&] { mla::model::config_from_hf_json(bad); }, {"rope_scaling", "factor"});
  bad = j;
  bad["model_type"] = "mixtral";
  mla::test::expect_error([&] { mla::model::config_from_hf_json(bad); }, {"model_type", "mixtral"});
}

BOOST_AUTO_TEST_CASE(llama_config_json) {
  // SmolLM2-135M's config.json fields.
  nlohmann::json j = {{"model_type", "llama"},     {"hidden_size", 576},
                      {"intermediate_size", 1536}, {"num_attention_heads", 9},
                      {"num_key_value_heads", 3},  {"num_hidden_layers", 30},
                      {"rms_norm_eps", 1e-5},      {"rope_theta", 100000},
                      {"rope_scaling", nullptr},   {"tie_word_embeddings", true},
                      {"vocab_size", 49152},       {"bos_token_id", 1},
                      {"eos_token_id", 2},         {"max_position_embeddings", 8192},
                      {"hidden_act", "silu"}};
  const mla::model::model_config c = mla::model::config_from_hf_json(j);
  BOOST_TEST(c.head_dim == 64);
  BOOST_TEST(c.n_kv_heads == 3);
  BOOST_TEST(c.tied_embeddings);
  BOOST_TEST((c.mlp == mla::model::mlp_kind::swiglu));
  BOOST_TEST((c.rope.scaling == mla::ref::rope_scaling::none));
  BOOST_TEST(c.rope.theta == 100000);
  BOOST_TEST(c.bos_id == 1);
  BOOST_TEST(c.eos_id == 2);
  BOOST_TEST(!c.attention_sinks);
  for (const auto& lc : c.layers) BOOST_TEST(lc.sliding_window == 0);

  nlohmann::json l3 = j;
  l3["head_dim"] = 128;
  l3["rope_scaling"] = {{"rope_type", "llama3"},
                        {"factor", 8.0},
                        {"low_freq_factor", 1.0},
                        {"high_freq_factor", 4.0},
                        {"original_max_position_embeddings", 8192}};
  l3["eos_token_id"] = {128001, 128008};
  const mla::model::model_config c3 = mla::model::config_from_hf_json(l3);
  BOOST_TEST(c3.head_dim == 128);
  BOOST_TEST((c3.rope.scaling == mla::ref::rope_scaling::llama3));
  BOOST_TEST(c3.rope.high_freq_factor == 4.0);
  BOOST_TEST(c3.eos_id == 128001);

  l3["rope_scaling"].erase("low_freq_factor");
  mla::test::expect_error([&] { mla::model::config_from_hf_json(l3); }, {"rope_scaling", "low_freq_factor"});
  nlohmann::json no_eps = j;
  no_eps.erase("rms_norm_eps");
  mla::test::expect_error([&] { mla::model::config_from_hf_json(no_eps); }, {"rms_norm_eps", "missing"});
}

BOOST_AUTO_TEST_CASE(tiny_checkpoint_round_trip) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::temp_dir dir("mla-gpt-oss-tiny");
    const mla::model::gpt_oss_shape s = mla::model::gpt_oss_shape::tiny();
    const int shards = mla::model::write_gpt_oss_checkpoint(dir.path(), s, seed, 1 << 20);
    BOOST_TEST_REQUIRE(shards >= 2);
    // Hub naming: model-00000-of-0000{n-1}.safetensors (formats.md §1.7).
    const std::string last = std::to_string(shards - 1);
    BOOST_TEST(fs::exists(dir.file("model-00000-of-0000" + last + ".safetensors")));
    BOOST_TEST(fs::exists(dir.file("model.safetensors.index.json")));

    // Tensors have the hub's names, dtypes and shapes.
    const auto ck = mla::io::safetensors_checkpoint::open(dir.path());
    const auto& gub = ck.tensor("model.layers.1.mlp.experts.gate_up_proj_blocks");
    BOOST_TEST((gub.type == mla::io::dtype::U8));
    BOOST_TEST(gub.shape == (std::vector<std::int64_t>{8, 256, 4, 16}), boost::test_tools::per_element());
    BOOST_TEST((ck.tensor("model.layers.1.self_attn.sinks").type == mla::io::dtype::BF16));
    BOOST_TEST(ck.size() == std::size_t(3 + 4 * 19));

    mla::model::loaded_model lm = mla::model::load_model(dir.path());
    // The generator writes a synthetic o200k-form tokenizer.json (gpt_oss_tokenizer_test.cpp checks it).
    BOOST_TEST(lm.has_tokenizer, lm.tokenizer_note);
    BOOST_TEST(lm.tokenizer.vocab_size() == 512u);
    const auto& m = lm.model;
    BOOST_TEST(m.config().architecture == "gpt_oss");
    BOOST_TEST(m.config().layers[0].sliding_window == 8);
    BOOST_TEST(m.config().layers[1].sliding_window == 0);

    // An expert expanded on demand equals the whole-tensor dequantisation of the raw bytes.
    const auto& gus = ck.tensor("model.layers.1.mlp.experts.gate_up_proj_scales");
    const std::vector<float> all = mla::io::dequantize_mxfp4(gub.shape, gub.bytes, gus.shape, gus.bytes, "gate_up");
    const auto& moe = m.weights().layers[1].moe;
    mla::ref::moe_expert<float> e5;
    moe.experts->load(5, e5);
    const long per_expert = 256L * 128;
    const Eigen::Map<const matrix<float>> want(all.data() + 5 * per_expert, 256, 128);
    BOOST_TEST((e5.w_gate_up == want));
    BOOST_TEST(e5.b_gate_up(7) ==
               mla::io::to_float(ck.tensor("model.layers.1.mlp.experts.gate_up_proj_bias"))[5 * 256 + 7]);
    BOOST_TEST(moe.swiglu_limit == 7.0);

    // Prefill and decode agree, over a context longer than the window (8).
    std::mt19937_64 rng(seed);
    std::vector<int> tokens(21);
    for (int& t : tokens) t = static_cast<int>(rng() % static_cast<std::uint64_t>(s.vocab_size));
    const matrix<float> prefill = m.forward(tokens);
    BOOST_TEST_REQUIRE(prefill.allFinite());
    auto session = m.new_session();
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      const mla::ref::row_vector<float> d = m.decode(session, tokens[t]);
      BOOST_TEST(mla::ref::relative_error(d, prefill.row(long(t))) <= 1e-5, "token " << t);
    }
    // Logits are not degenerate: the softmax is neither flat nor one-hot.
    const auto last_row = prefill.row(prefill.rows() - 1).cast<double>();
    const double spread = last_row.maxCoeff() - last_row.minCoeff();
    BOOST_TEST(spread > 2.0);
    BOOST_TEST(spread < 200.0);

    // The sliding window and the sinks both change the output (past the window).
    auto variant = [&](bool window, bool sinks) {
      mla::model::model_config c = m.config();
      mla::model::model_weights<float> w = m.weights();
      for (std::size_t l = 0; l < c.layers.size(); ++l) {
        if (!window) c.layers[l].sliding_window = 0, w.layers[l].gqa.attention.sliding_window = 0;
        if (!sinks) w.layers[l].gqa.sinks.resize(0);
      }
      if (!sinks) c.attention_sinks = false;
      return mla::model::decoder<float>(c, w).forward(tokens);
    };
    const matrix<float> no_window = variant(false, true), no_sinks = variant(true, false);
    BOOST_TEST(mla::ref::relative_error(no_window.topRows(8), prefill.topRows(8)) <= 1e-6);  // inside the window
    BOOST_TEST(mla::ref::relative_error(no_window.bottomRows(8), prefill.bottomRows(8)) > 1e-3);
    BOOST_TEST(mla::ref::relative_error(no_sinks, prefill) > 1e-3);

    // The same seed writes the same bytes.
    const mla::test::temp_dir again("mla-gpt-oss-again");
    mla::model::write_gpt_oss_checkpoint(again.path(), s, seed, 1 << 20);
    for (const auto& f : fs::directory_iterator(dir.path()))
      BOOST_TEST(mla::test::read_file(f.path()) == mla::test::read_file(again.file(f.path().filename().string())),
                 f.path().filename());
  }
}

BOOST_AUTO_TEST_CASE(checkpoint_errors_name_the_tensor) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::temp_dir dir("mla-gpt-oss-bad");
    mla::model::gpt_oss_shape s = mla::model::gpt_oss_shape::tiny();
    s.n_layers = 2;
    mla::model::write_gpt_oss_checkpoint(dir.path(), s, seed, 1 << 30);
    // A config that disagrees with the tensors: the error names the tensor and both shapes.
    nlohmann::json j = mla::test::read_json(dir.file("config.json"));
    j["num_local_experts"] = 4;
    mla::io::write_file_atomically(dir.file("config.json"), j.dump());
    mla::test::expect_error([&] { (void)mla::model::load_model(dir.path()); },
                            {"model.layers.0.mlp.router.weight", "[8, 128]", "[4, 128]"});
    // An unsupported tokenizer.json leaves the model loadable, with a note instead of a tokenizer.
    j["num_local_experts"] = 8;
    mla::io::write_file_atomically(dir.file("config.json"), j.dump());
    mla::io::write_file_atomically(dir.file("tokenizer.json"), std::string("{\"model\": {}}"));
    const mla::model::loaded_model lm = mla::model::load_model(dir.path());
    BOOST_TEST(!lm.has_tokenizer);
    BOOST_TEST(lm.tokenizer_note.find("not supported") != std::string::npos, lm.tokenizer_note);
    fs::remove(dir.file("config.json"));
    mla::test::expect_error([&] { (void)mla::model::load_model(dir.path()); }, {"config.json"});
  }
}

// A missing shard and an MXFP4 block tensor of the wrong shape: errors that name the file or the tensor.
BOOST_AUTO_TEST_CASE(checkpoint_errors_missing_shard_and_bad_mxfp4_blocks) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::temp_dir dir("mla-gpt-oss-bad-shards");
    mla::model::gpt_oss_shape s = mla::model::gpt_oss_shape::tiny();
    s.n_layers = 2;
    const int shards = mla::model::write_gpt_oss_checkpoint(dir.path(), s, seed, 1 << 18);
    BOOST_TEST_REQUIRE(shards >= 3);
    const nlohmann::json index = mla::test::read_json(dir.file("model.safetensors.index.json"));
    const std::string blocks = "model.layers.0.mlp.experts.gate_up_proj_blocks";
    const std::string blocks_shard = index["weight_map"][blocks].get<std::string>();
    // The shard rewritten with that tensor's last dimension (16 bytes per MXFP4 block) cut to 8.
    {
      const std::string path = dir.file(blocks_shard);
      const mla::io::safetensors_file f = mla::io::safetensors_file::open(path);
      mla::io::safetensors_writer w;
      for (const mla::io::tensor_view& t : f.tensors()) {
        if (t.name != blocks) {
          w.add_borrowed(t.name, t.type, t.shape, t.bytes);
          continue;
        }
        std::vector<std::int64_t> shape = t.shape;
        shape.back() /= 2;
        std::vector<std::uint8_t> half(t.bytes.data, t.bytes.data + t.bytes.size / 2);
        w.add(t.name, t.type, shape, std::move(half));
      }
      w.write(path + ".tmp");
      fs::rename(path + ".tmp", path);
    }
    mla::test::expect_error([&] { (void)mla::model::load_model(dir.path()); }, {blocks});
    // A shard the index names but the directory lacks.
    std::string other;
    for (const auto& kv : index["weight_map"].items())
      if (kv.value().get<std::string>() != blocks_shard) other = kv.value().get<std::string>();
    BOOST_TEST_REQUIRE(!other.empty());
    fs::remove(dir.file(other));
    mla::test::expect_error([&] { (void)mla::model::load_model(dir.path()); }, {other});
  }
}

BOOST_AUTO_TEST_SUITE_END()
