// The DeepSeek-V3 export against an independent implementation: stock transformers DeepseekV3ForCausalLM (torch
// 2.15.0, transformers 5.25.0, float32, eager attention; tools/transformers_deepseek_v3_golden.py) ran the tiny
// export that write_deepseek_v3_tiny writes for a fixed seed (deepseek_v3_tiny.hpp: 2 MLA layers, ranks 24 and 16
// padded to 24, own latent norms rescaled for the padding, interleaved RoPE rows, the q scale fix). The test
// regenerates that directory, checks that its files hash as the ones transformers read, and that the project's
// decoder gives transformers' logits, relative error <= 1e-4 per position and identical top-1, in prefill, decode
// and prefill-then-decode: both on the directory read back (load_model, i.e. load_deepseek_v3) and on the
// in-memory model it was exported from (so the export means in transformers what the converted model means in the
// project). The project's tokenizer read from the export encodes the golden's text as AutoTokenizer did.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deepseek_v3_tiny.hpp"
#include "files.hpp"
#include "golden.hpp"
#include "json_file.hpp"
#include "mla/model/load.hpp"

namespace deepseek_v3_golden {
using mla::ref::matrix;

constexpr double tolerance = 1e-4;  // relative error per position, float32 on both sides

struct golden_model {
  nlohmann::json g = mla::test::read_json(MLA_DEEPSEEK_V3_GOLDEN);  // tools/transformers_deepseek_v3_golden.py
  mla::test::temp_dir dir{"mla-deepseek-v3-golden"};
  std::string path = dir.file("deepseek-v3-tiny");
  mla::test::deepseek2_tiny source = mla::test::write_deepseek_v3_tiny(path, g["seed"].get<std::uint64_t>());
  mla::model::loaded_model lm = mla::model::load_model(path);
  std::vector<int> tokens = g["tokens"].get<std::vector<int>>();
  std::vector<int> top1 = g["top1"].get<std::vector<int>>();
  matrix<float> want = mla::test::json_matrix(g["logits"]);

  // The read-back model's config and weights, for the variants below.
  mla::model::decoder<float> variant(const std::function<void(mla::model::model_config&,
                                                              mla::model::model_weights<float>&)>& change) const {
    mla::model::model_config c = lm.model.config();
    mla::model::model_weights<float> w = lm.model.weights();
    change(c, w);
    return mla::model::decoder<float>(c, std::move(w));
  }
};

const golden_model& fixture() {
  static const golden_model m;
  return m;
}

// Per-position relative error <= tolerance and identical top-1.
void compare(const std::string& what, const matrix<float>& got, const golden_model& m) {
  mla::test::compare_logits(what, got, m.want, m.top1, tolerance, "transformers");
}

// Token by token from an empty cache, and a prefill of half then decode.
void compare_decode(const std::string& what, const mla::model::decoder<float>& d, const golden_model& m) {
  auto s = d.new_session();
  matrix<float> got(m.want.rows(), m.want.cols());
  for (std::size_t t = 0; t < m.tokens.size(); ++t) got.row(Eigen::Index(t)) = d.decode(s, m.tokens[t]);
  compare(what + " decode", got, m);
  const std::size_t split = m.tokens.size() / 2;
  auto s2 = d.new_session();
  matrix<float> mixed(m.want.rows(), m.want.cols());
  mixed.topRows(Eigen::Index(split)) =
      d.forward(s2, std::vector<int>(m.tokens.begin(), m.tokens.begin() + std::ptrdiff_t(split)));
  for (std::size_t t = split; t < m.tokens.size(); ++t) mixed.row(Eigen::Index(t)) = d.decode(s2, m.tokens[t]);
  compare(what + " prefill " + std::to_string(split) + " + decode", mixed, m);
}

}  // namespace deepseek_v3_golden

BOOST_AUTO_TEST_SUITE(model_deepseek_v3_golden)

using namespace deepseek_v3_golden;

BOOST_AUTO_TEST_CASE(regenerated_export_is_the_one_transformers_read) {
  const golden_model& m = fixture();
  for (const auto& [name, digest] : m.g["files_fnv1a64"].items())
    BOOST_TEST(mla::test::file_fnv1a64(m.dir.file("deepseek-v3-tiny/" + name)) == digest.get<std::string>(),
               name);
  const auto& c = m.lm.model.config();
  BOOST_TEST(c.n_layers == 2);
  BOOST_TEST(c.layers[0].latent_rank == 24);  // layer 1's 16 padded
  BOOST_TEST(m.want.cols() == c.vocab_size);
  BOOST_TEST(m.tokens.size() == 16u);
  BOOST_TEST(m.g["model_class"].get<std::string>() == "DeepseekV3ForCausalLM");
}

BOOST_AUTO_TEST_CASE(prefill_matches_transformers) {
  const golden_model& m = fixture();
  compare("read-back prefill", m.lm.model.forward(m.tokens), m);
  const mla::model::decoder<float> src(m.source.cfg, m.source.w);
  compare("source-model prefill", src.forward(m.tokens), m);
}

BOOST_AUTO_TEST_CASE(decode_matches_transformers) {
  const golden_model& m = fixture();
  compare_decode("read-back", m.lm.model, m);
  compare_decode("source-model", mla::model::decoder<float>(m.source.cfg, m.source.w), m);
}

// The export's tokenizer.json means in transformers (AutoTokenizer, default special tokens) what it means in the
// project (mla-eval's default: the vocabulary's own BOS/EOS handling).
BOOST_AUTO_TEST_CASE(tokenizer_matches_transformers) {
  const golden_model& m = fixture();
  BOOST_TEST_REQUIRE(m.lm.has_tokenizer);
  const auto ids = m.lm.tokenizer.encode(m.g["text"].get<std::string>());
  const std::vector<int> got(ids.begin(), ids.end()), want = m.g["text_ids"].get<std::vector<int>>();
  BOOST_TEST(got == want, boost::test_tools::per_element());
}

// The golden sees the export's three conventions: the softmax scale (DeepSeek's 1/sqrt(d_n + d_R), which the q fix
// accounts for), the RoPE pairing (DeepSeek rotates adjacent pairs of the interleaved rows when rope_interleave is
// true) and the latent norm (kv_a_layernorm: the layers' own weights, rescaled by sqrt(r / r_max) in the padded
// layer). Each variant of the read-back model is what the project would compute had the export got one wrong.
BOOST_AUTO_TEST_CASE(golden_depends_on_q_scale_rope_interleave_and_latent_norm) {
  const golden_model& m = fixture();
  const int d = m.source.cfg.head_dim, dr = m.source.cfg.layers[0].rope_dim, H = m.source.cfg.n_heads;
  using cfg = mla::model::model_config;
  using wts = mla::model::model_weights<float>;
  const auto err = [&](const mla::model::decoder<float>& v) {
    return mla::ref::relative_error(v.forward(m.tokens), m.want);
  };
  const double no_q_fix = err(m.variant([&](cfg& c, wts& w) {
    c.softmax_scale = 1.0 / std::sqrt(double(d));  // the source's scale, as if the export had no q fix
    for (auto& lw : w.layers) lw.mla.attention.softmax_scale = c.softmax_scale;
  }));
  const double neox_rows = err(m.variant([&](cfg&, wts& w) {  // as if the export wrote the NeoX rows unpermuted
    for (auto& lw : w.layers) {
      auto& ml = lw.mla;
      const matrix<float> q = ml.wq, kr = ml.w_kr;
      for (int j = 0; j < dr; ++j) {
        const int n = mla::model::detail::neox_row_of_interleaved(j, dr);
        for (int h = 0; h < H; ++h)
          ml.wq.row(Eigen::Index(h) * (d + dr) + d + j) = q.row(Eigen::Index(h) * (d + dr) + d + n);
        ml.w_kr.row(j) = kr.row(n);
      }
    }
  }));
  const double no_norm = err(m.variant([](cfg&, wts& w) {  // as if the export had dropped kv_a_layernorm
    for (auto& lw : w.layers) lw.mla.latent_norm = mla::ref::vector<float>();
  }));
  const double unpadded_norm = err(m.variant([&](cfg&, wts& w) {  // layer 1's own weight without sqrt(16 / 24)
    auto& ml = w.layers[1].mla;
    ml.latent_norm *= float(std::sqrt(24.0 / 16.0));
  }));
  BOOST_TEST_MESSAGE("without the q scale fix: " << no_q_fix << "; RoPE rows not interleaved: " << neox_rows
                                                 << "; no latent norm: " << no_norm
                                                 << "; latent norm not rescaled for the padding: " << unpadded_norm);
  BOOST_TEST(no_q_fix > 1e-2);
  BOOST_TEST(neox_rows > 1e-2);
  BOOST_TEST(no_norm > 1e-2);
  BOOST_TEST(unpadded_norm > 1e-2);
}

BOOST_AUTO_TEST_SUITE_END()
