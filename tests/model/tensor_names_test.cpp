// model/tensor_names.hpp: every role has its GGUF and Hugging Face names as llama.cpp and transformers spell
// them (written out here independently of the table), with the layer prefixes; a role a format lacks, or a
// layer index where none belongs, is refused.
#include "mla/model/tensor_names.hpp"

#include <boost/test/unit_test.hpp>

#include <set>
#include <string>

#include "expect_error.hpp"

BOOST_AUTO_TEST_SUITE(model_tensor_names)

BOOST_AUTO_TEST_CASE(names_as_the_formats_spell_them) {
  using mla::model::gguf_tensor_name;
  using mla::model::hf_tensor_name;
  using R = mla::model::tensor_role;
  BOOST_TEST(gguf_tensor_name(R::embed) == "token_embd.weight");
  BOOST_TEST(hf_tensor_name(R::embed) == "model.embed_tokens.weight");
  BOOST_TEST(gguf_tensor_name(R::lm_head) == "output.weight");
  BOOST_TEST(hf_tensor_name(R::lm_head) == "lm_head.weight");
  BOOST_TEST(gguf_tensor_name(R::final_norm) == "output_norm.weight");
  BOOST_TEST(hf_tensor_name(R::final_norm) == "model.norm.weight");
  BOOST_TEST(gguf_tensor_name(R::attn_norm, 0) == "blk.0.attn_norm.weight");
  BOOST_TEST(hf_tensor_name(R::attn_norm, 0) == "model.layers.0.input_layernorm.weight");
  BOOST_TEST(gguf_tensor_name(R::mlp_norm, 11) == "blk.11.ffn_norm.weight");
  BOOST_TEST(hf_tensor_name(R::mlp_norm, 11) == "model.layers.11.post_attention_layernorm.weight");
  BOOST_TEST(gguf_tensor_name(R::q_proj, 3) == "blk.3.attn_q.weight");
  BOOST_TEST(hf_tensor_name(R::q_proj, 3) == "model.layers.3.self_attn.q_proj.weight");
  BOOST_TEST(gguf_tensor_name(R::k_bias, 3) == "blk.3.attn_k.bias");
  BOOST_TEST(hf_tensor_name(R::k_bias, 3) == "model.layers.3.self_attn.k_proj.bias");
  BOOST_TEST(gguf_tensor_name(R::o_proj, 29) == "blk.29.attn_output.weight");
  BOOST_TEST(hf_tensor_name(R::o_bias, 29) == "model.layers.29.self_attn.o_proj.bias");
  BOOST_TEST(gguf_tensor_name(R::gate_proj, 1) == "blk.1.ffn_gate.weight");
  BOOST_TEST(gguf_tensor_name(R::up_proj, 1) == "blk.1.ffn_up.weight");
  BOOST_TEST(gguf_tensor_name(R::down_proj, 1) == "blk.1.ffn_down.weight");
  BOOST_TEST(hf_tensor_name(R::down_proj, 1) == "model.layers.1.mlp.down_proj.weight");
  BOOST_TEST(hf_tensor_name(R::sinks, 2) == "model.layers.2.self_attn.sinks");
  BOOST_TEST(hf_tensor_name(R::router_bias, 2) == "model.layers.2.mlp.router.bias");
  BOOST_TEST(hf_tensor_name(R::experts, 2) == "model.layers.2.mlp.experts.");
}

BOOST_AUTO_TEST_CASE(one_entry_per_role_and_distinct_names) {
  std::set<int> roles;
  std::set<std::string> gguf, hf;
  for (const auto& e : mla::model::tensor_names) {
    BOOST_TEST(roles.insert(static_cast<int>(e.role)).second, "role " << static_cast<int>(e.role) << " twice");
    if (e.gguf[0] != '\0') BOOST_TEST(gguf.insert(e.gguf).second, e.gguf);
    BOOST_TEST(hf.insert(e.hf).second, e.hf);
  }
  BOOST_TEST(roles.size() == static_cast<std::size_t>(mla::model::tensor_role::experts) + 1);
}

BOOST_AUTO_TEST_CASE(refusals) {
  using R = mla::model::tensor_role;
  mla::test::expect_error([] { (void)mla::model::gguf_tensor_name(R::sinks, 0); }, {"GGUF", "self_attn.sinks"});
  mla::test::expect_error([] { (void)mla::model::hf_tensor_name(R::q_proj); }, {"q_proj", "needs a layer index"});
  mla::test::expect_error([] { (void)mla::model::gguf_tensor_name(R::embed, 0); }, {"token_embd", "not per layer"});
}

BOOST_AUTO_TEST_SUITE_END()
