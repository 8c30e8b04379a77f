#include "mla/model/attention_backend.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/supported_shapes.hpp"
#include "mla/model/decoder.hpp"
#include "random.hpp"
#include "random_layers.hpp"

namespace {

using mla::model::attention_backend;
using mla::ref::matrix;
using mla::ref::row_vector;
using mla::test::pick;
using mla::test::randn;
using mla::test::randn_vec;
using mla::test::test_seed;

// A random MLA layer of a supported shape (the CPU kernel's instantiations): 64 = 48 content + 16 RoPE
// channels, latent rank 32; weights N(0, 1/sqrt(fan_in)), optional biases and sinks, an optional window.
mla::ref::mla_layer<double> random_mla(std::mt19937_64& gen, int max_window) {
  auto l = mla::ref::mla_layer<double>::make<mla::mla_shape<64, 16, 32>>(pick(gen, 8, 48), pick(gen, 1, 5),
                                                                         pick(gen, 4, 24));
  const double in_h = 1.0 / std::sqrt(double(l.hidden)), in_r = 1.0 / std::sqrt(double(l.latent_rank));
  l.wq = randn<double>(gen, l.wq.rows(), l.wq.cols(), in_h);
  l.w_dkv = randn<double>(gen, l.w_dkv.rows(), l.w_dkv.cols(), in_h);
  l.w_kr = randn<double>(gen, l.w_kr.rows(), l.w_kr.cols(), in_h);
  l.w_uk = randn<double>(gen, l.w_uk.rows(), l.w_uk.cols(), in_r);
  l.w_uv = randn<double>(gen, l.w_uv.rows(), l.w_uv.cols(), in_r);
  l.wo = randn<double>(gen, l.wo.rows(), l.wo.cols(), 1.0 / std::sqrt(double(l.wo.cols())));
  if (pick(gen, 0, 1)) {
    l.bq = randn_vec<double>(gen, l.wq.rows(), 0.5);
    l.b_dkv = randn_vec<double>(gen, l.latent_rank, 0.5);
    l.b_kr = randn_vec<double>(gen, l.rope_dim, 0.5);
    l.bo = randn_vec<double>(gen, l.hidden, 0.5);
  }
  if (pick(gen, 0, 1)) l.sinks = randn_vec<double>(gen, l.n_heads, 1.0);
  l.rope = mla::test::random_rope(gen, l.rope_dim);
  l.attention.sliding_window = pick(gen, 0, 1) ? pick(gen, 1, max_window) : 0;
  return l;
}

template <class To, class From>
mla::ref::mla_layer<To> cast_mla(const mla::ref::mla_layer<From>& f) {
  mla::ref::mla_layer<To> t;
  t.hidden = f.hidden, t.n_heads = f.n_heads, t.nope_dim = f.nope_dim, t.rope_dim = f.rope_dim;
  t.latent_rank = f.latent_rank, t.v_head_dim = f.v_head_dim;
  t.wq = f.wq.template cast<To>(), t.bq = f.bq.template cast<To>();
  t.w_dkv = f.w_dkv.template cast<To>(), t.b_dkv = f.b_dkv.template cast<To>();
  t.w_kr = f.w_kr.template cast<To>(), t.b_kr = f.b_kr.template cast<To>();
  t.w_uk = f.w_uk.template cast<To>(), t.w_uv = f.w_uv.template cast<To>();
  t.wo = f.wo.template cast<To>(), t.bo = f.bo.template cast<To>(), t.sinks = f.sinks.template cast<To>();
  t.rope = f.rope, t.attention = f.attention;
  return t;
}

template <class To, class From>
mla::ref::gqa_layer<To> cast_gqa(const mla::ref::gqa_layer<From>& f) {
  mla::ref::gqa_layer<To> t;
  t.hidden = f.hidden, t.n_heads = f.n_heads, t.n_kv_heads = f.n_kv_heads, t.head_dim = f.head_dim;
  t.wq = f.wq.template cast<To>(), t.wk = f.wk.template cast<To>(), t.wv = f.wv.template cast<To>();
  t.wo = f.wo.template cast<To>(), t.bq = f.bq.template cast<To>(), t.bk = f.bk.template cast<To>();
  t.bv = f.bv.template cast<To>(), t.bo = f.bo.template cast<To>(), t.sinks = f.sinks.template cast<To>();
  t.rope = f.rope, t.attention = f.attention;
  return t;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(attention_backend_decode)

// Decode of a random MLA layer after a prefill, through the reference and through the CPU kernel, each
// against the float64 reference on the same (float-rounded) weights and inputs.
BOOST_AUTO_TEST_CASE(mla_reference_and_cpu_kernel_match_float64) {
  const auto seed = test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (int trial = 0; trial < 6; ++trial) {
      const int n = pick(gen, 2, 60), prefill = pick(gen, 1, n - 1);
      const auto layer_f = cast_mla<float>(random_mla(gen, n));
      const auto layer_d = cast_mla<double>(layer_f);
      const matrix<float> x = randn<float>(gen, n, layer_f.hidden, 1.0);
      const matrix<double> xd = x.cast<double>();
      const auto absorbed = mla::ref::mla_form::absorbed;
      BOOST_TEST_REQUIRE(mla::model::runs_on_kernel(attention_backend::cpu_kernel, layer_f, absorbed));
      BOOST_TEST_REQUIRE(!mla::model::runs_on_kernel(attention_backend::reference, layer_f, absorbed));
      for (auto backend : {attention_backend::reference, attention_backend::cpu_kernel}) {
        BOOST_TEST_CONTEXT("trial " << trial << ", backend " << mla::model::to_string(backend) << ", " << n
                                    << " tokens, window " << layer_f.attention.sliding_window) {
          mla::ref::mla_cache<float> cache;
          mla::ref::mla_cache<double> cache_d;
          mla::ref::mla_prefill(layer_f, x.topRows(prefill), cache, mla::ref::mla_form::absorbed);
          mla::ref::mla_prefill(layer_d, xd.topRows(prefill), cache_d, mla::ref::mla_form::naive);
          for (int t = prefill; t < n; ++t) {
            const row_vector<float> got =
                mla::model::mla_decode(backend, layer_f, row_vector<float>(x.row(t)), cache, absorbed);
            const row_vector<double> want =
                mla::ref::mla_decode(layer_d, row_vector<double>(xd.row(t)), cache_d, mla::ref::mla_form::naive);
            BOOST_TEST(mla::ref::relative_error(got.cast<double>().eval(), want) < 2e-5, "token " << t);
          }
          BOOST_TEST(cache.length() == n);
        }
      }
    }
  }
}

// The same for a random GQA layer, with an unbounded cache and with a sliding-window ring cache (the paged
// view then maps position p to ring row p % window).
BOOST_AUTO_TEST_CASE(gqa_reference_and_cpu_kernel_match_float64) {
  const auto seed = test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (int trial = 0; trial < 8; ++trial) {
      const int n = pick(gen, 2, 60), prefill = pick(gen, 1, n - 1);
      mla::test::gqa_spec s{};
      s.n_kv_heads = pick(gen, 1, 3);
      s.n_heads = s.n_kv_heads * pick(gen, 1, 4);
      s.head_dim = 2 * pick(gen, 2, 16);
      s.hidden = pick(gen, 8, 48);
      s.bq = s.bk = s.bv = s.bo = pick(gen, 0, 1) == 1;
      s.sinks = pick(gen, 0, 1) == 1;
      s.window = trial % 2 ? pick(gen, 1, n) : 0;
      s.rope = mla::test::random_rope(gen, s.head_dim);
      s.scale = 1.0 / std::sqrt(double(s.head_dim));
      const auto layer_f = cast_gqa<float>(mla::test::random_gqa<double>(gen, s));
      const auto layer_d = cast_gqa<double>(layer_f);
      const matrix<float> x = randn<float>(gen, n, s.hidden, 1.0);
      const matrix<double> xd = x.cast<double>();
      BOOST_TEST_REQUIRE(mla::model::runs_on_kernel(attention_backend::cpu_kernel, layer_f));
      for (auto backend : {attention_backend::reference, attention_backend::cpu_kernel})
        for (bool ring : {false, true}) {
          if (ring && s.window == 0) continue;
          BOOST_TEST_CONTEXT("trial " << trial << ", backend " << mla::model::to_string(backend) << ", " << n
                                      << " tokens, window " << s.window << (ring ? " (ring cache)" : "")) {
            mla::ref::gqa_cache<float> cache;
            mla::ref::gqa_cache<double> cache_d;
            if (ring) cache.window = s.window;
            mla::ref::gqa_prefill(layer_f, x.topRows(prefill), cache);
            mla::ref::gqa_prefill(layer_d, xd.topRows(prefill), cache_d);
            for (int t = prefill; t < n; ++t) {
              const row_vector<float> got =
                  mla::model::gqa_decode(backend, layer_f, row_vector<float>(x.row(t)), cache);
              const row_vector<double> want = mla::ref::gqa_decode(layer_d, row_vector<double>(xd.row(t)), cache_d);
              BOOST_TEST(mla::ref::relative_error(got.cast<double>().eval(), want) < 2e-5, "token " << t);
            }
            BOOST_TEST(cache.length() == n);
          }
        }
    }
  }
}

// What the kernel cannot run goes to the reference: double, the naive form, a shape outside the list.
BOOST_AUTO_TEST_CASE(what_the_kernel_cannot_run_takes_the_reference) {
  std::mt19937_64 gen(7);
  const auto layer = random_mla(gen, 8);
  const auto layer_f = cast_mla<float>(layer);
  BOOST_TEST(!mla::model::runs_on_kernel(attention_backend::cpu_kernel, layer, mla::ref::mla_form::absorbed));
  BOOST_TEST(!mla::model::runs_on_kernel(attention_backend::cpu_kernel, layer_f, mla::ref::mla_form::naive));
  auto odd = layer_f;
  odd.latent_rank = 33;
  odd.w_dkv.conservativeResize(33, Eigen::NoChange);  // one more latent channel, filled below
  odd.w_uk.conservativeResize(Eigen::NoChange, 33);
  odd.w_uv.conservativeResize(Eigen::NoChange, 33);
  odd.w_dkv.row(32) = randn<float>(gen, 1, odd.hidden, 0.2);
  odd.w_uk.col(32) = randn<float>(gen, odd.w_uk.rows(), 1, 0.2);
  odd.w_uv.col(32) = randn<float>(gen, odd.w_uv.rows(), 1, 0.2);
  if (odd.b_dkv.size()) odd.b_dkv.conservativeResize(33), odd.b_dkv[32] = 0.1f;
  BOOST_TEST(!mla::is_supported(odd.shape()));
  BOOST_TEST(!mla::model::runs_on_kernel(attention_backend::cpu_kernel, odd, mla::ref::mla_form::absorbed));
  // And it still decodes (on the reference), equal to ref::mla_decode.
  const matrix<float> x = randn<float>(gen, 3, odd.hidden, 1.0);
  mla::ref::mla_cache<float> a, b;
  for (int t = 0; t < 3; ++t) {
    const auto absorbed = mla::ref::mla_form::absorbed;
    const row_vector<float> got =
        mla::model::mla_decode(attention_backend::cpu_kernel, odd, row_vector<float>(x.row(t)), a, absorbed);
    const row_vector<float> want = mla::ref::mla_decode(odd, row_vector<float>(x.row(t)), b, absorbed);
    BOOST_TEST((got - want).cwiseAbs().maxCoeff() == 0.0f);
  }
}

BOOST_AUTO_TEST_CASE(backend_names) {
  BOOST_TEST((mla::model::parse_attention_backend("reference") == attention_backend::reference));
  BOOST_TEST((mla::model::parse_attention_backend("cpu") == attention_backend::cpu_kernel));
  BOOST_TEST(std::string(mla::model::to_string(attention_backend::cpu_kernel)) == "cpu");
  BOOST_CHECK_EXCEPTION(mla::model::parse_attention_backend("gpu"), mla::error, [](const mla::error& e) {
    return std::string(e.what()).find("unknown attention backend 'gpu', expected reference or cpu") !=
           std::string::npos;
  });
  // The decoder's defaults: MLA on the kernel, GQA on the reference.
  const mla::model::decode_backends d;
  BOOST_TEST((d.mla == attention_backend::cpu_kernel && d.gqa == attention_backend::reference));
}

BOOST_AUTO_TEST_SUITE_END()
