#include "mla/reference/exact_rewrite.hpp"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"
#include "mla/reference/rope.hpp"
#include "random_layers.hpp"

namespace {

using mla::ref::gqa_cache;
using mla::ref::gqa_layer;
using mla::ref::matrix;
using mla::ref::mla_cache;
using mla::ref::mla_form;
using mla::ref::mla_layer;
using mla::ref::row_vector;
using mla::ref::vector;

using mla::test::gqa_spec;
using mla::test::randn;
using mla::test::random_gqa;
using mla::test::test_seed;
// The equivalence bounds the rewrite promises (norm-wise relative error).
using mla::test::tolerance;

// gpt-oss attention (formats.md §1.4-1.5) with a small hidden size: 64/8 heads of 64, q/k/v/o biases,
// sinks, window 128, YaRN RoPE, scale 1/8.
gqa_spec gpt_oss_like() {
  return {128, 64, 8, 64, true, true, true, true, true, 128, mla::ref::rope_config::gpt_oss(), 0.125};
}
// SmolLM2-135M attention (formats.md §3.1): 9/3 heads of 64, no biases, no sinks, full causal, scale 1/8.
gqa_spec smollm2_like() {
  return {96, 9, 3, 64, false, false, false, false, false, 0, mla::ref::rope_config::smollm2(), 0.125};
}

struct max_errors {
  double prefill = 0;  // MLA naive / absorbed prefill vs GQA prefill
  double decode = 0;   // GQA, MLA naive, MLA absorbed decode vs GQA prefill
  void prefill_at_least(double e) { prefill = std::max(prefill, e); }
  void decode_at_least(double e) { decode = std::max(decode, e); }
};

// GQA vs its exact MLA rewrite, both MLA forms, in prefill and token-by-token decode, all against the GQA
// prefill of the whole sequence x [tokens, hidden]. GQA and each MLA form decode the first `head` tokens
// from an empty cache, then prefill the first tokens - tail tokens into a fresh cache and decode the last
// `tail` tokens on top of it.
// (MLA naive decode expands n_heads x window keys per step, so long sequences keep `tail` small.)
template <class T>
max_errors check_exact(const gqa_layer<T>& gqa, const matrix<T>& x, int head, int tail) {
  const mla_layer<T> mla = mla::ref::exact_mla_from_gqa(gqa);
  const Eigen::Index n = x.rows();
  max_errors err;

  const matrix<T> want = mla::ref::gqa_prefill(gqa, x);
  // GQA itself: decode from an empty cache, and decode after a prefill of the prefix.
  const Eigen::Index p = n - tail;
  {
    gqa_cache<T> cache;
    for (Eigen::Index t = 0; t < std::min<Eigen::Index>(head, n); ++t) {
      const double e = mla::ref::relative_error(mla::ref::gqa_decode(gqa, x.row(t), cache), want.row(t));
      BOOST_TEST(e <= tolerance<T>(), "GQA decode, first tokens, row " << t << ": " << e);
      err.decode_at_least(e);
    }
    cache.clear();
    mla::ref::gqa_prefill(gqa, x.topRows(p), cache);
    for (Eigen::Index t = p; t < n; ++t) {
      const double e = mla::ref::relative_error(mla::ref::gqa_decode(gqa, x.row(t), cache), want.row(t));
      BOOST_TEST(e <= tolerance<T>(), "GQA decode after prefill, row " << t << ": " << e);
      err.decode_at_least(e);
    }
  }
  for (mla_form form : {mla_form::naive, mla_form::absorbed}) {
    BOOST_TEST_CONTEXT((form == mla_form::naive ? "naive" : "absorbed") << " decode") {
      mla_cache<T> cache;
      for (Eigen::Index t = 0; t < std::min<Eigen::Index>(head, n); ++t) {
        const double e = mla::ref::relative_error(mla::ref::mla_decode(mla, x.row(t), cache, form), want.row(t));
        BOOST_TEST(e <= tolerance<T>(), "first tokens, row " << t << ": " << e);
        err.decode_at_least(e);
      }
      cache.clear();
      const double ep =
          mla::ref::relative_error(mla::ref::mla_prefill(mla, x.topRows(p), cache, form), want.topRows(p));
      BOOST_TEST(ep <= tolerance<T>());
      err.prefill_at_least(ep);
      BOOST_TEST(cache.length() == p);
      BOOST_TEST(cache.c.cols() == 2 * gqa.n_kv_heads * gqa.head_dim);  // the exact latent: all keys and values
      for (Eigen::Index t = p; t < n; ++t) {
        const double e = mla::ref::relative_error(mla::ref::mla_decode(mla, x.row(t), cache, form), want.row(t));
        BOOST_TEST(e <= tolerance<T>(), "after prefill, row " << t << ": " << e);
        err.decode_at_least(e);
      }
    }
  }
  return err;
}

// A random layer of `spec` on a random sequence of [min_tokens, max_tokens] tokens, all drawn from one logged seed
// (MLA_TEST_SEED replays it); split(tokens) gives the (prefill head, decoded tail) lengths check_exact takes.
template <class T, class Split>
void run_model_like(const char* name, const gqa_spec& spec, int min_tokens, int max_tokens, Split split) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  const int tokens = std::uniform_int_distribution<int>(min_tokens, max_tokens)(gen);
  BOOST_TEST_CONTEXT(name << ", " << (std::is_same_v<T, float> ? "float" : "double") << ", seed " << seed << ", tokens "
                          << tokens) {
    const gqa_layer<T> gqa = random_gqa<T>(gen, spec);
    const matrix<T> x = randn<T>(gen, tokens, spec.hidden, 1.0);
    const auto [head, tail] = split(tokens);
    const max_errors err = check_exact(gqa, x, head, tail);
    BOOST_TEST_MESSAGE(name << " " << (std::is_same_v<T, float> ? "float" : "double") << ": max relative error "
                            << "prefill " << err.prefill << ", decode " << err.decode);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(reference_exact_rewrite)

using value_types = std::tuple<float, double>;

// The key deliverable: gpt-oss attention (biases, sinks, window 128, YaRN) rewritten as MLA gives the same
// outputs. The sequence is longer than the window so that the window cuts keys, in prefill and decode.
BOOST_AUTO_TEST_CASE_TEMPLATE(gpt_oss_like_layer_is_reproduced, T, value_types) {
  run_model_like<T>("gpt-oss-like", gpt_oss_like(), 136, 150, [](int) { return std::pair<int, int>{3, 1}; });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(smollm2_like_layer_is_reproduced, T, value_types) {
  run_model_like<T>("SmolLM2-like", smollm2_like(), 40, 64, [](int tokens) {
    return std::pair<int, int>{tokens, tokens / 2};
  });
}

// The test data is not degenerate: for the gpt-oss-like layer, the window and the sinks both change the
// output, so their exact reproduction above means something.
BOOST_AUTO_TEST_CASE(gpt_oss_like_window_and_sinks_matter) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const gqa_layer<double> gqa = random_gqa<double>(gen, gpt_oss_like());
    const matrix<double> x = randn<double>(gen, 150, gqa.hidden, 1.0);
    const matrix<double> base = mla::ref::gqa_prefill(gqa, x);
    gqa_layer<double> no_window = gqa;
    no_window.attention.sliding_window = 0;
    const matrix<double> full = mla::ref::gqa_prefill(no_window, x);
    BOOST_TEST(mla::ref::relative_error(full.topRows(128), base.topRows(128)) == 0.0);
    BOOST_TEST(mla::ref::relative_error(full.bottomRows(22), base.bottomRows(22)) > 1e-3);
    gqa_layer<double> no_sinks = gqa;
    no_sinks.sinks.resize(0);
    BOOST_TEST(mla::ref::relative_error(mla::ref::gqa_prefill(no_sinks, x), base) > 1e-2);
  }
}

// Random small layers with every combination of biases (one-sided k/v biases included), windows, sinks
// and RoPE layouts/scalings.
BOOST_AUTO_TEST_CASE_TEMPLATE(random_small_layers_are_reproduced, T, value_types) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); };
  for (int trial = 0; trial < 10; ++trial) {
    BOOST_TEST_CONTEXT("seed " << seed << ", trial " << trial) {
      const int tokens = pick(1, 30);
      gqa_spec s{};
      s.n_kv_heads = pick(1, 4);
      s.n_heads = s.n_kv_heads * pick(1, 4);
      s.head_dim = 2 * pick(1, 16);
      s.hidden = pick(4, 40);
      s.bq = pick(0, 1);
      s.bk = pick(0, 1);
      s.bv = pick(0, 1);
      s.bo = pick(0, 1);
      s.sinks = pick(0, 1);
      s.window = pick(0, 1) == 0 ? 0 : pick(1, tokens);
      s.rope = mla::test::random_rope(gen, s.head_dim);
      s.scale = 1.0 / std::sqrt(double(s.head_dim));
      const gqa_layer<T> gqa = random_gqa<T>(gen, s);
      const matrix<T> x = randn<T>(gen, tokens, s.hidden, 1.0);
      check_exact(gqa, x, tokens, pick(0, tokens));
    }
  }
}

BOOST_AUTO_TEST_CASE(rewrite_structure) {
  std::mt19937_64 gen(3);
  // bq, no bk, bv, no bo, sinks; window 5.
  gqa_spec spec{16, 6, 2, 8, true, false, true, false, true, 5, mla::ref::rope_config::smollm2(), 0.3};
  spec.rope.dim = 8;
  gqa_layer<double> gqa = random_gqa<double>(gen, spec);
  const mla_layer<double> m = mla::ref::exact_mla_from_gqa(gqa);
  BOOST_CHECK_NO_THROW(m.validate());
  BOOST_TEST(m.latent_rank == 2 * 2 * 8);
  BOOST_TEST(m.cached_elements_per_token() == 32);  // = the GQA cache: nothing compressed yet
  BOOST_TEST((m.nope_dim == 8 && m.rope_dim == 0 && m.v_head_dim == 8 && m.n_heads == 6));
  BOOST_TEST((m.latent_rope_offsets == std::vector<int>{0, 8}));
  BOOST_TEST(m.uses_latent_rope());
  BOOST_CHECK_THROW(m.shape(), mla::error);
  BOOST_TEST((m.w_dkv.topRows(16) == gqa.wk));
  BOOST_TEST((m.w_dkv.bottomRows(16) == gqa.wv));
  // bk absent, bv present: the key half of the latent bias is zero.
  BOOST_TEST(gqa.bk.size() == 0);
  BOOST_TEST(m.b_dkv.head(16).isZero(0));
  BOOST_TEST((m.b_dkv.tail(16) == gqa.bv));
  BOOST_TEST((m.wq == gqa.wq && m.wo == gqa.wo && m.sinks == gqa.sinks));
  BOOST_TEST(m.bo.size() == 0);
  BOOST_TEST(m.attention.sliding_window == 5);
  BOOST_TEST(m.attention.softmax_scale == 0.3);
  // Head h selects key block h/3 and value block 2 + h/3.
  for (int h = 0; h < 6; ++h) {
    const int g = h / 3;
    BOOST_TEST((m.w_uk.middleRows(h * 8, 8).middleCols(g * 8, 8).isIdentity(0)));
    BOOST_TEST(m.w_uk.middleRows(h * 8, 8).sum() == 8.0);
    BOOST_TEST((m.w_uv.middleRows(h * 8, 8).middleCols(16 + g * 8, 8).isIdentity(0)));
    BOOST_TEST(m.w_uv.middleRows(h * 8, 8).sum() == 8.0);
  }
  // An invalid GQA layer is rejected before conversion.
  gqa.wk.resize(15, 16);
  BOOST_CHECK_THROW(mla::ref::exact_mla_from_gqa(gqa), mla::error);
}

BOOST_AUTO_TEST_SUITE_END()
