// The GGUF deepseek2 export against an independent implementation: llama.cpp (llama-cpp-python 0.3.36, F32 KV
// cache, tools/deepseek2_golden.py) ran the tiny deepseek2 GGUF that write_deepseek2_tiny writes for a fixed seed
// (deepseek2_tiny.hpp: 2 MLA layers, ranks 24 and 16 padded to 24, own latent norms, interleaved RoPE rows, the q
// scale fix). The test regenerates that file, checks that it hashes as the one llama.cpp read, and that the
// project's decoder gives llama.cpp's logits, relative error <= 1e-4 per position and identical top-1, in
// prefill, decode, and prefill-then-decode: both on the file read back (load_model) and on the in-memory model it
// was exported from (so the export means in llama.cpp what the converted model means in the project). Without
// the q scale fix or the RoPE row interleave the logits are far from llama.cpp's, so the golden sees both.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deepseek2_tiny.hpp"
#include "files.hpp"
#include "golden.hpp"
#include "json_file.hpp"
#include "mla/model/load.hpp"

namespace deepseek2_golden {
using mla::ref::matrix;

constexpr double tolerance = 1e-4;  // relative error per position, float32 on both sides

struct golden_model {
  nlohmann::json g = mla::test::read_json(MLA_DEEPSEEK2_GOLDEN);  // tools/deepseek2_golden.py
  mla::test::temp_dir dir{"mla-deepseek2-golden"};
  std::string path = dir.file("deepseek2-tiny.gguf");
  mla::test::deepseek2_tiny source = mla::test::write_deepseek2_tiny(path, g["seed"].get<std::uint64_t>());
  mla::model::loaded_model lm = mla::model::load_model(path);
  std::vector<int> tokens = g["tokens"].get<std::vector<int>>();
  std::vector<int> top1 = g["top1"].get<std::vector<int>>();
  matrix<float> want = mla::test::json_matrix(g["logits"]);
};

const golden_model& fixture() {
  static const golden_model m;
  return m;
}

// Per-position relative error <= tolerance and identical top-1.
void compare(const std::string& what, const matrix<float>& got, const golden_model& m) {
  mla::test::compare_logits(what, got, m.want, m.top1, tolerance, "llama.cpp");
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

}  // namespace deepseek2_golden

BOOST_AUTO_TEST_SUITE(model_deepseek2_golden)

using namespace deepseek2_golden;

BOOST_AUTO_TEST_CASE(regenerated_gguf_is_the_one_llama_cpp_read) {
  const golden_model& m = fixture();
  BOOST_TEST(mla::test::file_fnv1a64(m.path) == m.g["gguf_fnv1a64"].get<std::string>());
  const auto& c = m.lm.model.config();
  BOOST_TEST(c.n_layers == 2);
  BOOST_TEST(c.layers[0].latent_rank == 24);  // layer 1's 16 padded
  BOOST_TEST(m.want.cols() == c.vocab_size);
  BOOST_TEST(m.tokens.size() == 16u);
}

BOOST_AUTO_TEST_CASE(prefill_matches_llama_cpp) {
  const golden_model& m = fixture();
  compare("read-back prefill", m.lm.model.forward(m.tokens), m);
  const mla::model::decoder<float> src(m.source.cfg, m.source.w);
  compare("source-model prefill", src.forward(m.tokens), m);
}

BOOST_AUTO_TEST_CASE(decode_matches_llama_cpp) {
  const golden_model& m = fixture();
  compare_decode("read-back", m.lm.model, m);
  compare_decode("source-model", mla::model::decoder<float>(m.source.cfg, m.source.w), m);
}

// The golden sees the export's two conventions: the softmax scale (llama.cpp's 1/sqrt(d_n + d_R), which the q fix
// accounts for) and the RoPE pairing (llama.cpp rotates adjacent pairs of the interleaved rows).
BOOST_AUTO_TEST_CASE(golden_depends_on_q_scale_and_rope_interleave) {
  const golden_model& m = fixture();
  const int d = m.source.cfg.head_dim, dr = m.source.cfg.layers[0].rope_dim, H = m.source.cfg.n_heads;
  // The read-back model with the softmax scale of the source (as if the export had no q fix).
  mla::model::model_config c = m.lm.model.config();
  mla::model::model_weights<float> w = m.lm.model.weights();
  c.softmax_scale = 1.0 / std::sqrt(double(d));
  for (auto& lw : w.layers) lw.mla.attention.softmax_scale = c.softmax_scale;
  const double no_q_fix = mla::ref::relative_error(mla::model::decoder<float>(c, w).forward(m.tokens), m.want);
  // The read-back model with its RoPE rows left in the file's interleaved order (as if the export wrote NeoX rows).
  c = m.lm.model.config();
  w = m.lm.model.weights();
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
  const double neox_rows = mla::ref::relative_error(mla::model::decoder<float>(c, w).forward(m.tokens), m.want);
  BOOST_TEST_MESSAGE("without the q scale fix: " << no_q_fix << "; RoPE rows not de-interleaved: " << neox_rows);
  BOOST_TEST(no_q_fix > 1e-2);
  BOOST_TEST(neox_rows > 1e-2);
}

BOOST_AUTO_TEST_SUITE_END()
