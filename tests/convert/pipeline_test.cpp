#include "mla/convert/pipeline.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "convert_test_support.hpp"
#include "distill_test_support.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/model/decoder.hpp"

namespace {

using mla::convert::factor_method;
using mla::convert::rank_allocation;
using mla::convert::rope_strategy;
using mla::ref::matrix;

struct small_model {
  mla::model::model_config cfg;
  mla::model::model_weights<float> w;
  mla::convert::calibration_stats stats;
  std::vector<std::vector<matrix<float>>> cal_inputs, held_inputs;
  std::vector<std::vector<int>> held_windows;
};

// Two layers, head_dim 64 with 4/2 heads (so (96, 32, r) shapes apply), biases, float. With key_value_rank > 0
// every layer's stacked key and value projections [wk; wv] [256, 128] have that rank (a shared random basis).
small_model make_small_model(std::mt19937_64& gen, int key_value_rank = 0) {
  small_model m;
  mla::test::layer_spec spec;
  spec.hidden = 128;
  spec.head_dim = 64;
  spec.biases = true;
  mla::test::random_model(gen, 2, spec, m.cfg, m.w);
  if (key_value_rank > 0)
    for (auto& lw : m.w.layers) {
      const double s = 1.0 / std::sqrt(double(key_value_rank));
      const matrix<float> basis = mla::test::randn<float>(gen, key_value_rank, spec.hidden, 1.0 / std::sqrt(128.0));
      lw.gqa.wk = mla::test::randn<float>(gen, lw.gqa.wk.rows(), key_value_rank, s) * basis;
      lw.gqa.wv = mla::test::randn<float>(gen, lw.gqa.wv.rows(), key_value_rank, s) * basis;
    }
  const mla::model::decoder<float> dec(m.cfg, m.w);
  const auto cal = mla::test::random_windows(gen, m.cfg.vocab_size, 4, 48);
  m.held_windows = mla::test::random_windows(gen, m.cfg.vocab_size, 2, 48);
  m.stats = mla::convert::calibrate(dec, cal);
  mla::convert::input_recorder<float> rc(2), rh(2);
  mla::convert::run_windows(dec, cal, rc);
  mla::convert::run_windows(dec, m.held_windows, rh);
  m.cal_inputs = rc.take();
  m.held_inputs = rh.take();
  return m;
}

BOOST_AUTO_TEST_SUITE(pipeline)

// A 50 % KV conversion: the stage report shows the exact stage at float rounding, ranks fit the budget,
// the converted model runs (prefill and decode agree) and caches less.
BOOST_AUTO_TEST_CASE(half_kv_conversion_with_stage_report) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const small_model m = make_small_model(gen);
    using moment_kind = mla::convert::factor_options::moment_kind;
    for (factor_method method : {factor_method::weight_svd, factor_method::activation_pca, factor_method::care,
                                 factor_method::attention_aware})
      for (moment_kind moment : {moment_kind::tokens, moment_kind::attention})
        BOOST_TEST_CONTEXT(to_string(method) << (moment == moment_kind::attention ? ", attention moment" : "")) {
          mla::convert::pipeline_options o;
          o.layer.rope = {rope_strategy::rorope, 32, 0};
          o.layer.factor.method = method;
          o.layer.factor.moment = moment;
          o.kv_budget = 2 * 256 / 2;                         // 50 % of 2 layers x 2*2*64
          o.allocation = rank_allocation::objective_greedy;  // its spectra take the attention moment too
          o.refit = true;
          if (method == factor_method::weight_svd && moment == moment_kind::attention) {  // M = I: refused, not ignored
            BOOST_CHECK_THROW(mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &m.cal_inputs),
                              mla::error);
            continue;
          }
          const auto conv = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &m.cal_inputs);
          long used = 0;
          for (int l = 0; l < 2; ++l) used += conv.config.kv_elements_per_token(l);
          BOOST_TEST(used <= o.kv_budget);
          BOOST_TEST(conv.report.size() == 4u);
          double fact_sum = 0, refit_sum = 0;
          for (int l = 0; l < 2; ++l) {
            const auto li = static_cast<std::size_t>(l);
            const double cut = conv.report[1].per_layer[li], fact = conv.report[2].per_layer[li],
                         refit = conv.report[3].per_layer[li];
            BOOST_TEST(conv.report[0].per_layer[li] <= 1e-5, "exact stage, layer " << l);
            // The factorisation cannot beat the full-rank RoPE cut beyond float noise (measured: at most 3e-4
            // below it). The refit is fitted on the calibration windows; on windows it never saw, one layer may
            // gain little or lose a trace (layer 0 reads embeddings of tokens the calibration may not have seen;
            // seen: +1.1 % with seed 12264208984210671322), so per layer it must not lose more than 3 %...
            BOOST_TEST(fact > cut - 2e-3, "layer " << l);
            BOOST_TEST(refit < 1.03 * fact, "layer " << l);
            fact_sum += fact;
            refit_sum += refit;
            BOOST_TEST_MESSAGE(to_string(method)
                               << " layer " << l << " rank " << conv.ranks[li] << ": exact "
                               << conv.report[0].per_layer[li] << ", rope_split " << conv.report[1].per_layer[li]
                               << ", factorized " << conv.report[2].per_layer[li] << ", refit "
                               << conv.report[3].per_layer[li]);
          }
          // ... and over both layers it must gain (measured over 240 seeded cases: by 0.8 % or more).
          BOOST_TEST(refit_sum < 0.997 * fact_sum);
          const mla::model::decoder<float> orig(m.cfg, m.w);
          const mla::model::decoder<float> dec(conv.config, conv.weights);
          auto s = dec.new_session();
          const std::vector<int>& toks = m.held_windows[0];
          const std::vector<int> prefix(toks.begin(), toks.end() - 1);
          dec.forward(s, prefix);
          const auto last = dec.decode(s, toks.back());
          const matrix<float> all = dec.forward(toks);
          BOOST_TEST(mla::ref::relative_error(last, all.row(all.rows() - 1)) < 1e-4);
          auto so = orig.new_session();
          orig.forward(so, toks);
          auto sc = dec.new_session();
          dec.forward(sc, toks);
          BOOST_TEST(sc.kv_bytes() * 2 <= so.kv_bytes());
        }
  }
}

// The layers are converted in parallel (one per OpenMP thread): the same bits as on one thread, every
// phase's progress ends at the layer count, and on_layer counts 1..n once each.
BOOST_AUTO_TEST_CASE(parallel_layers_match_one_thread) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const small_model m = make_small_model(gen);
    mla::convert::pipeline_options o;
    o.layer.rope = {rope_strategy::attention, 32, 0};
    o.layer.factor.method = factor_method::attention_aware;
    o.kv_budget = 2 * 256 / 2;
    o.refit = true;
    o.latent_norm = true;
    auto run = [&](int threads, std::vector<std::string>& phases, std::vector<int>& finished) {
#if defined(_OPENMP)
      const int before = omp_get_max_threads();
      omp_set_num_threads(threads);
#else
      (void)threads;
#endif
      mla::convert::pipeline_options p = o;
      p.on_step = [&](const char* phase, double done, int total) {
        BOOST_TEST(total == 2);
        if (done == total) phases.emplace_back(phase);
      };
      p.on_layer = [&](int done, int) { finished.push_back(done); };
      auto conv = mla::convert::convert_model(m.cfg, m.w, m.stats, p, &m.held_inputs, &m.cal_inputs);
#if defined(_OPENMP)
      omp_set_num_threads(before);
#endif
      return conv;
    };
    std::vector<std::string> phases1, phases2;
    std::vector<int> finished1, finished2;
    const auto one = run(1, phases1, finished1);
    const auto two = run(2, phases2, finished2);
    BOOST_TEST(phases2 == (std::vector<std::string>{"placing RoPE", "converting"}), boost::test_tools::per_element());
    BOOST_TEST(finished2 == (std::vector<int>{1, 2}), boost::test_tools::per_element());
    BOOST_TEST(one.ranks == two.ranks, boost::test_tools::per_element());
    for (std::size_t l = 0; l < 2; ++l) {
      const auto& a = one.weights.layers[l].mla;
      const auto& b = two.weights.layers[l].mla;
      for (auto [x, y] : {std::pair{&a.w_dkv, &b.w_dkv}, std::pair{&a.w_uk, &b.w_uk}, std::pair{&a.w_uv, &b.w_uv},
                          std::pair{&a.w_kr, &b.w_kr}, std::pair{&a.wq, &b.wq}, std::pair{&a.wo, &b.wo}})
        BOOST_TEST((x->rows() == y->rows() && x->cols() == y->cols() &&
                    std::memcmp(x->data(), y->data(), sizeof(float) * std::size_t(x->size())) == 0),
                   "layer " << l);
      BOOST_TEST(a.latent_norm.size() == b.latent_norm.size());
      BOOST_TEST((a.latent_norm.size() > 0 && a.latent_norm == b.latent_norm), "layer " << l);
      for (std::size_t k = 0; k < one.report.size(); ++k)
        BOOST_TEST(one.report[k].per_layer[l] == two.report[k].per_layer[l], one.report[k].stage << ", layer " << l);
    }
  }
}

// Keys and values of rank 64 (well under the 96 latent dimensions a 50 % budget leaves): every factorisation
// keeps them, so on the calibration windows the factorised layer is as good as the RoPE cut alone, up to float
// rounding, in every layer; a factorisation that kept the wrong directions, or another layer's, would not be.
// (On other windows the data-driven methods may lose a little: layer 0's inputs are embeddings of the few
// tokens the calibration saw, whose moment does not span the input space.)
BOOST_AUTO_TEST_CASE(low_rank_keys_and_values_factorise_losslessly) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const small_model m = make_small_model(gen, 64);
    for (factor_method method : {factor_method::weight_svd, factor_method::activation_pca, factor_method::care,
                                 factor_method::attention_aware})
      BOOST_TEST_CONTEXT(to_string(method)) {
        mla::convert::pipeline_options o;
        o.layer.rope = {rope_strategy::rorope, 32, 0};
        o.layer.factor.method = method;
        o.kv_budget = 2 * 256 / 2;
        const auto conv = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.cal_inputs, &m.cal_inputs);
        for (std::size_t l = 0; l < 2; ++l) {
          const double cut = conv.report[1].per_layer[l], fact = conv.report[2].per_layer[l];
          BOOST_TEST_MESSAGE(to_string(method) << " layer " << l << " rank " << conv.ranks[l] << ": rope_split " << cut
                                               << ", factorized " << fact);
          BOOST_TEST(conv.ranks[l] >= 64);
          BOOST_TEST(cut > 1e-3, "layer " << l << ": the RoPE cut loses something");
          BOOST_TEST(fact < cut + 1e-4, "layer " << l);
        }
      }
  }
}

// Half the cache (rank 96 + d_R 32 per layer), attention-aware, refit, then 40 one-window distillation steps.
mla::convert::pipeline_options distill_pipeline_options() {
  mla::convert::pipeline_options o;
  o.layer.rope = {rope_strategy::rorope, 32, 0};
  o.layer.factor.method = factor_method::attention_aware;
  o.kv_budget = 2 * 256 / 2;
  o.refit = true;
  o.distill.steps = 40;
  o.distill.batch_windows = 1;
  return o;
}

// The distill stage after the refit: its report row, per-layer results that never lose on the stage's own
// held-out windows, progress callbacks, and a model that still runs with the same cache.
BOOST_AUTO_TEST_CASE(distill_stage) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const small_model m = make_small_model(gen);
    mla::convert::pipeline_options o = distill_pipeline_options();
    std::vector<int> progress;
    o.on_layer = [&](int done, int total) {
      progress.push_back(done);
      BOOST_TEST(total == 2);
    };
    const auto conv = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &m.cal_inputs);
    BOOST_TEST((progress == std::vector<int>{1, 2}));
    BOOST_TEST_REQUIRE(conv.report.size() == 5u);
    BOOST_TEST(conv.report[4].stage == "distill");
    BOOST_TEST_REQUIRE(conv.distill.size() == 2u);
    o.distill.steps = 0;  // the layers the stage starts from
    o.on_layer = {};
    const auto refitted = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &m.cal_inputs);
    double sum_before = 0, sum_after = 0;
    for (int l = 0; l < 2; ++l) {
      const auto li = static_cast<std::size_t>(l);
      const double refit = conv.report[3].per_layer[li];
      const double distilled = conv.report[4].per_layer[li];
      BOOST_TEST_CONTEXT("layer " << l) {
        BOOST_TEST_MESSAGE("layer " << l << ": refit " << refit << ", distill " << distilled);
        const auto& src = m.w.layers[li].gqa;
        const double before = mla::test::distill_heldout_loss(src, refitted.weights.layers[li].mla, m.cal_inputs[li]);
        const double after = mla::test::distill_heldout_loss(src, conv.weights.layers[li].mla, m.cal_inputs[li]);
        mla::test::check_distilled(conv.distill[li], before, after, 0.995);
        sum_before += before, sum_after += after;
        // The stage report's row is the error of the returned layer on the pipeline's held-out windows.
        const auto& layer = conv.weights.layers[li].mla;
        BOOST_TEST(distilled == mla::convert::attention_output_error(src, layer, m.held_inputs[li]),
                   boost::test_tools::tolerance(1e-9));
        BOOST_TEST(conv.ranks[li] > 0);
      }
    }
    BOOST_TEST(sum_after < 0.96 * sum_before);  // measured: 0.86 to 0.93 over three seeds
    const mla::model::decoder<float> dec(conv.config, conv.weights);
    const matrix<float> logits = dec.forward(m.held_windows[0]);
    BOOST_TEST(logits.allFinite());
  }
}

// --latent-norm: every converted layer gets DeepSeek's latent RMSNorm (weight = the latent's calibration RMS, so
// a typical token keeps its latent) before the distillation, which trains through it; the report has a
// latent_norm row between the refit and the distillation.
BOOST_AUTO_TEST_CASE(latent_norm_stage) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const small_model m = make_small_model(gen);
    mla::convert::pipeline_options o = distill_pipeline_options();
    o.latent_norm = true;
    const auto conv = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &m.cal_inputs);
    BOOST_TEST_REQUIRE(conv.report.size() == 6u);
    BOOST_TEST(conv.report[4].stage == "latent_norm");
    BOOST_TEST(conv.report[5].stage == "distill");
    o.distill.steps = 0;  // the normed layers the stage starts from
    const auto normed = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &m.cal_inputs);
    // The gain is a statistical claim, made on the sum of the layers: over 13 seeds the sum fell to 0.69-0.90 of
    // its start, single layers to 0.55-0.98, and one layer of one seed (6318173669527259044, layer 1, starting
    // at 0.022) kept its start.
    double before_sum = 0, after_sum = 0;
    int gained = 0;
    for (int l = 0; l < 2; ++l) {
      const auto li = static_cast<std::size_t>(l);
      const auto& layer = conv.weights.layers[li].mla;
      BOOST_TEST_REQUIRE(layer.latent_norm.size() == layer.latent_rank);
      BOOST_TEST(layer.latent_norm.allFinite());
      BOOST_TEST_CONTEXT("layer " << l) {
        const auto& src = m.w.layers[li].gqa;
        const auto& start = normed.weights.layers[li].mla;
        const double before = mla::test::distill_heldout_loss(src, start, m.cal_inputs[li]);
        const double after = mla::test::distill_heldout_loss(src, layer, m.cal_inputs[li]);
        mla::test::check_distill_report(conv.distill[li], before, after);
        before_sum += before, after_sum += after;
        gained += conv.distill[li].best_step > 0 && after < before;
      }
      BOOST_TEST_MESSAGE("layer " << l << ": refit " << conv.report[3].per_layer[li] << ", + latent norm "
                                  << conv.report[4].per_layer[li] << ", distilled through it "
                                  << conv.report[5].per_layer[li]);
      BOOST_TEST(conv.report[4].per_layer[li] > 0.0);
    }
    BOOST_TEST(after_sum < 0.95 * before_sum);
    BOOST_TEST(gained >= 1);
    BOOST_TEST(mla::model::decoder<float>(conv.config, conv.weights).forward(m.held_windows[0]).allFinite());
  }
}

// The o_proj refit stage: its report row sits between the refit and the distillation, it moves o_proj (and
// nothing else of the refit layer), and the model still runs.
BOOST_AUTO_TEST_CASE(output_projection_refit_stage) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const small_model m = make_small_model(gen);
    mla::convert::pipeline_options o;
    o.layer.rope = {rope_strategy::rorope, 32, 0};
    o.layer.factor.method = factor_method::attention_aware;
    o.kv_budget = 2 * 256 / 2;
    o.refit = true;
    o.refit_opt.ridge = 0.1;  // fixed: 192 calibration tokens under-determine o_proj's 256 inputs, and the
                              // validated ridge would rightly keep it as it is
    const auto plain = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &m.cal_inputs);
    o.refit_opt.output_projection = true;
    const auto conv = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &m.cal_inputs);
    BOOST_TEST_REQUIRE(conv.report.size() == 5u);
    BOOST_TEST(conv.report[4].stage == "refit_o");
    for (std::size_t l = 0; l < 2; ++l) {
      const auto& a = plain.weights.layers[l].mla;
      const auto& b = conv.weights.layers[l].mla;
      BOOST_TEST_MESSAGE("layer " << l << ": refit " << conv.report[3].per_layer[l] << ", refit_o "
                                  << conv.report[4].per_layer[l]);
      BOOST_TEST(conv.report[3].per_layer[l] == plain.report[3].per_layer[l]);
      // o_proj is fitted to the calibration windows: there, its error is below the w_uv refit's, by a margin.
      const auto& src = m.w.layers[l].gqa;
      const double on_cal_refit = mla::convert::attention_output_error(src, a, m.cal_inputs[l]);
      const double on_cal_refit_o = mla::convert::attention_output_error(src, b, m.cal_inputs[l]);
      BOOST_TEST_MESSAGE("layer " << l << " on the calibration windows: refit " << on_cal_refit << ", refit_o "
                                  << on_cal_refit_o);
      BOOST_TEST(on_cal_refit_o < 0.9 * on_cal_refit);  // measured: 0.71 to 0.78 of it
      BOOST_TEST(mla::ref::relative_error(b.wo, a.wo) > 1e-3);
      BOOST_TEST(mla::ref::relative_error(b.w_uv, a.w_uv) == 0.0);
      BOOST_TEST(mla::ref::relative_error(b.w_dkv, a.w_dkv) == 0.0);
    }
    o.distill.steps = 5;
    o.distill.batch_windows = 1;
    const auto distilled = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &m.cal_inputs);
    BOOST_TEST_REQUIRE(distilled.report.size() == 6u);
    BOOST_TEST(distilled.report[4].stage == "refit_o");
    BOOST_TEST(distilled.report[5].stage == "distill");
    const mla::model::decoder<float> dec(conv.config, conv.weights);
    BOOST_TEST(dec.forward(m.held_windows[0]).allFinite());
  }
}

// What the sequential stages' tests share: random calibration windows of 48 tokens, the source model's
// recorded attention inputs on them, and a RoRoPE (d_R 32) attention-aware conversion at rank 64.
struct sequential_setup {
  std::vector<std::vector<int>> tokens;            // [windows][48]
  std::vector<std::vector<matrix<float>>> inputs;  // [layers][windows] of [48, hidden]
  mla::convert::pipeline_options options;
  sequential_setup(const small_model& m, std::mt19937_64& gen, int windows)
      : tokens(mla::test::random_windows(gen, m.cfg.vocab_size, windows, 48)) {
    mla::convert::input_recorder<float> rec(2);
    mla::convert::run_windows(mla::model::decoder<float>(m.cfg, m.w), tokens, rec);
    inputs = rec.take();
    options.layer.rope = {rope_strategy::rorope, 32, 0};
    options.layer.factor.method = factor_method::attention_aware;
    options.layer.rank = 64;
  }
};

// Sequential distillation. With only layer 1 converted, the converted stream into layer 1 is the source
// stream (layer 0 is unchanged), so the stage sees the recorded source inputs: its starting loss equals the
// teacher-forced one, which checks the stream (embedding, norms, attention, MLP) against the decoder. With
// both layers converted it lowers the logits' error against the source model on held-out windows.
BOOST_AUTO_TEST_CASE(sequential_distill) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    small_model m = make_small_model(gen);
    const sequential_setup su(m, gen, 4);
    const auto& cal_tokens = su.tokens;
    const auto& cal_inputs = su.inputs;
    mla::convert::pipeline_options o = su.options;
    o.distill.steps = 30;
    o.distill.batch_windows = 1;

    o.layers = {1};
    auto one = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &cal_inputs);
    const auto taught = one.distill[1];
    o.distill.steps = 0;
    auto seq = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &cal_inputs);
    o.distill.steps = 30;
    mla::convert::distill_sequential(m.w, seq, cal_tokens, cal_inputs, o.distill, &m.held_inputs);
    BOOST_TEST(seq.distill[1].heldout_before == taught.heldout_before, boost::test_tools::tolerance(1e-4));
    BOOST_TEST(seq.distill[1].heldout_after == taught.heldout_after, boost::test_tools::tolerance(1e-2));
    BOOST_TEST(seq.report.back().stage == "distill");

    o.layers = {};
    o.distill.steps = 0;
    auto both = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &cal_inputs);
    const auto undistilled = both;
    o.distill.steps = 60;
    std::vector<int> progress;
    mla::convert::distill_sequential(m.w, both, cal_tokens, cal_inputs, o.distill, &m.held_inputs,
                                     [&](int done, int) { progress.push_back(done); });
    BOOST_TEST((progress == std::vector<int>{1, 2}));
    const mla::model::decoder<float> src(m.cfg, m.w), before(undistilled.config, undistilled.weights),
        after(both.config, both.weights);
    double e_before = 0, e_after = 0;
    for (const auto& toks : m.held_windows) {
      const matrix<float> want = src.forward(toks);
      e_before += mla::ref::relative_error(before.forward(toks), want);
      e_after += mla::ref::relative_error(after.forward(toks), want);
    }
    BOOST_TEST_MESSAGE("sequential distill: held-out logits error " << e_before / 2 << " -> " << e_after / 2);
    BOOST_TEST(e_after < e_before);
    // Each layer's held-out loss, recomputed on the inputs the stage gave it: layer 0 sees the source's inputs,
    // layer 1 the final converted model's (its own weights do not change its input), against the source layer's
    // outputs on the source's inputs.
    mla::convert::input_recorder<float> own(2);
    mla::convert::run_windows(after, cal_tokens, own);
    const std::vector<std::vector<matrix<float>>> stage_inputs = {cal_inputs[0], own.take()[1]};
    double sum_before = 0, sum_after = 0;
    for (int l = 0; l < 2; ++l) {
      const auto li = static_cast<std::size_t>(l);
      BOOST_TEST_CONTEXT("layer " << l) {
        std::vector<matrix<float>> targets;
        for (const auto& x : cal_inputs[li]) targets.push_back(mla::ref::gqa_prefill(m.w.layers[li].gqa, x));
        const auto &start = undistilled.weights.layers[li].mla, &end = both.weights.layers[li].mla;
        const double before = mla::test::distill_heldout_loss(start, stage_inputs[li], targets),
                     after = mla::test::distill_heldout_loss(end, stage_inputs[li], targets);
        sum_before += before;
        sum_after += after;
        if (l == 0) {
          // Measured: 0.90 or less over seeds 1-24, with one outlier, seed 10639622801434844431 at 0.971 (CI,
          // session 25); the bound keeps a 2 % margin of improvement.
          mla::test::check_distilled(both.distill[li], before, after, 0.98);
        } else {
          // Layer 1 learns on the converted layer 0's outputs; in 60 single-window steps it may find no step that
          // beats its start on the held-out windows (1 seed in 16), and then keeps the start: never worse.
          BOOST_TEST(both.distill[li].heldout_before == before, boost::test_tools::tolerance(1e-3));
          BOOST_TEST(both.distill[li].heldout_after == after, boost::test_tools::tolerance(1e-3));
          BOOST_TEST(after <= before * (1 + 1e-6));
          BOOST_TEST((both.distill[li].best_step > 0 || after == before));
        }
      }
    }
    BOOST_TEST(sum_after < 0.97 * sum_before);
  }
}

// Sequential refit. With only layer 1 converted its stream input is the source's, so the sequential refit
// equals the teacher-forced one (a check of the stream against the recorded inputs). With both layers
// converted (o_proj refitted too) layer 0 still sees the source's input and gets the teacher-forced weights,
// while layer 1 sees the drifted stream and gets other ones. (That fitting to the drifted input lowers the
// objective it solves is checked on one layer in convert_layer_test; on this random model the refit barely
// moves the logits either way, so their errors are only printed.)
BOOST_AUTO_TEST_CASE(sequential_refit) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    small_model m = make_small_model(gen);
    const sequential_setup su(m, gen, 6);
    const auto& cal_tokens = su.tokens;
    const auto& cal_inputs = su.inputs;
    mla::convert::pipeline_options o = su.options;
    o.refit_opt.max_windows = 4;
    o.refit_opt.ridge = 0.1;  // fixed: the validated ridge may keep a layer's weights, hiding what it was fed

    o.layers = {1};
    o.refit = true;
    const auto taught = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &cal_inputs);
    o.refit = false;
    auto seq = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &cal_inputs);
    mla::convert::refit_sequential(m.w, seq, cal_tokens, cal_inputs, o.refit_opt, &m.held_inputs);
    BOOST_TEST(seq.report.back().stage == "refit");
    BOOST_TEST(mla::ref::relative_error(seq.weights.layers[1].mla.w_uv, taught.weights.layers[1].mla.w_uv) < 1e-4);
    BOOST_TEST(seq.report.back().per_layer[1] == taught.report.back().per_layer[1], boost::test_tools::tolerance(1e-3));

    o.layers = {};
    o.refit_opt.output_projection = true;
    auto both = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &cal_inputs);
    const auto unrefitted = both;
    o.refit = true;
    const auto teacher = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &cal_inputs);
    std::vector<int> progress;
    mla::convert::refit_sequential(m.w, both, cal_tokens, cal_inputs, o.refit_opt, &m.held_inputs,
                                   [&](int done, int) { progress.push_back(done); });
    BOOST_TEST((progress == std::vector<int>{1, 2}));
    BOOST_TEST(both.report[both.report.size() - 2].stage == "refit");
    BOOST_TEST(both.report.back().stage == "refit_o");
    const mla::model::decoder<float> src(m.cfg, m.w), before(unrefitted.config, unrefitted.weights),
        tf(teacher.config, teacher.weights), after(both.config, both.weights);
    double e_before = 0, e_teacher = 0, e_after = 0;
    for (const auto& toks : m.held_windows) {
      const matrix<float> want = src.forward(toks);
      e_before += mla::ref::relative_error(before.forward(toks), want);
      e_teacher += mla::ref::relative_error(tf.forward(toks), want);
      e_after += mla::ref::relative_error(after.forward(toks), want);
    }
    BOOST_TEST_MESSAGE("sequential refit: held-out logits error " << e_before / 2 << " unrefitted, " << e_teacher / 2
                                                                  << " teacher-forced refit, " << e_after / 2
                                                                  << " sequential refit");
    for (const char* t : {"w_uv", "wo"}) {
      BOOST_TEST_CONTEXT(t) {
        auto pick = [&](const auto& c, int l) -> const matrix<float>& {
          const auto& mla = c.weights.layers[static_cast<std::size_t>(l)].mla;
          return std::string(t) == "wo" ? mla.wo : mla.w_uv;
        };
        BOOST_TEST(mla::ref::relative_error(pick(both, 0), pick(teacher, 0)) < 1e-4);
        BOOST_TEST(mla::ref::relative_error(pick(both, 1), pick(teacher, 1)) > 1e-3);
      }
    }
    BOOST_TEST(std::isfinite(e_after));
    auto short_tokens = cal_tokens;
    short_tokens.pop_back();
    BOOST_CHECK_THROW(mla::convert::refit_sequential(m.w, both, short_tokens, cal_inputs, o.refit_opt), mla::error);
  }
}

// Residual-drift targets of the sequential refit (refit_options::drift_weight). Before layer 0 both streams are
// the embeddings, so layer 0's o_proj is the one without drift; layer 1's o_proj must be the o_proj refit of its
// refitted w_uv on the converted model's own inputs towards the source output plus drift_weight times (source
// residual - converted residual), both residuals taken independently from the decoders' layer_output hooks.
struct residual_recorder : mla::model::observer<float> {
  int layer;
  std::vector<matrix<float>> out;
  explicit residual_recorder(int l) : layer(l) {}
  void layer_output(int l, const matrix<float>& h) override {
    if (l == layer) out.push_back(h);
  }
};

BOOST_AUTO_TEST_CASE(sequential_refit_drift) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    small_model m = make_small_model(gen);
    const sequential_setup su(m, gen, 4);
    mla::convert::pipeline_options o = su.options;
    o.refit_opt.ridge = 0.1;
    o.refit_opt.output_projection = true;
    const auto unrefitted = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &su.inputs);
    auto plain = unrefitted, drift = unrefitted;
    mla::convert::refit_sequential(m.w, plain, su.tokens, su.inputs, o.refit_opt);
    mla::convert::refit_options with = o.refit_opt;
    with.drift_weight = 0.7;
    mla::convert::refit_sequential(m.w, drift, su.tokens, su.inputs, with, &m.held_inputs);
    BOOST_TEST(drift.report.back().stage == "refit_o");
    const auto& d0 = drift.weights.layers[0].mla;
    const auto& p0 = plain.weights.layers[0].mla;
    BOOST_TEST(mla::ref::relative_error(d0.wo, p0.wo) < 1e-6);
    BOOST_TEST(mla::ref::relative_error(d0.w_uv, p0.w_uv) < 1e-6);

    // Layer 1's inputs and residuals, from the decoders.
    residual_recorder r_src(0), r_own(0);
    mla::convert::input_recorder<float> in_own(2);
    const mla::model::decoder<float> src(m.cfg, m.w), own(drift.config, drift.weights);
    struct both_hooks : mla::model::observer<float> {
      mla::model::observer<float>* a;
      mla::model::observer<float>* b;
      void attention_input(int l, const matrix<float>& x, long p) override {
        a->attention_input(l, x, p);
        b->attention_input(l, x, p);
      }
      void layer_output(int l, const matrix<float>& h) override {
        a->layer_output(l, h);
        b->layer_output(l, h);
      }
    } hooks;
    hooks.a = &r_own;
    hooks.b = &in_own;
    for (const auto& toks : su.tokens) {
      src.forward(toks, &r_src);
      own.forward(toks, &hooks);
    }
    const std::vector<matrix<float>> own_inputs = in_own.take()[1];
    std::vector<matrix<float>> shift;
    for (std::size_t w = 0; w < su.tokens.size(); ++w) shift.push_back(0.7f * (r_src.out[w] - r_own.out[w]));
    BOOST_TEST(shift[0].norm() > 1e-3 * r_src.out[0].norm());  // layer 0 did change the stream
    auto layer = drift.weights.layers[1].mla;
    layer.wo = unrefitted.weights.layers[1].mla.wo;  // the w_uv refit comes first, without drift
    mla::convert::refit_options fixed = o.refit_opt;
    const auto want =
        mla::convert::refit_output_projection(m.w.layers[1].gqa, layer, su.inputs[1], fixed, &own_inputs, &shift);
    BOOST_TEST(mla::ref::relative_error(drift.weights.layers[1].mla.wo, want.wo) < 1e-4);
    BOOST_TEST(mla::ref::relative_error(drift.weights.layers[1].mla.wo, plain.weights.layers[1].mla.wo) > 1e-3);
    BOOST_TEST(mla::ref::relative_error(drift.weights.layers[1].mla.w_uv, plain.weights.layers[1].mla.w_uv) < 1e-6);

    std::vector<matrix<float>> bad = shift;
    bad.pop_back();
    BOOST_CHECK_THROW(
        mla::convert::refit_output_projection(m.w.layers[1].gqa, layer, su.inputs[1], fixed, &own_inputs, &bad),
        mla::error);
  }
}

// The attention RoPE strategy runs through the pipeline on calibration inputs (and refuses to run without
// them); the distillation can read its own, shorter windows (16 of 16 tokens; the last 3 held out), and did:
// the held-out loss it reports is the one of those windows, recomputed here, and it fell.
BOOST_AUTO_TEST_CASE(attention_rope_and_own_distill_windows) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const small_model m = make_small_model(gen);
    const mla::model::decoder<float> dec(m.cfg, m.w);
    mla::convert::input_recorder<float> rec(2), short_rec(2);
    mla::convert::run_windows(dec, mla::test::random_windows(gen, m.cfg.vocab_size, 3, 48), rec);
    mla::convert::run_windows(dec, mla::test::random_windows(gen, m.cfg.vocab_size, 16, 16), short_rec);
    const auto cal_inputs = rec.take(), short_inputs = short_rec.take();
    mla::convert::pipeline_options o;
    o.layer.rope = {rope_strategy::attention, 32, 0};
    // A crude factorisation at rank 32, so that the distillation has something to heal on the short windows (an
    // attention-aware rank-64 layer is already within 8 % there, and 60 steps found nothing better).
    o.layer.factor.method = factor_method::weight_svd;
    o.layer.rank = 32;
    BOOST_CHECK_THROW(mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs), mla::error);
    o.distill.steps = 60;
    o.distill.batch_windows = 2;
    o.distill.learning_rate = 1e-2;
    const auto conv = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &cal_inputs, &short_inputs);
    o.distill.steps = 0;
    const auto undistilled = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs, &cal_inputs);
    BOOST_TEST(conv.report[1].stage == "rope_split");
    for (int l = 0; l < 2; ++l) {
      const auto li = static_cast<std::size_t>(l);
      const double cut = conv.report[1].per_layer[li];
      BOOST_TEST((cut > 0 && cut < 1), "layer " << l << " rope_split " << cut);
      BOOST_TEST(!conv.weights.layers[li].mla.rope.inv_freq_override.empty());
      // The distillation ran on the short windows: their held-out loss, recomputed, is the report's and fell.
      BOOST_TEST_CONTEXT("layer " << l) {
        const auto& src = m.w.layers[li].gqa;
        const auto& start = undistilled.weights.layers[li].mla;
        mla::test::check_distilled(conv.distill[li], mla::test::distill_heldout_loss(src, start, short_inputs[li]),
                                   mla::test::distill_heldout_loss(src, conv.weights.layers[li].mla, short_inputs[li]),
                                   0.9);  // measured over 17 seeds: 0.45 to 0.82 (6453329949979358336)
      }
    }
  }
}

// RoRoPE F = 1 with d_R = g*d keeps everything: the rope_split and the (full-rank) result are exact in
// float; a hybrid conversion leaves the other layers GQA.
BOOST_AUTO_TEST_CASE(exact_rotation_and_hybrid) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const small_model m = make_small_model(gen);
    mla::convert::pipeline_options o;
    o.layer.rope = {rope_strategy::rorope, 128, 1};
    o.require_supported_shape = false;
    o.layers = {1};
    const auto conv = mla::convert::convert_model(m.cfg, m.w, m.stats, o, &m.held_inputs);
    BOOST_TEST((conv.config.layers[0].attention == mla::model::attention_kind::gqa));
    BOOST_TEST((conv.config.layers[1].attention == mla::model::attention_kind::mla));
    BOOST_TEST(conv.report[1].per_layer[1] <= 1e-5);
    BOOST_TEST(conv.report[2].per_layer[1] <= 1e-5);
    const mla::model::decoder<float> orig(m.cfg, m.w), dec(conv.config, conv.weights);
    BOOST_TEST(mla::ref::relative_error(dec.forward(m.held_windows[1]), orig.forward(m.held_windows[1])) < 1e-4);
    // An unsupported shape is refused when shapes are enforced.
    o.require_supported_shape = true;
    BOOST_CHECK_THROW(mla::convert::convert_model(m.cfg, m.w, m.stats, o), mla::error);
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
