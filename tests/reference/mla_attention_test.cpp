#include "mla/reference/mla_attention.hpp"

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
#include "random.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/supported_shapes.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/rope.hpp"

namespace {

using mla::ref::matrix;
using mla::ref::mla_cache;
using mla::ref::mla_form;
using mla::ref::mla_layer;
using mla::ref::row_vector;
using mla::ref::vector;

using mla::test::message_has;
using mla::test::randn;
using mla::test::randn_vec;
using mla::test::test_seed;
using mla::test::tolerance;

using mla::test::pick;

// Replaces every weight of a sized layer with N(0, 1/sqrt(fan_in)) values (like a trained model, so that
// the softmax is neither flat nor one-hot), adds biases and N(0, 1) sinks when asked, and randomises the
// RoPE layout/scaling and the window.
template <class T>
void randomize(mla_layer<T>& l, std::mt19937_64& gen, bool biases, bool sinks, int max_window) {
  const double in_h = 1.0 / std::sqrt(double(l.hidden)), in_r = 1.0 / std::sqrt(double(l.latent_rank));
  l.wq = randn<T>(gen, l.wq.rows(), l.wq.cols(), in_h);
  l.w_dkv = randn<T>(gen, l.w_dkv.rows(), l.w_dkv.cols(), in_h);
  l.w_kr = randn<T>(gen, l.w_kr.rows(), l.w_kr.cols(), in_h);
  l.w_uk = randn<T>(gen, l.w_uk.rows(), l.w_uk.cols(), in_r);
  l.w_uv = randn<T>(gen, l.w_uv.rows(), l.w_uv.cols(), in_r);
  l.wo = randn<T>(gen, l.wo.rows(), l.wo.cols(), 1.0 / std::sqrt(double(l.wo.cols())));
  if (biases) {
    l.bq = randn_vec<T>(gen, l.wq.rows(), 0.5);
    l.b_dkv = randn_vec<T>(gen, l.latent_rank, 0.5);
    l.b_kr = randn_vec<T>(gen, l.rope_dim, 0.5);
    l.bo = randn_vec<T>(gen, l.hidden, 0.5);
  }
  if (sinks) l.sinks = randn_vec<T>(gen, l.n_heads, 1.0);
  const int dim = l.rope.dim;
  const int kind = pick(gen, 0, 2);
  l.rope = kind == 0   ? mla::ref::rope_config::gpt_oss()
           : kind == 1 ? mla::ref::rope_config::smollm2()
                       : mla::ref::rope_config::llama3_1();
  l.rope.dim = dim;
  l.rope.layout = pick(gen, 0, 1) == 0 ? mla::ref::rope_layout::neox : mla::ref::rope_layout::interleaved;
  l.attention.sliding_window = pick(gen, 0, 1) == 0 ? 0 : pick(gen, 1, max_window);
}

// A runtime-sized layer (not necessarily an mla_shape), decoupled or with latent RoPE.
template <class T>
mla_layer<T> random_layer(std::mt19937_64& gen, bool latent_rope, int tokens) {
  mla_layer<T> l;
  l.hidden = pick(gen, 8, 40);
  l.n_heads = pick(gen, 1, 4);
  l.v_head_dim = pick(gen, 1, 24);
  if (!latent_rope) {
    l.nope_dim = pick(gen, 1, 24);
    l.rope_dim = 2 * pick(gen, 1, 8);
    l.latent_rank = pick(gen, 1, 40);
    l.rope.dim = l.rope_dim;
  } else {
    l.nope_dim = 2 * pick(gen, 1, 8);
    l.rope.dim = l.nope_dim;
    const int blocks = pick(gen, 1, 3);
    l.latent_rank = blocks * l.nope_dim + pick(gen, 0, 20);
    // Blocks at random, non-overlapping places.
    int free_channels = l.latent_rank - blocks * l.nope_dim, at = 0;
    for (int b = 0; b < blocks; ++b) {
      const int gap = pick(gen, 0, free_channels);
      free_channels -= gap;
      at += gap;
      l.latent_rope_offsets.push_back(at);
      at += l.nope_dim;
    }
    std::shuffle(l.latent_rope_offsets.begin(), l.latent_rope_offsets.end(), gen);
  }
  l.wq.resize(l.n_heads * (l.nope_dim + l.rope_dim), l.hidden);
  l.w_dkv.resize(l.latent_rank, l.hidden);
  l.w_kr.resize(l.rope_dim, l.hidden);
  l.w_uk.resize(l.n_heads * l.nope_dim, l.latent_rank);
  l.w_uv.resize(l.n_heads * l.v_head_dim, l.latent_rank);
  l.wo.resize(l.hidden, l.n_heads * l.v_head_dim);
  l.attention.softmax_scale = 1.0 / std::sqrt(double(l.nope_dim + l.rope_dim));
  randomize(l, gen, pick(gen, 0, 1) == 1, pick(gen, 0, 1) == 1, tokens);
  return l;
}

template <class To, class From>
mla_layer<To> cast_layer(const mla_layer<From>& f) {
  mla_layer<To> t;
  t.hidden = f.hidden;
  t.n_heads = f.n_heads;
  t.nope_dim = f.nope_dim;
  t.rope_dim = f.rope_dim;
  t.latent_rank = f.latent_rank;
  t.v_head_dim = f.v_head_dim;
  t.wq = f.wq.template cast<To>();
  t.bq = f.bq.template cast<To>();
  t.w_dkv = f.w_dkv.template cast<To>();
  t.b_dkv = f.b_dkv.template cast<To>();
  t.w_kr = f.w_kr.template cast<To>();
  t.b_kr = f.b_kr.template cast<To>();
  t.w_uk = f.w_uk.template cast<To>();
  t.w_uv = f.w_uv.template cast<To>();
  t.wo = f.wo.template cast<To>();
  t.bo = f.bo.template cast<To>();
  t.sinks = f.sinks.template cast<To>();
  t.rope = f.rope;
  t.attention = f.attention;
  t.latent_rope_offsets = f.latent_rope_offsets;
  return t;
}

// Independent float64 reference from the DeepSeek equations (formats.md §2.3): direct loops, per-head keys
// and values expanded from the latent, only the RoPE rotation shared with the library.
matrix<double> loop_reference(const mla_layer<double>& l, const matrix<double>& x) {
  const int n = static_cast<int>(x.rows()), hq = l.n_heads, nope = l.nope_dim, rd = l.rope_dim;
  const int qk = nope + rd, r = l.latent_rank, dv = l.v_head_dim;
  const mla::ref::rope<double> rot(l.rope);
  auto proj = [&](const matrix<double>& w, const vector<double>& b, int t, int row) {
    double acc = b.size() ? b[row] : 0.0;
    for (int j = 0; j < l.hidden; ++j) acc += w(row, j) * x(t, j);
    return acc;
  };
  std::vector<std::vector<double>> q(n, std::vector<double>(hq * qk)), c(n, std::vector<double>(r)),
      kpe(n, std::vector<double>(rd));
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < hq * qk; ++i) q[t][i] = proj(l.wq, l.bq, t, i);
    for (int i = 0; i < r; ++i) c[t][i] = proj(l.w_dkv, l.b_dkv, t, i);
    for (int i = 0; i < rd; ++i) kpe[t][i] = proj(l.w_kr, l.b_kr, t, i);
    for (int off : l.latent_rope_offsets) rot.apply(&c[t][off], t);
    if (rd > 0) rot.apply(kpe[t].data(), t);
    for (int h = 0; h < hq; ++h) rot.apply(&q[t][h * qk + (rd > 0 ? nope : 0)], t);
  }
  const int w = l.attention.sliding_window;
  std::vector<std::vector<double>> attn(n, std::vector<double>(hq * dv, 0.0));
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < hq; ++h) {
      std::vector<double> s;
      std::vector<int> keys;
      for (int j = 0; j <= t; ++j) {
        if (w > 0 && j <= t - w) continue;
        double dot = 0;
        for (int i = 0; i < nope; ++i) {
          double k = 0;
          for (int a = 0; a < r; ++a) k += l.w_uk(h * nope + i, a) * c[j][a];
          dot += q[t][h * qk + i] * k;
        }
        for (int i = 0; i < rd; ++i) dot += q[t][h * qk + nope + i] * kpe[j][i];
        s.push_back(l.attention.softmax_scale * dot);
        keys.push_back(j);
      }
      const bool has_sink = l.sinks.size() != 0;
      double m = has_sink ? l.sinks[h] : -std::numeric_limits<double>::infinity();
      for (double e : s) m = std::max(m, e);
      double den = has_sink ? std::exp(l.sinks[h] - m) : 0.0;
      for (double e : s) den += std::exp(e - m);
      for (std::size_t k = 0; k < s.size(); ++k) {
        const double p = std::exp(s[k] - m) / den;
        for (int i = 0; i < dv; ++i) {
          double v = 0;
          for (int a = 0; a < r; ++a) v += l.w_uv(h * dv + i, a) * c[keys[k]][a];
          attn[t][h * dv + i] += p * v;
        }
      }
    }
  matrix<double> out(n, l.hidden);
  for (int t = 0; t < n; ++t)
    for (int o = 0; o < l.hidden; ++o) {
      double acc = l.bo.size() ? l.bo[o] : 0.0;
      for (int i = 0; i < hq * dv; ++i) acc += l.wo(o, i) * attn[t][i];
      out(t, o) = acc;
    }
  return out;
}

// Token-by-token decode from an empty cache, in one form: [tokens, hidden].
template <class T>
matrix<T> decode_all(const mla_layer<T>& l, const matrix<T>& x, mla_form form) {
  mla_cache<T> cache;
  matrix<T> out(x.rows(), l.hidden);
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    out.row(t) = mla::ref::mla_decode(l, row_vector<T>(x.row(t)), cache, form);
  BOOST_TEST((cache.c.rows() == x.rows() && cache.c.cols() == l.latent_rank && cache.k_pe.cols() == l.rope_dim));
  return out;
}

// Naive and absorbed prefill, decode, and chunked prefill + decode all agree with the naive prefill.
template <class T>
void check_forms_agree(const mla_layer<T>& layer, const matrix<T>& x, std::mt19937_64& gen) {
  const matrix<T> naive = mla::ref::mla_prefill_naive(layer, x);
  BOOST_TEST(mla::ref::relative_error(mla::ref::mla_prefill_absorbed(layer, x), naive) <= tolerance<T>());
  BOOST_TEST(mla::ref::relative_error(decode_all(layer, x, mla_form::naive), naive) <= tolerance<T>());
  BOOST_TEST(mla::ref::relative_error(decode_all(layer, x, mla_form::absorbed), naive) <= tolerance<T>());
  const Eigen::Index n = x.rows();
  const Eigen::Index a = pick(gen, 0, static_cast<int>(n));
  for (mla_form form : {mla_form::naive, mla_form::absorbed}) {
    mla_cache<T> cache;
    matrix<T> out(n, layer.hidden);
    out.topRows(a) = mla::ref::mla_prefill(layer, matrix<T>(x.topRows(a)), cache, form);
    for (Eigen::Index t = a; t < n; ++t) out.row(t) = mla::ref::mla_decode(layer, row_vector<T>(x.row(t)), cache, form);
    BOOST_TEST(mla::ref::relative_error(out, naive) <= tolerance<T>());
  }
}

template <class T, class Shape>
void shape_forms_agree(std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  const int hidden = 32, heads = pick(gen, 1, 3), tokens = pick(gen, 2, 20);
  const int v_head_dim = pick(gen, 0, 1) == 0 ? 16 : Shape::nope_dim;
  mla_layer<T> layer = mla_layer<T>::template make<Shape>(hidden, heads, v_head_dim);
  randomize(layer, gen, pick(gen, 0, 1) == 1, pick(gen, 0, 1) == 1, tokens);
  BOOST_TEST_INFO("heads " << heads << ", tokens " << tokens << ", window " << layer.attention.sliding_window);
  BOOST_TEST((layer.shape() == Shape::runtime()));
  const matrix<T> x = randn<T>(gen, tokens, hidden, 1.0);
  check_forms_agree(layer, x, gen);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(reference_mla_attention)

using value_types = std::tuple<float, double>;

// Decoupled DeepSeek layout, random weights, for the representative mla_shapes.
BOOST_AUTO_TEST_CASE_TEMPLATE(naive_and_absorbed_agree_per_shape, Shape, mla::representative_shapes) {
  const std::uint64_t seed = test_seed();
  BOOST_TEST_CONTEXT("seed " << seed << ", shape " << Shape::runtime()) {
    BOOST_TEST_CONTEXT("double") { shape_forms_agree<double, Shape>(seed); }
    BOOST_TEST_CONTEXT("float") { shape_forms_agree<float, Shape>(seed); }
  }
}

// Both forms against direct float64 loops, for random runtime sizes, decoupled and latent-RoPE layouts.
BOOST_AUTO_TEST_CASE_TEMPLATE(forms_match_loop_reference, T, value_types) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  for (int trial = 0; trial < 16; ++trial) {
    BOOST_TEST_CONTEXT("seed " << seed << ", trial " << trial) {
      const int tokens = pick(gen, 1, 24);
      const mla_layer<T> layer = random_layer<T>(gen, trial % 2 == 1, tokens);
      BOOST_TEST_INFO("latent RoPE " << layer.uses_latent_rope() << ", heads " << layer.n_heads << ", window "
                                     << layer.attention.sliding_window);
      const matrix<T> x = randn<T>(gen, tokens, layer.hidden, 1.0);
      const matrix<double> want = loop_reference(cast_layer<double>(layer), x.template cast<double>());
      BOOST_TEST(mla::ref::relative_error(mla::ref::mla_prefill_naive(layer, x), want) <= tolerance<T>());
      BOOST_TEST(mla::ref::relative_error(mla::ref::mla_prefill_absorbed(layer, x), want) <= tolerance<T>());
      check_forms_agree(layer, x, gen);
    }
  }
}

BOOST_AUTO_TEST_CASE(window_and_sinks_change_the_output) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla_layer<double> layer = mla_layer<double>::make<mla::mla_shape<64, 32, 128>>(32, 3, 32);
    randomize(layer, gen, true, true, 1);
    layer.attention.sliding_window = 4;
    const matrix<double> x = randn<double>(gen, 16, 32, 1.0);
    for (mla_form form : {mla_form::naive, mla_form::absorbed}) {
      const matrix<double> base = mla::ref::mla_prefill(layer, x, form);
      mla_layer<double> no_window = layer;
      no_window.attention.sliding_window = 0;
      const matrix<double> full = mla::ref::mla_prefill(no_window, x, form);
      BOOST_TEST(mla::ref::relative_error(full.topRows(4), base.topRows(4)) <= 1e-14);
      BOOST_TEST(mla::ref::relative_error(full.bottomRows(12), base.bottomRows(12)) > 1e-3);
      mla_layer<double> no_sinks = layer;
      no_sinks.sinks.resize(0);
      BOOST_TEST(mla::ref::relative_error(mla::ref::mla_prefill(no_sinks, x, form), base) > 1e-3);
      BOOST_TEST(mla::ref::relative_error(loop_reference(no_sinks, x), mla::ref::mla_prefill(no_sinks, x, form)) <=
                 1e-12);
    }
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(make_sizes_a_layer_for_the_shape, Shape, mla::representative_shapes) {
  const mla_layer<float> l = mla_layer<float>::make<Shape>(48, 5, 40);
  BOOST_CHECK_NO_THROW(l.validate());
  BOOST_TEST((l.shape() == Shape::runtime()));
  BOOST_TEST(l.cached_elements_per_token() == Shape::cached_elements_per_token);
  BOOST_TEST(l.qk_head_dim() == Shape::head_dim);
  BOOST_TEST((l.wq.rows() == 5 * Shape::head_dim && l.wq.cols() == 48));
  BOOST_TEST((l.w_dkv.rows() == Shape::latent_rank && l.w_kr.rows() == Shape::rope_dim));
  BOOST_TEST((l.w_uk.rows() == 5 * Shape::nope_dim && l.w_uk.cols() == Shape::latent_rank));
  BOOST_TEST((l.w_uv.rows() == 5 * 40 && l.wo.cols() == 5 * 40 && l.wo.rows() == 48));
  BOOST_TEST(l.rope.dim == Shape::rope_dim);
  BOOST_TEST(l.attention.softmax_scale == 1.0 / std::sqrt(double(Shape::head_dim)));
  BOOST_TEST(!l.uses_latent_rope());
  BOOST_CHECK_THROW((mla_layer<float>::make<Shape>(0, 5, 40)), mla::error);
}

BOOST_AUTO_TEST_CASE(validate_names_field_and_sizes) {
  std::mt19937_64 gen(7);
  mla_layer<float> good = mla_layer<float>::make<mla::mla_shape<64, 16, 32>>(24, 2, 20);
  randomize(good, gen, true, true, 4);
  BOOST_CHECK_NO_THROW(good.validate());

  auto expect = [&](const mla_layer<float>& base, std::function<void(mla_layer<float>&)> edit,
                    std::initializer_list<std::string> parts) {
    mla_layer<float> l = base;
    edit(l);
    BOOST_CHECK_EXCEPTION(l.validate(), mla::error, [&](const mla::error& e) { return message_has(e, parts); });
  };
  expect(good, [](mla_layer<float>& l) { l.n_heads = 0; }, {"n_heads", "> 0"});
  expect(good, [](mla_layer<float>& l) { l.wq.resize(127, 24); }, {"wq", "[127, 24]", "128"});
  expect(good, [](mla_layer<float>& l) { l.w_dkv.resize(32, 23); }, {"w_dkv", "[32, 23]", "hidden = 24"});
  expect(good, [](mla_layer<float>& l) { l.w_kr.resize(8, 24); }, {"w_kr", "rope_dim = 16"});
  expect(good, [](mla_layer<float>& l) { l.w_uk.resize(96, 31); }, {"w_uk", "latent_rank = 32"});
  expect(good, [](mla_layer<float>& l) { l.w_uv.resize(40, 33); }, {"w_uv", "[40, 33]"});
  expect(good, [](mla_layer<float>& l) { l.wo.resize(24, 41); }, {"wo", "n_heads*v_head_dim = 40"});
  expect(good, [](mla_layer<float>& l) { l.b_kr.resize(3); }, {"b_kr", "3", "16"});
  expect(good, [](mla_layer<float>& l) { l.sinks.resize(1); }, {"sinks", "n_heads = 2"});
  expect(good, [](mla_layer<float>& l) { l.rope.dim = 32; }, {"rope.dim", "rope_dim = 16", "32"});
  expect(good, [](mla_layer<float>& l) { l.attention.softmax_scale = -1; }, {"softmax_scale"});
  expect(good, [](mla_layer<float>& l) { l.latent_rope_offsets = {0}; }, {"rope_dim must be 0"});

  // A latent-RoPE layer and its own rules.
  std::mt19937_64 gen2(9);
  mla_layer<float> exact;
  do exact = random_layer<float>(gen2, true, 8);
  while (exact.latent_rope_offsets.size() < 2);
  BOOST_CHECK_NO_THROW(exact.validate());
  BOOST_CHECK_EXCEPTION(exact.shape(), mla::error, [](const mla::error& e) {
    return message_has(e, {"latent", "not an mla_shape"});
  });
  const int last = exact.latent_rank - exact.rope.dim;
  expect(exact, [&](mla_layer<float>& l) { l.latent_rope_offsets[0] = last + 1; }, {"latent_rope_offsets", "range"});
  expect(exact, [](mla_layer<float>& l) { l.latent_rope_offsets[0] = -1; }, {"latent_rope_offsets", "-1"});
  expect(exact, [](mla_layer<float>& l) { l.latent_rope_offsets = {1, 0}; }, {"overlap"});
  expect(exact, [](mla_layer<float>& l) { l.rope.dim += 2; }, {"rope.dim", "nope_dim"});
  expect(exact, [](mla_layer<float>& l) { l.latent_rope_offsets.clear(); }, {"no position information"});

  // Wrong input and cache widths.
  mla_cache<float> cache;
  BOOST_CHECK_THROW(mla::ref::mla_decode(good, row_vector<float>::Zero(23), cache, mla_form::absorbed), mla::error);
  BOOST_CHECK_THROW(mla::ref::mla_prefill_naive(good, matrix<float>::Zero(2, 25)), mla::error);
  cache.c = matrix<float>::Zero(3, 31);
  cache.k_pe = matrix<float>::Zero(3, 16);
  BOOST_CHECK_THROW(mla::ref::mla_decode_naive(good, row_vector<float>::Zero(24), cache), mla::error);
}

BOOST_AUTO_TEST_SUITE_END()
