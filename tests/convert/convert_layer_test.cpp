#include "mla/convert/convert_layer.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "convert_test_support.hpp"
#include "mla/convert/factorize.hpp"
#include "mla/convert/refit.hpp"
#include "mla/convert/rope_strategy.hpp"
#include "mla/reference/exact_rewrite.hpp"
#include "mla/reference/mla_attention.hpp"

namespace {

using mla::convert::convert_options;
using mla::convert::dmatrix;
using mla::convert::factor_method;
using mla::convert::rope_strategy;
using mla::ref::gqa_layer;
using mla::ref::matrix;
using mla::ref::mla_form;
using mla::ref::relative_error;

constexpr factor_method all_methods[] = {factor_method::weight_svd, factor_method::activation_pca, factor_method::care,
                                         factor_method::attention_aware};
constexpr rope_strategy all_strategies[] = {rope_strategy::rorope, rope_strategy::high, rope_strategy::low,
                                            rope_strategy::uniform, rope_strategy::two_norm};

// The refit lowers the attention-output error on its calibration windows and on held-out ones.
void check_refit_lowers_error(const gqa_layer<double>& src, const mla::ref::mla_layer<double>& layer,
                              const mla::ref::mla_layer<double>& refit, const std::vector<matrix<double>>& cal,
                              const std::vector<matrix<double>>& held, const char* what) {
  const double before_cal = mla::convert::attention_output_error(src, layer, cal);
  const double after_cal = mla::convert::attention_output_error(src, refit, cal);
  const double before = mla::convert::attention_output_error(src, layer, held);
  const double after = mla::convert::attention_output_error(src, refit, held);
  BOOST_TEST_MESSAGE("refit of " << what << ": calibration " << before_cal << " -> " << after_cal << ", held-out "
                                 << before << " -> " << after);
  BOOST_TEST(after_cal < before_cal);
  BOOST_TEST(after < before);
}

BOOST_AUTO_TEST_SUITE(convert_convert_layer)

// The rope basis is orthonormal for every strategy; F = 1 keeps every pair on one frequency.
BOOST_AUTO_TEST_CASE(rope_plans_are_orthonormal) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  mla::test::layer_spec spec;
  const auto src = mla::test::random_gqa<double>(gen, spec);
  const mla::test::correlated_source<double> xs(gen, spec.hidden);
  const auto stats = mla::test::moments_of(xs.windows(gen, 2, 64));
  for (rope_strategy s : all_strategies)
    for (int fold : {0, 1, 2, 4}) {
      if (s != rope_strategy::rorope && fold != 0) continue;
      BOOST_TEST_CONTEXT("seed " << seed << ", strategy " << to_string(s) << ", F " << fold) {
        mla::convert::rope_options ro{s, 8, fold};
        if (s == rope_strategy::rorope && fold == 1) ro.rope_dim = 16;  // F = 1 needs d_R = d*k: one pair per frequency
        const auto plan = mla::convert::make_rope_plan(src, stats, ro);
        const dmatrix gram = plan.basis.transpose() * plan.basis;
        BOOST_TEST(relative_error(gram, dmatrix::Identity(gram.rows(), gram.cols())) < 1e-12);
        BOOST_TEST(plan.inv_freq.size() == static_cast<std::size_t>(ro.rope_dim / 2));
        if (s != rope_strategy::rorope || plan.freqfold == 1) BOOST_TEST(plan.frequency_pure);
        if (s == rope_strategy::rorope && plan.freqfold > 1) BOOST_TEST(!plan.frequency_pure);
      }
    }
  // MHA2MLA selections pick the documented frequencies.
  const auto high = mla::convert::make_rope_plan(src, stats, {rope_strategy::high, 8, 0});
  const auto low = mla::convert::make_rope_plan(src, stats, {rope_strategy::low, 8, 0});
  const auto uni = mla::convert::make_rope_plan(src, stats, {rope_strategy::uniform, 8, 0});
  BOOST_TEST(high.freq_index == (std::vector<int>{0, 1, 2, 3}));
  BOOST_TEST(low.freq_index == (std::vector<int>{4, 5, 6, 7}));
  BOOST_TEST(uni.freq_index == (std::vector<int>{0, 2, 4, 6}));
  // Bad configurations name the problem.
  BOOST_CHECK_THROW(mla::convert::make_rope_plan(src, stats, {rope_strategy::rorope, 7, 0}), mla::error);
  BOOST_CHECK_THROW(mla::convert::make_rope_plan(src, stats, {rope_strategy::rorope, 8, 3}), mla::error);
}

// RoRoPE with F = 1 and d_R = g*d (nothing cut) at full rank is an exact rewrite: attention outputs equal
// the GQA layer's to 1e-10 in double, with biases, sinks, a sliding window and YaRN (attention factor).
BOOST_AUTO_TEST_CASE(rorope_rotation_is_exact) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  for (int variant = 0; variant < 2; ++variant) {
    BOOST_TEST_CONTEXT("seed " << seed << ", variant " << variant) {
      mla::test::layer_spec spec;
      if (variant == 1) spec = mla::test::with_gpt_oss_features(spec, 9);
      const auto src = mla::test::random_gqa<double>(gen, spec);
      const mla::test::correlated_source<double> xs(gen, spec.hidden);
      const auto stats = mla::test::moments_of(xs.windows(gen, 2, 48));
      const matrix<double> x = xs.sample(gen, 40);
      const matrix<double> want = mla::ref::gqa_prefill(src, x);
      for (factor_method m : all_methods) {
        convert_options o;
        o.rope = {rope_strategy::rorope, spec.n_kv_heads * spec.head_dim, 1};
        o.factor.method = m;
        const auto conv = mla::convert::convert_layer(src, stats, o);
        BOOST_TEST(conv.plan.frequency_pure);
        for (mla_form f : {mla_form::naive, mla_form::absorbed}) {
          const double e = relative_error(mla::ref::mla_prefill(conv.layer, x, f), want);
          BOOST_TEST(e < 1e-10, to_string(m) << (f == mla_form::naive ? " naive" : " absorbed") << ": " << e);
        }
      }
      // With the RoPE cut, a single token at position 0 (RoPE is then only the attention factor) is still
      // exact: checks that the NoPE part keeps YaRN's factor^2 and the sink sees the same logits.
      convert_options cut;
      cut.rope = {rope_strategy::rorope, 8, 0};
      const auto conv = mla::convert::convert_layer(src, stats, cut);
      const matrix<double> x1 = x.topRows(1);
      const double e1 =
          relative_error(mla::ref::mla_prefill(conv.layer, x1, mla_form::absorbed), mla::ref::gqa_prefill(src, x1));
      BOOST_TEST(e1 < 1e-10, "single token with the RoPE cut: " << e1);
    }
  }
}

// At full latent rank every factorisation reconstructs the joint target exactly (P D = A), so every
// method gives the same layer up to rounding: only the RoPE cut differs from GQA.
BOOST_AUTO_TEST_CASE(full_rank_factorisations_are_exact) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::test::layer_spec spec;
    spec.biases = true;
    const auto src = mla::test::random_gqa<double>(gen, spec);
    const mla::test::correlated_source<double> xs(gen, spec.hidden);
    const auto stats = mla::test::moments_of(xs.windows(gen, 2, 64));
    const auto plan = mla::convert::make_rope_plan(src, stats, {rope_strategy::rorope, 8, 2});
    const dmatrix a = mla::convert::joint_target(src, plan);
    const matrix<double> x = xs.sample(gen, 40);
    matrix<double> first;
    for (factor_method m : all_methods) {
      mla::convert::factor_options fo;
      fo.method = m;
      const auto p = mla::convert::make_factor_problem(src, plan, stats, fo);
      const auto f = mla::convert::solve_factor_problem(p, p.rows());
      BOOST_TEST(relative_error(f.up * f.down, a) < 1e-10, to_string(m));
      BOOST_TEST(p.residual(p.rows()) == 0.0);
      const auto layer = mla::convert::assemble_mla_layer(src, plan, f);
      const matrix<double> out = mla::ref::mla_prefill(layer, x, mla_form::absorbed);
      if (first.size() == 0)
        first = out;
      else
        BOOST_TEST(relative_error(out, first) < 1e-9, to_string(m));
      // Truncation is monotone: the objective left decreases with the rank.
      for (int r = 1; r < p.rows(); ++r) BOOST_TEST(p.residual(r) <= p.residual(r - 1) + 1e-12);
    }
  }
}

// The weighted objective the attention-aware method minimises is what its eigenvalues say: the expected
// weighted error at rank r equals the sum of the discarded eigenvalues (checked on activations).
BOOST_AUTO_TEST_CASE(objective_equals_discarded_spectrum) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::test::layer_spec spec;
    const auto src = mla::test::random_gqa<double>(gen, spec);
    const mla::test::correlated_source<double> xs(gen, spec.hidden);
    const std::vector<matrix<double>> cal = xs.windows(gen, 2, 64);
    const auto stats = mla::test::moments_of(cal);
    const auto plan = mla::convert::make_rope_plan(src, stats, {rope_strategy::rorope, 8, 0});
    for (factor_method m : all_methods) {
      if (m == factor_method::weight_svd || m == factor_method::care) continue;  // M is not the data moment
      mla::convert::factor_options fo;
      fo.method = m;
      const auto p = mla::convert::make_factor_problem(src, plan, stats, fo);
      const int r = 20;
      const auto f = mla::convert::solve_factor_problem(p, r);
      double err = 0;
      long n = 0;
      for (const auto& x : cal) {
        dmatrix xa(x.rows(), x.cols() + 1);
        xa << x, dmatrix::Ones(x.rows(), 1);
        const dmatrix e = (xa * (p.a - f.up * f.down).transpose()) * p.l.transpose();  // [tokens, n]
        err += e.squaredNorm();
        n += x.rows();
      }
      err /= double(n);
      BOOST_TEST(std::abs(err - p.residual(r)) <= 1e-9 * p.total(), to_string(m)
                                                                        << ": " << err << " vs " << p.residual(r));
    }
  }
}

// Converted (reduced-rank) layers: the absorbed form equals the naive one, in prefill and in decode.
BOOST_AUTO_TEST_CASE(absorbed_equals_naive_after_conversion) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::test::layer_spec spec;
    spec.biases = spec.sinks = true;
    spec.window = 7;
    const auto src = mla::test::random_gqa<double>(gen, spec);
    const mla::test::correlated_source<double> xs(gen, spec.hidden);
    const auto stats = mla::test::moments_of(xs.windows(gen, 2, 64));
    for (rope_strategy s : all_strategies) {
      convert_options o;
      o.rope = {s, 8, 0};
      o.rank = 24;
      const auto layer = mla::convert::convert_layer(src, stats, o).layer;
      const matrix<double> x = xs.sample(gen, 30);
      const matrix<double> naive = mla::ref::mla_prefill(layer, x, mla_form::naive);
      BOOST_TEST(relative_error(mla::ref::mla_prefill(layer, x, mla_form::absorbed), naive) < 1e-12, to_string(s));
      mla::ref::mla_cache<double> cache;
      mla::ref::mla_prefill(layer, x.topRows(20), cache, mla_form::absorbed);
      for (int t = 20; t < 30; ++t) {
        const auto row = mla::ref::mla_decode(layer, x.row(t), cache, mla_form::absorbed);
        BOOST_TEST(relative_error(row, naive.row(t)) < 1e-12, to_string(s) << " decode " << t);
      }
    }
  }
}

// On correlated inputs, at the same rank, the attention-aware factorisation has a lower held-out attention
// output error than weight SVD (averaged over layers/seeds drawn here). All methods are reported.
BOOST_AUTO_TEST_CASE(attention_aware_beats_weight_svd) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  const int trials = 4;
  double sum[4] = {0, 0, 0, 0};
  double rope_only = 0;
  int wins = 0;
  for (int trial = 0; trial < trials; ++trial) {
    BOOST_TEST_CONTEXT("seed " << seed << ", trial " << trial) {
      mla::test::layer_spec spec;
      spec.biases = trial % 2 == 1;
      const auto src = mla::test::random_gqa<double>(gen, spec);
      const mla::test::correlated_source<double> xs(gen, spec.hidden);
      const auto stats = mla::test::moments_of(xs.windows(gen, 4, 64));
      const std::vector<matrix<double>> held = xs.windows(gen, 2, 64);
      double err[4];
      for (int i = 0; i < 4; ++i) {
        convert_options o;
        o.rope = {rope_strategy::rorope, 8, 0};
        o.factor.method = all_methods[i];
        o.rank = 16;  // of 2*2*16 - 8 = 56
        err[i] = mla::convert::attention_output_error(src, mla::convert::convert_layer(src, stats, o).layer, held);
        sum[i] += err[i];
      }
      convert_options full;
      full.rope = {rope_strategy::rorope, 8, 0};
      rope_only += mla::convert::attention_output_error(src, mla::convert::convert_layer(src, stats, full).layer, held);
      wins += err[3] < err[0];
    }
  }
  BOOST_TEST_MESSAGE(
      "synthetic layer (hidden 64, 4/2 heads of 16, d_R 8, rank 16 of 56), mean held-out attention "
      "output error over "
      << trials << " layers: weight_svd " << sum[0] / trials << ", activation_pca " << sum[1] / trials << ", care "
      << sum[2] / trials << ", attention_aware " << sum[3] / trials
      << " (rope split alone, full rank: " << rope_only / trials << ")");
  BOOST_TEST(sum[3] < sum[0],
             "seed " << seed << ": attention_aware " << sum[3] / trials << " vs weight_svd " << sum[0] / trials);
  BOOST_TEST(wins >= trials - 1, "seed " << seed << ": attention_aware won " << wins << " of " << trials);
}

// The ridge refit of w_uv lowers the attention-output error on the calibration tokens and on held-out ones.
BOOST_AUTO_TEST_CASE(refit_reduces_error) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::test::layer_spec spec;
    spec.biases = spec.sinks = true;
    const auto src = mla::test::random_gqa<double>(gen, spec);
    const mla::test::correlated_source<double> xs(gen, spec.hidden);
    const std::vector<matrix<double>> cal = xs.windows(gen, 4, 64);
    const std::vector<matrix<double>> held = xs.windows(gen, 2, 64);
    convert_options o;
    o.rope = {rope_strategy::rorope, 8, 0};
    o.factor.method = factor_method::weight_svd;
    o.rank = 16;
    const auto layer = mla::convert::convert_layer(src, mla::test::moments_of(cal), o).layer;
    check_refit_lowers_error(src, layer, mla::convert::refit_value_projection(src, layer, cal), cal, held,
                             "weight_svd rank 16");
  }
}

// The test layer plain (Llama) or with what gpt-oss adds: biases, sinks, a 24-token window and YaRN RoPE.
mla::test::layer_spec llama_or_gpt_oss(bool gpt_oss) {
  return gpt_oss ? mla::test::with_gpt_oss_features(mla::test::layer_spec{}, 24) : mla::test::layer_spec{};
}

// The o_proj refit recovers a perturbed o_proj exactly: on the exact rewrite with W_o replaced by W_o + noise,
// the head outputs are the source's, so the least-squares answer is the source W_o (the independent reference).
BOOST_AUTO_TEST_CASE(refit_output_projection_recovers_o_proj) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (bool gpt_oss : {false, true}) {
      const mla::test::layer_spec spec = llama_or_gpt_oss(gpt_oss);
      const auto src = mla::test::random_gqa<double>(gen, spec);
      const mla::test::correlated_source<double> xs(gen, spec.hidden);
      const std::vector<matrix<double>> cal = xs.windows(gen, 4, 96);
      auto bent = mla::ref::exact_mla_from_gqa(src);
      const double rms = std::sqrt(bent.wo.squaredNorm() / static_cast<double>(bent.wo.size()));
      bent.wo += mla::test::randn<double>(gen, bent.wo.rows(), bent.wo.cols(), 0.3 * rms);
      mla::convert::refit_options ro;
      ro.ridge = 1e-12;
      const auto fixed = mla::convert::refit_output_projection(src, bent, cal, ro);
      const double before = relative_error(bent.wo, src.wo), after = relative_error(fixed.wo, src.wo);
      BOOST_TEST_MESSAGE((gpt_oss ? "gpt-oss layer" : "Llama layer") << ": o_proj error " << before << " -> " << after);
      BOOST_TEST(before > 0.1);
      BOOST_TEST(after < 1e-6);
      BOOST_TEST(mla::convert::attention_output_error(src, fixed, xs.windows(gen, 1, 64)) < 1e-6);
    }
  }
}

// With a fixed ridge the o_proj refit is the ridge least-squares solution computed here another way: head
// outputs recovered from the layer's own output through its (square, invertible) o_proj, and the damped
// problem solved by QR of the stacked system instead of the normal equations. Checked teacher-forced (the
// layer sees the source inputs) and with own inputs (the layer sees perturbed inputs, the targets stay the
// source layer on the clean ones), as the sequential refit calls it.
BOOST_AUTO_TEST_CASE(refit_output_projection_matches_direct_ridge) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::test::layer_spec spec;  // 4 heads x 16 = hidden 64: o_proj is square
    spec.biases = spec.sinks = true;
    const auto src = mla::test::random_gqa<double>(gen, spec);
    const mla::test::correlated_source<double> xs(gen, spec.hidden);
    const std::vector<matrix<double>> cal = xs.windows(gen, 3, 64);
    std::vector<matrix<double>> drifted = cal;
    for (matrix<double>& x : drifted) x += mla::test::randn<double>(gen, x.rows(), x.cols(), 0.2);
    convert_options o;
    o.rope = {rope_strategy::rorope, 8, 0};
    o.factor.method = factor_method::activation_pca;
    o.rank = 12;
    const auto layer = mla::convert::convert_layer(src, mla::test::moments_of(cal), o).layer;
    mla::convert::refit_options ro;
    ro.ridge = 0.05;
    const Eigen::Index width = layer.wo.cols(), hidden = layer.wo.rows();
    BOOST_REQUIRE(width == hidden);
    const dmatrix wo_inv_t = layer.wo.transpose().inverse();
    for (bool own : {false, true}) {
      const auto got = own ? mla::convert::refit_output_projection(src, layer, cal, ro, &drifted)
                           : mla::convert::refit_output_projection(src, layer, cal, ro);
      const std::vector<matrix<double>>& seen = own ? drifted : cal;
      dmatrix z(0, width), y(0, hidden);
      for (std::size_t w = 0; w < cal.size(); ++w) {
        dmatrix out = mla::ref::mla_prefill(layer, seen[w], mla_form::naive);
        out.rowwise() -= layer.bo.transpose();
        dmatrix want = mla::ref::gqa_prefill(src, cal[w]);
        want.rowwise() -= layer.bo.transpose();
        z.conservativeResize(z.rows() + want.rows(), Eigen::NoChange);
        z.bottomRows(want.rows()) = out * wo_inv_t;
        y.conservativeResize(y.rows() + want.rows(), Eigen::NoChange);
        y.bottomRows(want.rows()) = want;
      }
      const double lambda = ro.ridge * (z.transpose() * z).trace() / static_cast<double>(width);
      dmatrix a(z.rows() + width, width), b(z.rows() + width, hidden);
      a << z, std::sqrt(lambda) * dmatrix::Identity(width, width);
      b << y, std::sqrt(lambda) * layer.wo.transpose();
      const dmatrix w = a.colPivHouseholderQr().solve(b);  // [width, hidden] = W_o^T
      BOOST_TEST(relative_error(got.wo, dmatrix(w.transpose())) < 1e-8, (own ? "own inputs" : "teacher-forced"));
      BOOST_TEST(relative_error(got.w_uv, layer.w_uv) == 0.0);
    }
    std::vector<matrix<double>> short_one = drifted;
    short_one.pop_back();
    BOOST_CHECK_THROW(mla::convert::refit_output_projection(src, layer, cal, ro, &short_one), mla::error);
    BOOST_CHECK_THROW(mla::convert::refit_value_projection(src, layer, cal, ro, {}, &short_one), mla::error);
  }
}

// The w_uv refit with own inputs fits what the layer computes on them: with a near-zero ridge it beats the
// teacher-forced refit on the per-head objective it solves, sum_t ||W_o,h (W x_h,t(own) - o*_h,t(source))||^2,
// measured here directly from each head's output (the layer's o_proj restricted to that head).
BOOST_AUTO_TEST_CASE(refit_value_projection_on_own_inputs) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::layer_spec spec;  // no biases: the head outputs carry nothing that bo absorbs
    const auto src = mla::test::random_gqa<double>(gen, spec);
    const mla::test::correlated_source<double> xs(gen, spec.hidden);
    const std::vector<matrix<double>> cal = xs.windows(gen, 4, 96);
    std::vector<matrix<double>> drifted = cal;
    for (matrix<double>& x : drifted) x += mla::test::randn<double>(gen, x.rows(), x.cols(), 0.3);
    convert_options o;
    o.rope = {rope_strategy::rorope, 8, 0};
    o.factor.method = factor_method::activation_pca;
    o.rank = 16;
    const auto layer = mla::convert::convert_layer(src, mla::test::moments_of(cal), o).layer;
    mla::convert::refit_options ro;
    ro.ridge = 1e-10;
    const auto teacher = mla::convert::refit_value_projection(src, layer, cal, ro);
    const auto own = mla::convert::refit_value_projection(src, layer, cal, ro, {}, &drifted);
    const auto same = mla::convert::refit_value_projection(src, layer, cal, ro, {}, &cal);
    BOOST_TEST(relative_error(same.w_uv, teacher.w_uv) == 0.0);
    // sum over heads of the per-head output error on (drifted inputs -> source outputs on clean inputs).
    auto objective = [&](const mla::ref::mla_layer<double>& l) {
      double e = 0;
      const int d = l.v_head_dim;
      for (int h = 0; h < l.n_heads; ++h) {
        auto one = l;
        auto sg = src;
        one.wo.setZero();
        one.wo.middleCols(Eigen::Index(h) * d, d) = l.wo.middleCols(Eigen::Index(h) * d, d);
        one.bo.resize(0);
        sg.wo.setZero();
        sg.wo.middleCols(Eigen::Index(h) * d, d) = src.wo.middleCols(Eigen::Index(h) * d, d);
        sg.bo.resize(0);
        for (std::size_t w = 0; w < cal.size(); ++w)
          e += (mla::ref::mla_prefill(one, drifted[w], mla_form::naive) - mla::ref::gqa_prefill(sg, cal[w]))
                   .squaredNorm();
      }
      return e;
    };
    const double e0 = objective(layer), et = objective(teacher), eo = objective(own);
    BOOST_TEST_MESSAGE("w_uv refit on drifted inputs: objective " << e0 << ", teacher-forced refit " << et
                                                                  << ", own-input refit " << eo);
    BOOST_TEST(eo < et);
    BOOST_TEST(eo < e0);
  }
}

// The o_proj refit after the w_uv refit: with a fixed ridge it lowers the error on the calibration and on
// held-out tokens; with the validated ridge (which may keep o_proj as it is) it never raises the calibration error.
BOOST_AUTO_TEST_CASE(refit_output_projection_reduces_error) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (bool gpt_oss : {false, true}) {
      const mla::test::layer_spec spec = llama_or_gpt_oss(gpt_oss);
      const auto src = mla::test::random_gqa<double>(gen, spec);
      const mla::test::correlated_source<double> xs(gen, spec.hidden);
      const std::vector<matrix<double>> cal = xs.windows(gen, 64, 64);
      const std::vector<matrix<double>> held = xs.windows(gen, 8, 64);
      convert_options o;
      o.rope = {rope_strategy::rorope, 8, 0};
      o.factor.method = factor_method::attention_aware;
      o.rank = 16;
      const auto layer = mla::convert::refit_value_projection(
          src, mla::convert::convert_layer(src, mla::test::moments_of(cal), o).layer, cal);
      mla::convert::refit_options fixed;
      fixed.ridge = 0.01;
      const auto refit = mla::convert::refit_output_projection(src, layer, cal, fixed);
      const auto validated = mla::convert::refit_output_projection(src, layer, cal);
      const double before_cal = mla::convert::attention_output_error(src, layer, cal);
      const double after_cal = mla::convert::attention_output_error(src, refit, cal);
      const double before = mla::convert::attention_output_error(src, layer, held);
      const double after = mla::convert::attention_output_error(src, refit, held);
      const double validated_cal = mla::convert::attention_output_error(src, validated, cal);
      BOOST_TEST_MESSAGE((gpt_oss ? "gpt-oss layer" : "Llama layer")
                         << ", o_proj refit after the w_uv refit: calibration " << before_cal << " -> " << after_cal
                         << " (validated ridge " << validated_cal << "), held-out " << before << " -> " << after);
      BOOST_TEST(after_cal < before_cal);
      BOOST_TEST(after < before);
      BOOST_TEST(validated_cal <= before_cal * (1 + 1e-12));
    }
  }
}

// The RoPE frequency override: the standard ladder written explicitly rotates identically; a wrong size
// or a non-positive frequency is rejected.
BOOST_AUTO_TEST_CASE(rope_inv_freq_override) {
  mla::ref::rope_config c;
  c.dim = 8;
  c.theta = 10000;
  const mla::ref::rope<double> plain(c);
  mla::ref::rope_config o = c;
  o.inv_freq_override = plain.inv_freq();
  const mla::ref::rope<double> same(o);
  double a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  plain.apply(a, 17);
  same.apply(b, 17);
  for (int i = 0; i < 8; ++i) BOOST_TEST(a[i] == b[i]);
  o.inv_freq_override[2] *= 3;
  const mla::ref::rope<double> other(o);
  BOOST_TEST(other.inv_freq()[2] == 3 * plain.inv_freq()[2]);
  o.inv_freq_override.pop_back();
  BOOST_CHECK_THROW(mla::ref::rope<double>{o}, mla::error);
  o.inv_freq_override = {1, 0.5, -1, 0.1};
  BOOST_CHECK_THROW(mla::ref::rope<double>{o}, mla::error);
}

// Centring (factor_options::centre) at reduced rank, against the token data directly (means and errors summed
// over the calibration tokens one by one in double): the objective left is the sum of the discarded
// eigenvalues of the centred problem, and value_offset is the mean value error the latent leaves.
BOOST_AUTO_TEST_CASE(centred_objective_and_value_offset) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::calibrated_layer c(gen, 2, 64);
    const auto& [spec, src, xs, cal, stats, plan] = c;
    for (factor_method m : {factor_method::activation_pca, factor_method::attention_aware}) {
      mla::convert::factor_options fo;
      fo.method = m;
      fo.centre = true;
      const auto p = mla::convert::make_factor_problem(src, plan, stats, fo);
      const int r = 20;
      const auto f = mla::convert::solve_factor_problem(p, r);
      long n = 0;
      dmatrix xa_mean = dmatrix::Zero(1, spec.hidden + 1);
      for (const auto& x : cal) {
        dmatrix xa(x.rows(), x.cols() + 1);
        xa << x, dmatrix::Ones(x.rows(), 1);
        xa_mean += xa.colwise().sum();
        n += x.rows();
      }
      xa_mean /= double(n);
      double err = 0;
      dmatrix mean_err = dmatrix::Zero(1, p.rows());
      for (const auto& x : cal) {
        dmatrix xa(x.rows(), x.cols() + 1);
        xa << x, dmatrix::Ones(x.rows(), 1);
        const dmatrix e = xa * (p.a - f.up * f.down).transpose();  // [tokens, n] per-token error of y
        mean_err += e.colwise().sum() / double(n);
        const dmatrix centred = (xa.rowwise() - xa_mean.row(0)) * (p.a - f.up * f.down).transpose();
        err += (centred * p.l.transpose()).squaredNorm() / double(n);
      }
      BOOST_TEST(std::abs(err - p.residual(r)) <= 1e-9 * p.total(), to_string(m)
                                                                        << ": " << err << " vs " << p.residual(r));
      const Eigen::Index nv = p.rows() - p.key_rows;
      BOOST_REQUIRE(f.value_offset.size() == nv);
      BOOST_TEST(relative_error(dmatrix(f.value_offset.transpose()), dmatrix(mean_err.rightCols(nv))) < 1e-9,
                 to_string(m));
      BOOST_TEST(f.value_offset.norm() > 1e-6 * mean_err.norm(), "the latent should leave some mean out at rank " << r);
    }
  }
}

// What makes centring exact: shifting every value of the source by a constant (a change of b_v) shifts the
// source layer's output by W_o times it, and the centred conversion's output by exactly the same amount at any
// rank: the value mean never reaches the latent problem, and the latent's shifted mean only moves each
// query's NoPE scores by a constant, which softmax ignores. An uncentred conversion projects the shift onto
// its rank-r subspace and fails this. Full rank stays exact with centring.
BOOST_AUTO_TEST_CASE(centring_passes_a_value_shift_through_exactly) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::test::layer_spec spec;
    spec.biases = true;
    const auto src = mla::test::random_gqa<double>(gen, spec);
    auto shifted = src;
    const mla::ref::vector<double> delta = mla::test::randn_vec<double>(gen, spec.n_kv_heads * spec.head_dim, 1.0);
    shifted.bv += delta;
    mla::ref::vector<double> out_shift = mla::ref::vector<double>::Zero(spec.hidden);  // sum_h W_o,h delta_j
    for (int h = 0; h < spec.n_heads; ++h)
      out_shift += src.wo.middleCols(h * spec.head_dim, spec.head_dim) *
                   delta.segment(src.kv_head_of(h) * spec.head_dim, spec.head_dim);
    const mla::test::correlated_source<double> xs(gen, spec.hidden);
    const auto cal = xs.windows(gen, 2, 64);
    const auto stats = mla::test::moments_of(cal);
    const matrix<double> x = xs.sample(gen, 40);
    const matrix<double> src_diff = mla::ref::gqa_prefill(shifted, x) - mla::ref::gqa_prefill(src, x);
    BOOST_TEST((src_diff.rowwise() - out_shift.transpose()).norm() < 1e-10 * out_shift.norm() * 40);
    for (factor_method m : all_methods) {
      for (bool centre : {true, false}) {
        convert_options o;
        o.rope = {rope_strategy::rorope, 8, 0};
        o.factor.method = m;
        o.factor.centre = centre;
        o.rank = 16;
        const matrix<double> diff =
            mla::ref::mla_prefill(mla::convert::convert_layer(shifted, stats, o).layer, x, mla_form::absorbed) -
            mla::ref::mla_prefill(mla::convert::convert_layer(src, stats, o).layer, x, mla_form::absorbed);
        const double miss = relative_error(diff, src_diff);
        if (centre)
          BOOST_TEST(miss < 1e-9, to_string(m) << " centred: " << miss);
        else if (m != factor_method::weight_svd)  // weight SVD sees the bias column like any other input
          BOOST_TEST(miss > 1e-3, to_string(m) << " uncentred should not pass the shift through: " << miss);
      }
      convert_options full;
      full.rope = {rope_strategy::rorope, 8, 0};
      full.factor.method = m;
      full.factor.centre = true;
      const auto exact = mla::convert::convert_layer(src, stats, full);
      full.factor.centre = false;
      const auto plain = mla::convert::convert_layer(src, stats, full);
      BOOST_TEST(relative_error(mla::ref::mla_prefill(exact.layer, x, mla_form::absorbed),
                                mla::ref::mla_prefill(plain.layer, x, mla_form::absorbed)) < 1e-9,
                 to_string(m) << " full rank");
    }
  }
}

// Centring is refused on a layer with sinks (neither identity holds there), naming why.
BOOST_AUTO_TEST_CASE(centring_refuses_sinks) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  mla::test::layer_spec spec;
  spec.biases = spec.sinks = true;
  const auto src = mla::test::random_gqa<double>(gen, spec);
  const mla::test::correlated_source<double> xs(gen, spec.hidden);
  const auto stats = mla::test::moments_of(xs.windows(gen, 1, 32));
  convert_options o;
  o.rope = {rope_strategy::rorope, 8, 0};
  o.factor.centre = true;
  o.rank = 16;
  BOOST_CHECK_EXCEPTION(mla::convert::convert_layer(src, stats, o), mla::error,
                        [](const mla::error& e) { return std::string(e.what()).find("sinks") != std::string::npos; });
}

// The w_uv refit of a centred conversion fits the value error left after the folded mean: given the offset
// it lowers the held-out error.
BOOST_AUTO_TEST_CASE(refit_after_centring) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::calibrated_layer c(gen, 4, 64);
    const auto& [spec, src, xs, cal, stats, plan] = c;
    const std::vector<matrix<double>> held = xs.windows(gen, 2, 64);
    mla::convert::factor_options fo;
    fo.method = factor_method::weight_svd;  // a large factorisation error, so the refit has something to fix
    fo.centre = true;
    const auto p = mla::convert::make_factor_problem(src, plan, stats, fo);
    const auto f = mla::convert::solve_factor_problem(p, 16);
    const auto layer = mla::convert::assemble_mla_layer(src, plan, f);
    check_refit_lowers_error(src, layer, mla::convert::refit_value_projection(src, layer, cal, {}, f.value_offset), cal,
                             held, "centred weight_svd rank 16");
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
