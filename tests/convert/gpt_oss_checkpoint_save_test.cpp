// Saving gpt-oss models (save_checkpoint.hpp): a generated tiny gpt-oss checkpoint (sinks, biases, YaRN, window 8
// on even layers, MXFP4 MoE) converted under a KV budget (full-attention layers -> MLA, sliding layers stay GQA)
// is saved and read back with load_model(dir): the logits equal the in-memory converted model's, decode equals
// prefill on the reloaded model, the MXFP4 expert tensors are the source's bytes, the tokenizer is copied, and a
// failed save leaves nothing behind. The unconverted model round-trips too.
// It tests a model/ header but lives in tests/convert: its input is a model converted by convert::convert_model.
#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "convert_test_support.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/io/safetensors.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/gpt_oss_checkpoint.hpp"
#include "mla/model/load.hpp"
#include "mla/model/save_checkpoint.hpp"
#include "mla/reference/moe.hpp"

namespace {

namespace gsv_fs = std::filesystem;

// A fresh scratch directory, removed with its contents on destruction.
class gsv_scratch_dir {
 public:
  explicit gsv_scratch_dir(std::uint64_t salt) {
    std::string tmpl =
        (gsv_fs::temp_directory_path() / ("mla-gpt-oss-save-" + std::to_string(salt % 100000) + "-XXXXXX")).string();
    BOOST_TEST_REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  gsv_scratch_dir(const gsv_scratch_dir&) = delete;
  gsv_scratch_dir& operator=(const gsv_scratch_dir&) = delete;
  ~gsv_scratch_dir() {
    std::error_code ec;
    gsv_fs::remove_all(path_, ec);
  }
  const gsv_fs::path& path() const { return path_; }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : gsv_fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  gsv_fs::path path_;
};

std::string gsv_read_all(const gsv_fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  BOOST_TEST_REQUIRE(static_cast<bool>(in), "cannot open " << p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Calls f, which must throw mla::error whose message contains every one of `parts`.
template <class F>
void gsv_expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    BOOST_ERROR("expected an mla::error containing '" << parts.front() << "'");
  } catch (const mla::error& e) {
    const std::string what = e.what();
    for (const std::string& p : parts) BOOST_TEST(what.find(p) != std::string::npos, "'" << p << "' in: " << what);
  }
}

// The six MXFP4 expert tensors of a gpt-oss layer (HF names after "model.layers.N.mlp.experts.").
const char* const gsv_expert_suffixes[] = {"gate_up_proj_blocks", "gate_up_proj_scales", "gate_up_proj_bias",
                                           "down_proj_blocks",    "down_proj_scales",    "down_proj_bias"};

// Every expert tensor of `saved` has the dtype, shape and bytes of the same tensor in `source`.
void gsv_check_experts_identical(const std::string& source, const std::string& saved, int n_layers) {
  const auto src = mla::io::safetensors_checkpoint::open(source);
  const auto out = mla::io::safetensors_checkpoint::open(saved);
  int compared = 0;
  for (int l = 0; l < n_layers; ++l)
    for (const char* suffix : gsv_expert_suffixes) {
      const std::string name = "model.layers." + std::to_string(l) + ".mlp.experts." + suffix;
      BOOST_TEST_REQUIRE(out.contains(name), name);
      const mla::io::tensor_view& a = src.tensor(name);
      const mla::io::tensor_view& b = out.tensor(name);
      BOOST_TEST((a.type == b.type), name);
      BOOST_TEST(a.shape == b.shape, name);
      BOOST_TEST_REQUIRE(a.bytes.size == b.bytes.size, name);
      BOOST_TEST(std::memcmp(a.bytes.data, b.bytes.data, a.bytes.size) == 0, name << " bytes differ");
      ++compared;
    }
  BOOST_TEST(compared == 6 * n_layers);
}

// Largest relative error over rows of two logit matrices.
double gsv_max_row_error(const mla::ref::matrix<float>& a, const mla::ref::matrix<float>& b) {
  BOOST_TEST_REQUIRE(a.rows() == b.rows());
  BOOST_TEST_REQUIRE(a.cols() == b.cols());
  double e = 0;
  for (Eigen::Index r = 0; r < a.rows(); ++r) e = std::max(e, mla::ref::relative_error(a.row(r), b.row(r)));
  return e;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(model_save_checkpoint_gpt_oss)

BOOST_AUTO_TEST_CASE(converted_gpt_oss_saves_and_reloads_to_the_same_logits) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const gsv_scratch_dir work(gen());
    const std::string src_dir = (work.path() / "source").string();
    const mla::model::gpt_oss_shape shape = mla::model::gpt_oss_shape::tiny();
    // Small shards, so the expert tensors come from several files of a sharded source.
    const int shards = mla::model::write_gpt_oss_checkpoint(src_dir, shape, seed, 1 << 18);
    BOOST_TEST(shards > 1);
    const mla::model::loaded_model lm = mla::model::load_model(src_dir);
    const mla::model::decoder<float>& src = lm.model;
    const mla::model::model_config& cfg = src.config();

    std::vector<int> full;
    for (int l = 0; l < cfg.n_layers; ++l)
      if (cfg.layers[static_cast<std::size_t>(l)].sliding_window == 0) full.push_back(l);
    BOOST_TEST_REQUIRE(!full.empty());
    BOOST_TEST_REQUIRE(static_cast<int>(full.size()) < cfg.n_layers);

    const auto cal = mla::test::random_windows(gen, cfg.vocab_size, 4, 40);
    const mla::convert::calibration_stats stats = mla::convert::calibrate(src, cal);
    mla::convert::pipeline_options o;
    o.layer.rope = {mla::convert::rope_strategy::rorope, 32, 0};
    o.layer.factor.method = mla::convert::factor_method::attention_aware;
    o.layers = full;
    o.require_supported_shape = false;
    o.kv_budget = static_cast<long>(full.size()) * cfg.n_kv_heads * cfg.head_dim;  // half of the converted layers'
    const auto conv = mla::convert::convert_model(cfg, src.weights(), stats, o);
    for (int l = 0; l < cfg.n_layers; ++l)
      BOOST_TEST((conv.config.layers[static_cast<std::size_t>(l)].attention == mla::model::attention_kind::mla) ==
                     (std::find(full.begin(), full.end(), l) != full.end()),
                 "layer " << l);

    const std::string out_dir = (work.path() / "converted").string();
    const auto files = mla::model::checkpoint_tokenizer_files(src_dir);
    BOOST_TEST(std::any_of(files.begin(), files.end(), [](const auto& f) { return f.name == "tokenizer.json"; }));
    mla::model::save_checkpoint(out_dir, conv.config, conv.weights, files);
    BOOST_TEST(work.entries() == (std::vector<std::string>{"converted", "source"}));  // no .tmp left

    // config.json: gpt_oss fields and the "mla" object.
    const nlohmann::json j = nlohmann::json::parse(gsv_read_all(gsv_fs::path(out_dir) / "config.json"));
    BOOST_TEST(j.at("model_type").get<std::string>() == "gpt_oss");
    BOOST_TEST(j.at("rope_scaling").at("rope_type").get<std::string>() == "yarn");
    BOOST_TEST(j.at("sliding_window").get<int>() == shape.sliding_window);
    BOOST_TEST(j.at("num_local_experts").get<int>() == shape.n_experts);
    BOOST_TEST(j.at("experts_per_token").get<int>() == shape.experts_per_token);
    BOOST_TEST(j.at("layer_types").size() == static_cast<std::size_t>(cfg.n_layers));
    BOOST_TEST_REQUIRE(j.contains("mla"));
    for (int l = 0; l < cfg.n_layers; ++l)
      BOOST_TEST(j.at("mla").at("layers").at(static_cast<std::size_t>(l)).at("attention").get<std::string>() ==
                     mla::model::to_string(conv.config.layers[static_cast<std::size_t>(l)].attention),
                 "layer " << l);
    // The tokenizer is copied as it is.
    BOOST_TEST(gsv_read_all(gsv_fs::path(out_dir) / "tokenizer.json") ==
               gsv_read_all(gsv_fs::path(src_dir) / "tokenizer.json"));

    // Tensor names: GQA layers keep HF names with biases and sinks, MLA layers the MLA names with sinks.
    {
      const auto saved = mla::io::safetensors_checkpoint::open(out_dir);
      for (int l = 0; l < cfg.n_layers; ++l) {
        const std::string a = "model.layers." + std::to_string(l) + ".self_attn.";
        BOOST_TEST(saved.contains(a + "sinks"), a << "sinks");
        BOOST_TEST(saved.contains(a + "o_proj.bias"), a << "o_proj.bias");
        const bool mla = conv.config.layers[static_cast<std::size_t>(l)].attention == mla::model::attention_kind::mla;
        BOOST_TEST(saved.contains(a + "k_proj.bias") == !mla, a << "k_proj.bias");
        BOOST_TEST(saved.contains(a + "kv_a_proj.weight") == mla, a << "kv_a_proj.weight");
        BOOST_TEST(saved.contains("model.layers." + std::to_string(l) + ".mlp.router.bias"));
        BOOST_TEST((saved.tensor(a + "sinks").type == mla::io::dtype::F32));
      }
    }
    gsv_check_experts_identical(src_dir, out_dir, cfg.n_layers);

    // Reload: same logits as the in-memory converted model; decode = prefill.
    const mla::model::loaded_model back = mla::model::load_model(out_dir);
    BOOST_TEST(back.has_tokenizer, back.tokenizer_note);
    const mla::model::model_config& bc = back.model.config();
    BOOST_TEST(bc.architecture == "gpt_oss");
    for (int l = 0; l < cfg.n_layers; ++l) {
      const auto& x = bc.layers[static_cast<std::size_t>(l)];
      const auto& y = conv.config.layers[static_cast<std::size_t>(l)];
      BOOST_TEST((x.attention == y.attention), "layer " << l);
      BOOST_TEST(x.sliding_window == y.sliding_window, "layer " << l);
      BOOST_TEST(x.latent_rank == y.latent_rank, "layer " << l);
      BOOST_TEST(x.rope_dim == y.rope_dim, "layer " << l);
    }
    const mla::model::decoder<float> mem(conv.config, conv.weights);
    const std::vector<int> toks = mla::test::random_windows(gen, cfg.vocab_size, 1, 24)[0];  // > window 8
    const mla::ref::matrix<float> want = mem.forward(toks);
    const mla::ref::matrix<float> got = back.model.forward(toks);
    BOOST_TEST_REQUIRE(got.allFinite());
    const double prefill_err = gsv_max_row_error(want, got);
    BOOST_TEST_MESSAGE("saved-and-loaded vs in-memory converted gpt-oss, prefill: max row relative error "
                       << prefill_err);
    BOOST_TEST(prefill_err <= 1e-6);

    auto s = back.model.new_session();
    const int split = 5;
    back.model.forward(s, std::vector<int>(toks.begin(), toks.begin() + split));
    double decode_err = 0;
    for (std::size_t t = split; t < toks.size(); ++t) {
      const auto row = back.model.decode(s, toks[t]);
      decode_err = std::max(decode_err, mla::ref::relative_error(row, got.row(static_cast<Eigen::Index>(t))));
    }
    BOOST_TEST_MESSAGE("reloaded converted gpt-oss: decode vs prefill max relative error " << decode_err);
    BOOST_TEST(decode_err < 1e-4);
  }
}

BOOST_AUTO_TEST_CASE(unconverted_gpt_oss_round_trips_exactly) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const gsv_scratch_dir work(gen());
    const std::string src_dir = (work.path() / "source").string();
    mla::model::write_gpt_oss_checkpoint(src_dir, mla::model::gpt_oss_shape::tiny(), seed, 1 << 30);
    const mla::model::loaded_model lm = mla::model::load_model(src_dir);
    const std::string out_dir = (work.path() / "saved").string();
    mla::model::save_checkpoint(out_dir, lm.model.config(), lm.model.weights(),
                                mla::model::checkpoint_tokenizer_files(src_dir));
    gsv_check_experts_identical(src_dir, out_dir, lm.model.config().n_layers);
    const mla::model::loaded_model back = mla::model::load_model(out_dir);
    BOOST_TEST(!mla::model::has_mla_layers(back.model.config()));
    const std::vector<int> toks = mla::test::random_windows(gen, lm.model.config().vocab_size, 1, 20)[0];
    const mla::ref::matrix<float> want = lm.model.forward(toks), got = back.model.forward(toks);
    // BF16 source weights are exact in F32, and the experts are the same bytes: the same floats everywhere.
    BOOST_TEST(gsv_max_row_error(want, got) == 0.0);
  }
}

BOOST_AUTO_TEST_CASE(failed_gpt_oss_saves_leave_nothing) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const gsv_scratch_dir work(gen());
    const std::string src_dir = (work.path() / "source").string();
    mla::model::write_gpt_oss_checkpoint(src_dir, mla::model::gpt_oss_shape::tiny(), seed, 1 << 30);
    const mla::model::loaded_model lm = mla::model::load_model(src_dir);
    const mla::model::model_config& cfg = lm.model.config();
    const std::vector<std::string> before = work.entries();

    // The target exists: an error, and the existing directory is untouched.
    const gsv_fs::path existing = work.path() / "existing";
    gsv_fs::create_directory(existing);
    { std::ofstream(existing / "keep.txt") << "keep"; }
    gsv_expect_error([&] { mla::model::save_checkpoint(existing.string(), cfg, lm.model.weights()); },
                     {"already exists"});
    BOOST_TEST(gsv_read_all(existing / "keep.txt") == "keep");
    BOOST_TEST(!gsv_fs::exists(existing / "config.json"));
    gsv_fs::remove_all(existing);

    // A failure after the temporary directory exists (a bad extra file name): removed, nothing at the target.
    const std::string target = (work.path() / "never").string();
    gsv_expect_error(
        [&] {
          mla::model::save_checkpoint(target, cfg, lm.model.weights(), {{"../escape.json", "{}"}});
        },
        {"escape.json"});
    BOOST_TEST(work.entries() == before);

    // Float experts (not the checkpoint's MXFP4 tensors) are not re-quantised: an error naming the tensors.
    mla::model::model_weights<float> w = lm.model.weights();
    std::vector<mla::ref::moe_expert<float>> dense(static_cast<std::size_t>(cfg.n_experts));
    for (int e = 0; e < cfg.n_experts; ++e) w.layers[1].moe.experts->load(e, dense[static_cast<std::size_t>(e)]);
    w.layers[1].moe.experts = std::make_shared<mla::ref::dense_experts<float>>(std::move(dense));
    gsv_expect_error([&] { mla::model::save_checkpoint(target, cfg, w); },
                     {"layer 1", "model.layers.1.mlp.experts.", "re-quantised"});
    BOOST_TEST(work.entries() == before);

    // Sinks missing from a gpt-oss layer: an error naming the tensor.
    mla::model::model_weights<float> no_sinks = lm.model.weights();
    no_sinks.layers[2].gqa.sinks.resize(0);
    gsv_expect_error([&] { mla::model::save_checkpoint(target, cfg, no_sinks); }, {"model.layers.2.self_attn.sinks"});
    BOOST_TEST(work.entries() == before);
  }
}

BOOST_AUTO_TEST_SUITE_END()
