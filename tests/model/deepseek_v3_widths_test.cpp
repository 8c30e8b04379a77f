// The DeepSeek-V3 export at vLLM's widths (deepseek_export_options::vllm_widths, mla-convert --export-width vllm):
// the latent zero-padded to 256 and the RoPE key from d_R = 8 to 64, its pairs on the 64-wide ladder's equal
// frequencies. An exact rewrite: read back by the project's DeepSeek-V3 reader (which builds a rope_dim 64 layer
// on the standard ladder), it gives the logits of the unpadded export and of the in-memory model, within float
// rounding; the config and tensor shapes are the ones vLLM's MLA backends accept (kv_lora_rank 256 + 64 = 320).
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deepseek2_tiny.hpp"
#include "files.hpp"
#include "json_file.hpp"
#include "mla/model/load.hpp"
#include "seed.hpp"

BOOST_AUTO_TEST_SUITE(model_deepseek_v3_widths)

BOOST_AUTO_TEST_CASE(vllm_widths_are_an_exact_rewrite) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    mla::test::temp_dir dir{"mla-deepseek-v3-widths"};
    const mla::test::deepseek2_tiny t = mla::test::write_deepseek2_tiny(dir.file("tiny.gguf"), seed);
    mla::model::deepseek_export_options opt;  // the layers' own latent norms
    mla::model::save_deepseek_v3(dir.file("plain"), t.cfg, t.w, opt);
    opt.vllm_widths = true;
    mla::model::save_deepseek_v3(dir.file("vllm"), t.cfg, t.w, opt);

    const nlohmann::json c = mla::test::read_json(dir.file("vllm/config.json"));
    BOOST_TEST(c["kv_lora_rank"].get<int>() == 256);  // ranks 24 and 16 -> 256
    BOOST_TEST(c["qk_rope_head_dim"].get<int>() == 64);
    BOOST_TEST(c["qk_head_dim"].get<int>() == t.cfg.head_dim + 64);
    BOOST_TEST(c["mla_export"]["vllm_widths"]["cached_per_token"].get<int>() == 320);
    BOOST_TEST(c["mla_export"]["vllm_widths"]["converted_per_token"].get<int>() == 24 + 8);

    const mla::model::loaded_model plain = mla::model::load_model(dir.file("plain"));
    const mla::model::loaded_model vllm = mla::model::load_model(dir.file("vllm"));
    const auto& lc = vllm.model.config().layers.at(0);
    BOOST_TEST(lc.latent_rank == 256);
    BOOST_TEST(lc.rope_dim == 64);

    std::vector<int> ids;
    mla::test::detail::tiny_rng rng{seed ^ 0x9E3779B97F4A7C15ull};
    for (int i = 0; i < 24; ++i) ids.push_back(int(rng.uniform() * t.cfg.vocab_size));
    const mla::model::decoder<float> source(t.cfg, t.w);
    const mla::ref::matrix<float> want = source.forward(ids);
    const mla::ref::matrix<float> got_plain = plain.model.forward(ids);
    const mla::ref::matrix<float> got_vllm = vllm.model.forward(ids);
    // float32 rounding only: the widened rows are scaled by sqrt(256 / r) and the sums run over more (zero)
    // terms; 160 seeds gave at most 9e-6 in a release build and 2e-5 under ASan (-O1). A pair on the wrong rung
    // of the ladder or a missing norm scale gives errors of order 1e-1.
    constexpr double tol = 1e-4;
    double worst = 0;
    for (Eigen::Index p = 0; p < want.rows(); ++p) {
      const double e = mla::ref::relative_error(got_vllm.row(p), want.row(p));
      worst = std::max(worst, e);
      BOOST_TEST(e <= tol, "position " << p << ": vLLM-width export vs the model " << e);
      BOOST_TEST(mla::ref::relative_error(got_vllm.row(p), got_plain.row(p)) <= tol);
    }
    BOOST_TEST_MESSAGE("vLLM-width export vs the converted model: worst relative error " << worst);

    // Decoding through the padded cache gives the same rows.
    auto s = vllm.model.new_session();
    for (std::size_t i = 0; i < ids.size(); ++i)
      BOOST_TEST(mla::ref::relative_error(vllm.model.decode(s, ids[i]), want.row(Eigen::Index(i))) <= tol);
  }
}

// A d_R that does not divide 64 has no place on vLLM's ladder; the refusal names the width.
BOOST_AUTO_TEST_CASE(vllm_widths_refuse_what_they_cannot_place) {
  mla::model::deepseek_export_options opt;
  opt.vllm_widths = true;
  BOOST_CHECK_EXCEPTION(mla::model::export_widths(24, 12, opt, "t"), std::exception, [](const std::exception& e) {
    return std::string(e.what()).find("d_R = 12 does not divide 64") != std::string::npos;
  });
  BOOST_CHECK_EXCEPTION(mla::model::export_widths(600, 32, opt, "t"), std::exception, [](const std::exception& e) {
    return std::string(e.what()).find("600, above 512") != std::string::npos;
  });
  BOOST_TEST(mla::model::export_widths(257, 32, opt, "t").latent == 512);
  BOOST_TEST(mla::model::export_widths(256, 64, opt, "t").latent == 256);
  opt.vllm_widths = false;
  BOOST_TEST(mla::model::export_widths(24, 8, opt, "t").latent == 24);
  BOOST_TEST(mla::model::export_widths(24, 8, opt, "t").rope == 8);
}

BOOST_AUTO_TEST_SUITE_END()
