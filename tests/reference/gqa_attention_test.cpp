#include "mla/reference/gqa_attention.hpp"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "expect_error.hpp"
#include "mla/core/error.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/rope.hpp"
#include "random_layers.hpp"

namespace {

using mla::ref::gqa_cache;
using mla::ref::gqa_layer;
using mla::ref::matrix;
using mla::ref::row_vector;
using mla::ref::vector;

using mla::test::gqa_spec;
using mla::test::message_has;
using mla::test::randn;
using mla::test::random_gqa;
using mla::test::test_seed;
using mla::test::tolerance;

// Random spec: head counts, biases, sinks, window, RoPE layout and scaling all vary.
gqa_spec random_spec(std::mt19937_64& gen, int tokens) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); };
  gqa_spec s{};
  s.n_kv_heads = pick(1, 3);
  s.n_heads = s.n_kv_heads * pick(1, 3);
  s.head_dim = 16 * pick(1, 4);
  s.hidden = pick(8, 48);
  s.bq = s.bk = s.bv = s.bo = pick(0, 1) == 1;
  s.sinks = pick(0, 1) == 1;
  s.window = pick(0, 2) == 0 ? 0 : pick(1, tokens);
  s.rope = mla::test::random_rope(gen, s.head_dim);
  s.scale = 1.0 / std::sqrt(double(s.head_dim));
  return s;
}

template <class To, class From>
gqa_layer<To> cast_layer(const gqa_layer<From>& f) {
  gqa_layer<To> t;
  t.hidden = f.hidden;
  t.n_heads = f.n_heads;
  t.n_kv_heads = f.n_kv_heads;
  t.head_dim = f.head_dim;
  t.wq = f.wq.template cast<To>();
  t.wk = f.wk.template cast<To>();
  t.wv = f.wv.template cast<To>();
  t.wo = f.wo.template cast<To>();
  t.bq = f.bq.template cast<To>();
  t.bk = f.bk.template cast<To>();
  t.bv = f.bv.template cast<To>();
  t.bo = f.bo.template cast<To>();
  t.sinks = f.sinks.template cast<To>();
  t.rope = f.rope;
  t.attention = f.attention;
  return t;
}

// Independent float64 reference: direct loops over tokens, heads, keys and channels, straight from
// formats.md §1.4 (only the RoPE rotation is shared with the library).
matrix<double> loop_reference(const gqa_layer<double>& l, const matrix<double>& x) {
  const int n = static_cast<int>(x.rows()), d = l.head_dim, hq = l.n_heads, hk = l.n_kv_heads;
  const mla::ref::rope<double> rot(l.rope);
  auto proj = [&](const matrix<double>& w, const vector<double>& b, int t, int row) {
    double acc = b.size() ? b[row] : 0.0;
    for (int j = 0; j < l.hidden; ++j) acc += w(row, j) * x(t, j);
    return acc;
  };
  std::vector<std::vector<double>> q(n, std::vector<double>(hq * d)), k(n, std::vector<double>(hk * d)),
      v(n, std::vector<double>(hk * d));
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < hq * d; ++i) q[t][i] = proj(l.wq, l.bq, t, i);
    for (int i = 0; i < hk * d; ++i) {
      k[t][i] = proj(l.wk, l.bk, t, i);
      v[t][i] = proj(l.wv, l.bv, t, i);
    }
    for (int h = 0; h < hq; ++h) rot.apply(&q[t][h * d], t);
    for (int h = 0; h < hk; ++h) rot.apply(&k[t][h * d], t);
  }
  const int group = hq / hk;
  const int w = l.attention.sliding_window;
  std::vector<std::vector<double>> attn(n, std::vector<double>(hq * d, 0.0));
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < hq; ++h) {
      const int g = h / group;
      std::vector<double> s;
      std::vector<int> keys;
      for (int j = 0; j <= t; ++j) {
        if (w > 0 && !(t - w < j)) continue;
        double dot = 0;
        for (int i = 0; i < d; ++i) dot += q[t][h * d + i] * k[j][g * d + i];
        s.push_back(l.attention.softmax_scale * dot);
        keys.push_back(j);
      }
      const bool has_sink = l.sinks.size() != 0;
      double m = has_sink ? l.sinks[h] : -std::numeric_limits<double>::infinity();
      for (double e : s) m = std::max(m, e);
      double den = has_sink ? std::exp(l.sinks[h] - m) : 0.0;
      for (double e : s) den += std::exp(e - m);
      for (std::size_t a = 0; a < s.size(); ++a) {
        const double p = std::exp(s[a] - m) / den;
        for (int i = 0; i < d; ++i) attn[t][h * d + i] += p * v[keys[a]][g * d + i];
      }
    }
  }
  matrix<double> out(n, l.hidden);
  for (int t = 0; t < n; ++t)
    for (int o = 0; o < l.hidden; ++o) {
      double acc = l.bo.size() ? l.bo[o] : 0.0;
      for (int i = 0; i < hq * d; ++i) acc += l.wo(o, i) * attn[t][i];
      out(t, o) = acc;
    }
  return out;
}

// Token-by-token decode from an empty cache: [tokens, hidden].
template <class T>
matrix<T> decode_all(const gqa_layer<T>& l, const matrix<T>& x) {
  gqa_cache<T> cache;
  matrix<T> out(x.rows(), l.hidden);
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const row_vector<T> xt = x.row(t);
    out.row(t) = mla::ref::gqa_decode(l, xt, cache);
  }
  BOOST_TEST(cache.length() == x.rows());
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(reference_gqa_attention)

using value_types = std::tuple<float, double>;

BOOST_AUTO_TEST_CASE_TEMPLATE(prefill_matches_loop_reference, T, value_types) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  for (int trial = 0; trial < 12; ++trial) {
    BOOST_TEST_CONTEXT("seed " << seed << ", trial " << trial) {
      const int tokens = std::uniform_int_distribution<int>(1, 40)(gen);
      const gqa_spec spec = random_spec(gen, tokens);
      BOOST_TEST_INFO("heads " << spec.n_heads << "/" << spec.n_kv_heads << ", head_dim " << spec.head_dim
                               << ", window " << spec.window << ", sinks " << spec.sinks);
      // The layer is drawn in T and the float64 reference runs on the same (T-rounded) numbers.
      const gqa_layer<T> layer = random_gqa<T>(gen, spec);
      const matrix<T> x = randn<T>(gen, tokens, spec.hidden, 1.0);
      const matrix<double> want = loop_reference(cast_layer<double>(layer), x.template cast<double>());
      const matrix<T> got = mla::ref::gqa_prefill(layer, x);
      BOOST_TEST(mla::ref::relative_error(got, want) <= tolerance<T>());
    }
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(decode_and_chunked_prefill_match_prefill, T, value_types) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  for (int trial = 0; trial < 8; ++trial) {
    BOOST_TEST_CONTEXT("seed " << seed << ", trial " << trial) {
      const int tokens = std::uniform_int_distribution<int>(2, 40)(gen);
      const gqa_spec spec = random_spec(gen, tokens);
      const gqa_layer<T> layer = random_gqa<T>(gen, spec);
      const matrix<T> x = randn<T>(gen, tokens, spec.hidden, 1.0);
      const matrix<T> full = mla::ref::gqa_prefill(layer, x);

      BOOST_TEST(mla::ref::relative_error(decode_all(layer, x), full) <= tolerance<T>());
      // Row by row too: an error in one early row cannot hide behind the norm of the whole.
      gqa_cache<T> cache;
      for (int t = 0; t < tokens; ++t) {
        const row_vector<T> xt = x.row(t);
        BOOST_TEST(mla::ref::relative_error(mla::ref::gqa_decode(layer, xt, cache), full.row(t)) <= tolerance<T>());
      }

      // Two prefill chunks then decode: the cache carries positions and keys across calls.
      const int a = std::uniform_int_distribution<int>(1, tokens - 1)(gen);
      const int b = std::uniform_int_distribution<int>(a, tokens)(gen);
      gqa_cache<T> chunked;
      matrix<T> out(tokens, spec.hidden);
      out.topRows(a) = mla::ref::gqa_prefill(layer, matrix<T>(x.topRows(a)), chunked);
      out.middleRows(a, b - a) = mla::ref::gqa_prefill(layer, matrix<T>(x.middleRows(a, b - a)), chunked);
      for (int t = b; t < tokens; ++t) out.row(t) = mla::ref::gqa_decode(layer, row_vector<T>(x.row(t)), chunked);
      BOOST_TEST(mla::ref::relative_error(out, full) <= tolerance<T>());
      BOOST_TEST((chunked.k.rows() == tokens && chunked.k.cols() == spec.n_kv_heads * spec.head_dim));
    }
  }
}

// Window and sinks are not silently ignored: turning either off changes the output, and the window leaves
// exactly the rows it cannot reach untouched.
BOOST_AUTO_TEST_CASE(window_and_sinks_change_the_output) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const int tokens = 24, window = 5;
    gqa_spec spec{
        32, 4, 2, 32, true, true, true, true, true, window, mla::ref::rope_config::smollm2(), 1.0 / std::sqrt(32.0)};
    spec.rope.dim = 32;
    const gqa_layer<double> layer = random_gqa<double>(gen, spec);
    const matrix<double> x = randn<double>(gen, tokens, spec.hidden, 1.0);
    const matrix<double> base = mla::ref::gqa_prefill(layer, x);

    gqa_layer<double> no_window = layer;
    no_window.attention.sliding_window = 0;
    const matrix<double> full = mla::ref::gqa_prefill(no_window, x);
    // Rows t < window see every earlier key either way; later rows lose keys.
    BOOST_TEST(mla::ref::relative_error(full.topRows(window), base.topRows(window)) == 0.0);
    for (int t = window; t < tokens; ++t) BOOST_TEST(mla::ref::relative_error(full.row(t), base.row(t)) > 1e-6);
    BOOST_TEST(mla::ref::relative_error(full, base) > 1e-3);
    BOOST_TEST(mla::ref::relative_error(loop_reference(no_window, x), full) <= 1e-12);

    gqa_layer<double> no_sinks = layer;
    no_sinks.sinks.resize(0);
    const matrix<double> unsunk = mla::ref::gqa_prefill(no_sinks, x);
    BOOST_TEST(mla::ref::relative_error(unsunk, base) > 1e-3);
    BOOST_TEST(mla::ref::relative_error(decode_all(no_sinks, x), unsunk) <= 1e-12);

    // A very negative sink is the same as none.
    gqa_layer<double> cold = layer;
    cold.sinks.setConstant(-1e4);
    BOOST_TEST(mla::ref::relative_error(mla::ref::gqa_prefill(cold, x), unsunk) <= 1e-12);

    // A window of 1 attends to the token itself only.
    gqa_layer<double> self_only = no_sinks;
    self_only.attention.sliding_window = 1;
    BOOST_TEST(mla::ref::relative_error(mla::ref::gqa_prefill(self_only, x), loop_reference(self_only, x)) <= 1e-12);
  }
}

// The query-to-KV head map is h / (n_heads / n_kv_heads): swapping two KV heads' weights changes exactly
// the outputs of the query heads in those groups.
BOOST_AUTO_TEST_CASE(query_heads_use_their_kv_group) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    gqa_spec spec{16, 6, 3, 16, false, false, false, false, false, 0, mla::ref::rope_config::smollm2(), 0.25};
    spec.rope.dim = 16;
    gqa_layer<double> layer = random_gqa<double>(gen, spec);
    // Identity-like output projection so that each head's output is visible on its own.
    layer.hidden = 6 * 16;
    layer.wq = randn<double>(gen, 96, 96, 0.1);
    layer.wk = randn<double>(gen, 48, 96, 0.1);
    layer.wv = randn<double>(gen, 48, 96, 0.1);
    layer.wo = matrix<double>::Identity(96, 96);
    const matrix<double> x = randn<double>(gen, 7, 96, 1.0);
    const matrix<double> base = mla::ref::gqa_prefill(layer, x);
    gqa_layer<double> changed = layer;
    changed.wv.middleRows(16, 16) *= 2.0;  // KV head 1 serves query heads 2 and 3
    const matrix<double> out = mla::ref::gqa_prefill(changed, x);
    for (int h = 0; h < 6; ++h) {
      const double diff = mla::ref::relative_error(out.middleCols(h * 16, 16), base.middleCols(h * 16, 16));
      if (h == 2 || h == 3)
        BOOST_TEST(std::abs(diff - 1.0) < 1e-12);  // values doubled -> output doubled
      else
        BOOST_TEST(diff == 0.0);
    }
  }
}

BOOST_AUTO_TEST_CASE(validate_names_field_and_sizes) {
  std::mt19937_64 gen(1);
  gqa_spec spec{8, 4, 2, 16, true, true, true, true, true, 0, mla::ref::rope_config::smollm2(), 0.25};
  spec.rope.dim = 16;
  const gqa_layer<float> good = random_gqa<float>(gen, spec);
  BOOST_CHECK_NO_THROW(good.validate());

  auto expect = [&](std::function<void(gqa_layer<float>&)> edit, std::initializer_list<std::string> parts) {
    gqa_layer<float> l = good;
    edit(l);
    BOOST_CHECK_EXCEPTION(l.validate(), mla::error, [&](const mla::error& e) { return message_has(e, parts); });
  };
  expect([](gqa_layer<float>& l) { l.wq.resize(63, 8); }, {"wq", "[63, 8]", "64"});
  expect([](gqa_layer<float>& l) { l.wk.resize(32, 9); }, {"wk", "[32, 9]", "hidden = 8"});
  expect([](gqa_layer<float>& l) { l.wo.resize(8, 32); }, {"wo", "n_heads*head_dim = 64"});
  expect([](gqa_layer<float>& l) { l.bv.resize(3); }, {"bv", "3", "32"});
  expect([](gqa_layer<float>& l) { l.sinks.resize(5); }, {"sinks", "5", "n_heads = 4"});
  expect([](gqa_layer<float>& l) { l.n_kv_heads = 3; }, {"n_kv_heads", "multiple"});
  expect([](gqa_layer<float>& l) { l.rope.dim = 8; }, {"rope.dim", "16", "8"});
  expect([](gqa_layer<float>& l) { l.rope.theta = -1; }, {"theta"});
  expect([](gqa_layer<float>& l) { l.attention.softmax_scale = 0; }, {"softmax_scale"});
  expect([](gqa_layer<float>& l) { l.attention.sliding_window = -2; }, {"sliding_window", "-2"});

  // Wrong input and cache widths.
  gqa_cache<float> cache;
  BOOST_CHECK_THROW(mla::ref::gqa_decode(good, row_vector<float>::Zero(7), cache), mla::error);
  BOOST_CHECK_THROW(mla::ref::gqa_prefill(good, matrix<float>::Zero(3, 9)), mla::error);
  cache.k = matrix<float>::Zero(2, 31);
  cache.v = matrix<float>::Zero(2, 31);
  BOOST_CHECK_THROW(mla::ref::gqa_decode(good, row_vector<float>::Zero(8), cache), mla::error);
}

BOOST_AUTO_TEST_SUITE_END()
