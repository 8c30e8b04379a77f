// GGUF deepseek2 export (llama.cpp's architecture for DeepSeek-V2/V3 with its MLA cache): a small random converted
// model (every layer MLA, ranks 12 and 8, decoupled RoPE of 8, untied head) exported with save_deepseek2_gguf and
// read back by the project's reader gives the in-memory model's logits (F32: float rounding; F16, Q8_0: measured
// bounds), and the DeepSeek-V3 export's read-back when the latent norm is the constant weight. The keys and shapes
// llama.cpp's loader reads are checked against values written out here from its loader (not from the writer).
#include "mla/model/deepseek2_gguf.hpp"

#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "files.hpp"
#include "mla/model/deepseek_v3.hpp"
#include "mla/model/load.hpp"
#include "random.hpp"

namespace {

namespace fs = std::filesystem;
using mla::ref::matrix;
using mla::ref::relative_error;
using mla::ref::vector;

constexpr int hidden = 64, heads = 4, d = 16, dr = 8, vocab = 97;

// A converted-model stand-in: every layer MLA (ranks 12 and 8), weights like a trained model's, an own latent norm
// with eps 1e-6 (the model's RMS eps is 1e-5) when `own_norm`. Layer 1's latent is small (RMS ~ 3e-3) so that the
// norm's eps matters.
struct random_mla_model {
  mla::model::model_config cfg;
  mla::model::model_weights<float> w;

  random_mla_model(std::mt19937_64& gen, bool own_norm) {
    const int ranks[2] = {12, 8};
    cfg.architecture = "llama";
    cfg.vocab_size = vocab;
    cfg.hidden = hidden;
    cfg.n_layers = 2;
    cfg.n_heads = cfg.n_kv_heads = heads;
    cfg.head_dim = d;
    cfg.intermediate = 2 * hidden;
    cfg.context_length = 512;
    cfg.rms_eps = 1e-5;
    cfg.rope.dim = dr;
    cfg.rope.theta = 10000;
    cfg.tied_embeddings = false;
    const double s_in = 1.0 / std::sqrt(double(hidden));
    w.embed = mla::test::randn<float>(gen, vocab, hidden, 1.0);
    w.lm_head = mla::test::randn<float>(gen, vocab, hidden, s_in);
    w.final_norm = (vector<float>::Ones(hidden) + mla::test::randn_vec<float>(gen, hidden, 0.2)).eval();
    std::uniform_real_distribution<double> u(0.5, 2.0);
    for (int l = 0; l < 2; ++l) {
      const int r = ranks[l];
      mla::model::layer_config lc;
      lc.attention = mla::model::attention_kind::mla;
      lc.latent_rank = r;
      lc.rope_dim = dr;
      cfg.layers.push_back(lc);
      mla::model::layer_weights<float> lw;
      lw.attn_norm = (vector<float>::Ones(hidden) + mla::test::randn_vec<float>(gen, hidden, 0.2)).eval();
      lw.mlp_norm = (vector<float>::Ones(hidden) + mla::test::randn_vec<float>(gen, hidden, 0.2)).eval();
      auto& m = lw.mla;
      m.hidden = hidden, m.n_heads = heads, m.nope_dim = d, m.rope_dim = dr, m.latent_rank = r, m.v_head_dim = d;
      m.wq = mla::test::randn<float>(gen, heads * (d + dr), hidden, s_in);
      m.w_dkv = mla::test::randn<float>(gen, r, hidden, l == 1 ? 3e-3 * s_in : s_in);
      m.w_kr = mla::test::randn<float>(gen, dr, hidden, s_in);
      m.w_uk = mla::test::randn<float>(gen, heads * d, r, l == 1 ? 1.0 : 1.0 / std::sqrt(double(r)));
      m.w_uv = mla::test::randn<float>(gen, heads * d, r, 1.0 / std::sqrt(double(r)));
      m.wo = mla::test::randn<float>(gen, hidden, heads * d, 1.0 / std::sqrt(double(heads * d)));
      if (own_norm) {
        m.latent_norm.resize(r);
        for (int i = 0; i < r; ++i) m.latent_norm[i] = static_cast<float>(u(gen));
        m.latent_norm_eps = 1e-6;
      }
      m.rope = cfg.rope;
      m.attention.softmax_scale = cfg.effective_softmax_scale();
      lw.mlp.w_gate = mla::test::randn<float>(gen, cfg.intermediate, hidden, s_in);
      lw.mlp.w_up = mla::test::randn<float>(gen, cfg.intermediate, hidden, s_in);
      lw.mlp.w_down = mla::test::randn<float>(gen, hidden, cfg.intermediate, 1.0 / std::sqrt(double(cfg.intermediate)));
      w.layers.push_back(std::move(lw));
    }
  }
};

std::vector<std::pair<std::string, mla::io::gguf_value>> tiny_tokenizer() {
  std::vector<std::string> tokens;
  for (int i = 0; i < vocab; ++i) tokens.push_back("t" + std::to_string(i));
  return {{"tokenizer.ggml.model", mla::io::gguf_value(std::string("gpt2"))},
          {"tokenizer.ggml.tokens", mla::io::gguf_value(tokens)},
          {"tokenizer.ggml.bos_token_id", mla::io::gguf_value(std::uint32_t{1})},
          {"tokenizer.chat_template", mla::io::gguf_value(std::string("{{ messages }}"))}};
}

std::vector<int> random_tokens(std::mt19937_64& gen, int n) {
  std::vector<int> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int>(gen() % vocab));
  return t;
}

mla::model::decoder<float> read_back(const std::string& path) {
  return mla::model::deepseek2_from_gguf(mla::io::gguf_file::open(path));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(model_deepseek2_gguf)

BOOST_AUTO_TEST_CASE(f32_export_has_llama_cpp_keys_and_gives_the_models_logits) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const random_mla_model rm(gen, true);
    const mla::test::temp_dir dir("mla-ds2-gguf");
    const std::string path = dir.file("m.gguf");
    mla::model::deepseek2_gguf_options opt;
    opt.name = "tiny";
    opt.tokenizer = tiny_tokenizer();
    const auto notes = mla::model::save_deepseek2_gguf(path, rm.cfg, rm.w, opt);
    BOOST_TEST(notes.size() == 1u);
    BOOST_TEST(dir.entries() == std::vector<std::string>{"m.gguf"}, boost::test_tools::per_element());

    const mla::io::gguf_file f = mla::io::gguf_file::open(path);
    // What llama.cpp's deepseek2 loader reads (src/models/deepseek2.cpp, src/llama-model.cpp), for this model.
    BOOST_TEST(f.get<std::string>("general.architecture") == "deepseek2");
    BOOST_TEST(f.get<std::string>("general.name") == "tiny");
    const std::pair<const char*, std::uint32_t> u32_keys[] = {{"block_count", 2},
                                                              {"context_length", 512},
                                                              {"embedding_length", hidden},
                                                              {"feed_forward_length", 128},
                                                              {"vocab_size", vocab},
                                                              {"attention.head_count", heads},
                                                              {"attention.head_count_kv", 1},
                                                              {"attention.key_length", 12 + dr},
                                                              {"attention.value_length", 12},
                                                              {"attention.key_length_mla", d + dr},
                                                              {"attention.value_length_mla", d},
                                                              {"attention.q_lora_rank", 0},
                                                              {"attention.kv_lora_rank", 12},
                                                              {"leading_dense_block_count", 2},
                                                              {"expert_feed_forward_length", 128},
                                                              {"expert_shared_count", 0},
                                                              {"rope.dimension_count", dr}};
    for (const auto& [k, v] : u32_keys) BOOST_TEST(f.get<std::uint32_t>(std::string("deepseek2.") + k) == v, k);
    BOOST_TEST(f.get<float>("deepseek2.attention.layer_norm_rms_epsilon") == 1e-5f);
    BOOST_TEST(f.get<float>("deepseek2.rope.freq_base") == 10000.0f);
    BOOST_TEST(f.get<std::vector<std::string>>("tokenizer.ggml.tokens").size() == std::size_t(vocab));
    BOOST_TEST(f.get<std::string>("tokenizer.chat_template") == "{{ messages }}");
    BOOST_TEST(f.get<std::uint32_t>("tokenizer.ggml.bos_token_id") == 1u);
    // Shapes in ggml order, as llama.cpp's create_tensor asks them.
    const std::pair<const char*, std::vector<std::uint64_t>> shapes[] = {
        {"token_embd.weight", {hidden, vocab}},
        {"output.weight", {hidden, vocab}},
        {"output_norm.weight", {hidden}},
        {"blk.1.attn_q.weight", {hidden, heads * (d + dr)}},
        {"blk.1.attn_kv_a_mqa.weight", {hidden, 12 + dr}},
        {"blk.1.attn_kv_a_norm.weight", {12}},
        {"blk.1.attn_k_b.weight", {d, 12, heads}},
        {"blk.1.attn_v_b.weight", {12, d, heads}},
        {"blk.1.attn_output.weight", {heads * d, hidden}},
        {"blk.0.ffn_gate.weight", {hidden, 128}},
        {"blk.0.ffn_down.weight", {128, hidden}}};
    for (const auto& [name, ne] : shapes) {
      const auto& t = f.tensor(name);
      BOOST_TEST_CONTEXT(name) {
        BOOST_TEST(t.n_dims == ne.size());
        for (std::size_t i = 0; i < ne.size(); ++i) BOOST_TEST(t.ne[i] == ne[i]);
        BOOST_TEST((t.type == mla::io::ggml_type::F32));
      }
    }
    // attn_k_b of head h holds W_uk^T: element (i, j, h) = w_uk(h*d + i, j) (j < r, zero for the padding).
    const auto kb = f.dequantize("blk.1.attn_k_b.weight");
    const auto& uk = rm.w.layers[1].mla.w_uk;
    BOOST_TEST(kb[(std::size_t(2) * 12 + 5) * d + 3] == uk(2 * d + 3, 5));
    BOOST_TEST(kb[(std::size_t(2) * 12 + 10) * d + 3] == 0.0f);

    const std::vector<int> tokens = random_tokens(gen, 31);
    const matrix<float> want = mla::model::decoder<float>(rm.cfg, rm.w).forward(tokens);
    const mla::model::decoder<float> back = read_back(path);
    BOOST_TEST(back.config().layers[1].latent_rank == 12);
    BOOST_TEST(back.config().rms_eps == double(1e-5f));
    BOOST_TEST(relative_error(back.forward(tokens), want) <= 1e-5);
    // The check can fail: the norm's eps matters here (the scale that keeps it is not a no-op).
    mla::model::model_weights<float> other_eps = rm.w;
    for (auto& lw : other_eps.layers) lw.mla.latent_norm_eps = 1e-5;
    BOOST_TEST(relative_error(mla::model::decoder<float>(rm.cfg, other_eps).forward(tokens), want) > 1e-4);
    // The absorbed decode of the read-back agrees with its prefill.
    auto s = back.new_session();
    matrix<float> stepped(want.rows(), want.cols());
    for (std::size_t t = 0; t < tokens.size(); ++t) stepped.row(Eigen::Index(t)) = back.decode(s, tokens[t]);
    BOOST_TEST(relative_error(stepped, want) <= 1e-5);
  }
}

BOOST_AUTO_TEST_CASE(constant_latent_norm_matches_the_deepseek_v3_export) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    random_mla_model rm(gen, false);
    rm.cfg.tied_embeddings = true;
    rm.w.lm_head.resize(0, 0);
    const mla::test::temp_dir dir("mla-ds2-gguf");
    mla::model::deepseek2_gguf_options opt;
    opt.tokenizer = tiny_tokenizer();
    opt.latent_rms = {0.8, 3e-3};
    mla::model::save_deepseek2_gguf(dir.file("m.gguf"), rm.cfg, rm.w, opt);
    mla::model::deepseek_export_options ds;
    ds.latent_rms = opt.latent_rms;
    mla::model::save_deepseek_v3(dir.file("ds"), rm.cfg, rm.w, ds);
    const mla::io::gguf_file f = mla::io::gguf_file::open(dir.file("m.gguf"));
    BOOST_TEST(!f.find_tensor("output.weight"));  // tied: llama.cpp falls back to token_embd
    const std::vector<int> tokens = random_tokens(gen, 27);
    const matrix<float> from_ds = mla::model::load_deepseek_v3(dir.file("ds")).forward(tokens);
    BOOST_TEST(relative_error(read_back(dir.file("m.gguf")).forward(tokens), from_ds) <= 1e-5);
    // Not the converted model (the constant norm is the approximation the DeepSeek-V3 export documents).
    BOOST_TEST(relative_error(mla::model::decoder<float>(rm.cfg, rm.w).forward(tokens), from_ds) > 1e-4);
  }
}

BOOST_AUTO_TEST_CASE(f16_and_q8_0_exports_stay_within_measured_bounds) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const random_mla_model rm(gen, true);
    const mla::test::temp_dir dir("mla-ds2-gguf");
    const std::vector<int> tokens = random_tokens(gen, 31);
    const matrix<float> want = mla::model::decoder<float>(rm.cfg, rm.w).forward(tokens);
    // Measured on 20 seeds: at most 1.0e-3 (F16) and 2.5e-2 (Q8_0: ~0.5 % per weight, over ~10 products)
    // relative error of the logits; the bounds are 2.5x that.
    const std::pair<mla::io::ggml_type, double> cases[] = {{mla::io::ggml_type::F16, 2.5e-3},
                                                           {mla::io::ggml_type::Q8_0, 6e-2}};
    for (const auto& [type, bound] : cases) {
      BOOST_TEST_CONTEXT(mla::io::ggml_type_name(type)) {
        mla::model::deepseek2_gguf_options opt;
        opt.tokenizer = tiny_tokenizer();
        opt.type = type;
        const std::string path = dir.file(mla::io::ggml_type_name(type) + ".gguf");
        const auto notes = mla::model::save_deepseek2_gguf(path, rm.cfg, rm.w, opt);
        const mla::io::gguf_file f = mla::io::gguf_file::open(path);
        BOOST_TEST((f.tensor("blk.0.attn_q.weight").type == type));
        BOOST_TEST((f.tensor("blk.0.attn_norm.weight").type == mla::io::ggml_type::F32));
        if (type == mla::io::ggml_type::Q8_0) {
          // d = 16 and r = 12 rows: attn_k_b / attn_v_b cannot be Q8_0 and are written F16, as the notes say.
          BOOST_TEST((f.tensor("blk.0.attn_k_b.weight").type == mla::io::ggml_type::F16));
          BOOST_TEST(notes.size() == 2u);
          BOOST_TEST(notes.back().find("blk.0.attn_k_b.weight") != std::string::npos);
          BOOST_TEST(f.get<std::uint32_t>("general.file_type") == 7u);
        }
        const double err = relative_error(read_back(path).forward(tokens), want);
        BOOST_TEST_MESSAGE(mla::io::ggml_type_name(type) << " export: logits rel. error " << err);
        BOOST_TEST(err <= bound);
        BOOST_TEST(err > 1e-7);  // it is quantised
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(refusals_name_what_is_wrong) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    const random_mla_model rm(gen, true);
    const mla::test::temp_dir dir("mla-ds2-gguf");
    const std::string path = dir.file("x.gguf");
    auto refuse = [&](const mla::model::model_config& c, const mla::model::model_weights<float>& w,
                      std::initializer_list<std::string> parts, mla::model::deepseek2_gguf_options opt = {}) {
      mla::test::expect_error([&] { mla::model::save_deepseek2_gguf(path, c, w, opt); }, parts);
      BOOST_TEST(!fs::exists(path));
    };
    {
      auto c = rm.cfg;
      c.layers[1].attention = mla::model::attention_kind::gqa;
      refuse(c, rm.w, {"layer 1", "is GQA", "GGUF deepseek2"});
    }
    {
      auto w = rm.w;
      w.layers[0].mla.bo = vector<float>::Zero(hidden);
      refuse(rm.cfg, w, {"layer 0", "biases", "GGUF deepseek2"});
    }
    {
      auto w = rm.w;
      w.layers[1].mla.sinks = vector<float>::Zero(heads);
      refuse(rm.cfg, w, {"layer 1", "sinks / sliding windows"});
    }
    {
      auto w = rm.w;
      w.layers[0].mla.rope.inv_freq_override.assign(dr / 2, 0.5);
      refuse(rm.cfg, w, {"layer 0", "non-standard frequencies"});
    }
    {
      auto c = rm.cfg;
      c.rope.scaling = mla::ref::rope_scaling::yarn;
      refuse(c, rm.w, {"RoPE scaling"});
    }
    {
      auto w = rm.w;
      w.layers[1].mla.latent_norm.resize(0);
      refuse(rm.cfg, w, {"layer 1", "latent_rms"});
    }
    {
      mla::model::deepseek2_gguf_options opt;
      opt.type = mla::io::ggml_type::Q4_K;
      refuse(rm.cfg, rm.w, {"Q4_K", "f32, f16 or q8_0"}, opt);
    }
    mla::model::save_deepseek2_gguf(path, rm.cfg, rm.w, {});
    mla::test::expect_error([&] { mla::model::save_deepseek2_gguf(path, rm.cfg, rm.w, {}); }, {path});
    // The reader names the key it cannot read.
    mla::io::gguf_writer g;
    const mla::io::gguf_file good = mla::io::gguf_file::open(path);
    for (const auto& kv : good.metadata()) g.set(kv.first, kv.second);
    g.set("deepseek2.attention.q_lora_rank", std::uint32_t{64});
    g.write(dir.file("lora.gguf"));
    mla::test::expect_error([&] { read_back(dir.file("lora.gguf")); }, {"lora.gguf", "q_lora_rank", "must be 0"});
  }
}

BOOST_AUTO_TEST_SUITE_END()
