// util::attention_summary: the line mla-eval prints about the model it loaded, on configs whose cache sizes are
// written out by hand here.
#include "mla/util/model_summary.hpp"

#include <boost/test/unit_test.hpp>
#include <string>

BOOST_AUTO_TEST_SUITE(model_summary)

namespace {
mla::model::model_config three_layers() {
  mla::model::model_config c;
  c.architecture = "llama";
  c.n_layers = 3;
  c.n_heads = 9;
  c.n_kv_heads = 3;
  c.head_dim = 64;
  c.layers.assign(3, mla::model::layer_config{});
  return c;
}
}  // namespace

BOOST_AUTO_TEST_CASE(gqa_and_mla_models) {
  mla::model::model_config c = three_layers();
  // 3 layers x 2 x 3 KV heads x 64 = 1152 elements, 4608 bytes.
  BOOST_TEST(mla::util::attention_summary(c) ==
             "GQA in all 3 layers, 9 heads / 3 KV heads x 64; KV cache 1152 elements = 4608 bytes per token "
             "(float32, all layers)");
  for (int l : {0, 2}) {
    auto& lc = c.layers[std::size_t(l)];
    lc.attention = mla::model::attention_kind::mla;
    lc.latent_rank = l == 0 ? 96 : 224;
    lc.rope_dim = 32;
  }
  // (96 + 32) + 384 + (224 + 32) = 768 elements, 3072 bytes; ranks 96 and 224, mean 160.
  BOOST_TEST(mla::util::attention_summary(c) ==
             "MLA in 2 of 3 layers (latent rank 96..224 (mean 160), d_R 32), GQA in 1 (3 KV heads), 9 heads x 64; "
             "KV cache 768 elements = 3072 bytes per token (float32, all layers)");
  c.layers[1] = c.layers[0];
  c.layers[1].sliding_window = 128;
  c.layers[2].latent_rank = 96;
  BOOST_TEST(mla::util::attention_summary(c) ==
             "MLA in 3 of 3 layers (latent rank 96, d_R 32), 9 heads x 64, 1 layers with a 128-token window; KV "
             "cache 384 elements = 1536 bytes per token (float32, all layers)");
}

BOOST_AUTO_TEST_SUITE_END()
