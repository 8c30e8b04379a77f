#include "mla/reference/rope.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "seed.hpp"

namespace {
using mla::ref::rope;
using mla::ref::rope_config;
using mla::ref::rope_layout;
using mla::ref::rope_scaling;

// gpt-oss inv_freq[0..31] as published in shared/notes/formats.md (6 significant digits).
const double gpt_oss_inv_freq[32] = {
    1.0,         0.689044,    0.474782,    0.327146,    0.225418,    0.155323,    0.107024,    0.0737446,
    0.0508133,   0.0317057,   0.019335,    0.011592,    0.00679496,  0.00386036,  0.00209379,  0.0010526,
    0.000456484, 0.000129319, 3.83088e-05, 2.63965e-05, 1.81883e-05, 1.25326e-05, 8.6355e-06,  5.95024e-06,
    4.09998e-06, 2.82507e-06, 1.9466e-06,  1.34129e-06, 9.24209e-07, 6.36821e-07, 4.38798e-07, 3.02351e-07};

// The openai reference's formulation of YaRN (concentration, mask, d_half * ln / ln base), written
// independently of the library's transformers-style formulation, in long double.
std::vector<long double> yarn_openai_form(long double base, int head_dim, long double scaling_factor,
                                          long double initial_context, long double ntk_alpha, long double ntk_beta,
                                          bool floor_ceil) {
  const long double pi = 3.141592653589793238462643383279502884L;
  const long double d_half = head_dim / 2.0L;
  long double low = d_half * std::log(initial_context / (ntk_beta * 2 * pi)) / std::log(base);
  long double high = d_half * std::log(initial_context / (ntk_alpha * 2 * pi)) / std::log(base);
  if (floor_ceil) {
    low = std::max(std::floor(low), 0.0L);
    high = std::min(std::ceil(high), static_cast<long double>(head_dim - 1));
  }
  std::vector<long double> out(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) {
    const long double freq = std::pow(base, 2.0L * i / head_dim);
    const long double interpolation = 1.0L / (scaling_factor * freq);
    const long double extrapolation = 1.0L / freq;
    const long double ramp = (i - low) / (high - low);
    const long double mask = 1.0L - std::min(std::max(ramp, 0.0L), 1.0L);
    out[i] = interpolation * (1.0L - mask) + extrapolation * mask;
  }
  return out;
}

// A generator from the suite's seed (tests/support/seed.hpp: MLA_TEST_SEED replays it), which `seed` receives
// for the test's context.
std::mt19937_64 seeded(unsigned long long& seed) {
  seed = mla::test::test_seed();
  return std::mt19937_64(seed);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(reference_rope)

BOOST_AUTO_TEST_CASE(gpt_oss_published_constants) {
  const rope<double> r(rope_config::gpt_oss());
  BOOST_TEST(r.attention_factor() == 1.3465735902799727, boost::test_tools::tolerance(1e-15));
  BOOST_TEST(r.attention_factor() * r.attention_factor() * 0.125 == 0.22665755425493697,
             boost::test_tools::tolerance(1e-14));
  BOOST_TEST_REQUIRE(r.inv_freq().size() == 32u);
  for (int i = 0; i < 32; ++i) {
    BOOST_TEST_CONTEXT("i = " << i) {
      BOOST_TEST(r.inv_freq()[i] == gpt_oss_inv_freq[i], boost::test_tools::tolerance(2e-5));
    }
  }
}

BOOST_AUTO_TEST_CASE(yarn_matches_openai_formulation) {
  for (bool truncate : {false, true}) {
    rope_config c = rope_config::gpt_oss();
    c.truncate = truncate;
    const rope<double> r(c);
    const auto expected = yarn_openai_form(150000, 64, 32, 4096, 1, 32, truncate);
    for (int i = 0; i < 32; ++i) {
      BOOST_TEST_CONTEXT("truncate " << truncate << ", i = " << i) {
        BOOST_TEST(r.inv_freq()[i] == static_cast<double>(expected[i]), boost::test_tools::tolerance(1e-13));
      }
    }
  }
  // truncate changes the frequencies inside the ramp (low 8.09 -> 8, high 17.40 -> 18), as gpt-oss relies on.
  rope_config t = rope_config::gpt_oss();
  t.truncate = true;
  BOOST_TEST(std::abs(rope<double>(t).inv_freq()[12] - rope<double>(rope_config::gpt_oss()).inv_freq()[12]) > 1e-5);
}

BOOST_AUTO_TEST_CASE(default_frequencies) {
  const rope<double> r(rope_config::smollm2());
  BOOST_TEST(r.attention_factor() == 1.0);
  for (int i = 0; i < 32; ++i)
    BOOST_TEST(r.inv_freq()[i] == std::exp(-std::log(100000.0) * (2.0 * i) / 64.0),
               boost::test_tools::tolerance(1e-14));
}

BOOST_AUTO_TEST_CASE(llama3_frequency_bands) {
  const rope_config c = rope_config::llama3_1();
  const rope<double> r(c);
  const double pi = 3.14159265358979323846;
  int kept = 0, divided = 0, blended = 0;
  for (int i = 0; i < 64; ++i) {
    const double f = 1.0 / std::pow(500000.0, 2.0 * i / 128.0);
    const double wavelen = 2 * pi / f;
    double expected;
    if (wavelen < 8192.0 / 4.0) {
      expected = f, ++kept;
    } else if (wavelen > 8192.0 / 1.0) {
      expected = f / 8.0, ++divided;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      expected = (1 - smooth) * f / 8.0 + smooth * f, ++blended;
    }
    BOOST_TEST(r.inv_freq()[i] == expected, boost::test_tools::tolerance(1e-14));
  }
  // All three bands are exercised by the Llama 3.1 constants.
  BOOST_TEST(kept > 0);
  BOOST_TEST(divided > 0);
  BOOST_TEST(blended > 0);
}

BOOST_AUTO_TEST_CASE(rotation_against_closed_form) {
  unsigned long long seed;
  auto rng = seeded(seed);
  std::normal_distribution<double> n01;
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (rope_layout layout : {rope_layout::neox, rope_layout::interleaved}) {
      rope_config c = rope_config::gpt_oss();
      c.layout = layout;
      const rope<double> r(c);
      const double af = r.attention_factor();
      std::vector<double> x(64), y;
      for (auto& v : x) v = n01(rng);
      const long pos = std::uniform_int_distribution<long>(0, 131072)(rng);
      y = x;
      r.apply(y.data(), pos);
      for (int i = 0; i < 32; ++i) {
        const int a = layout == rope_layout::neox ? i : 2 * i;
        const int b = layout == rope_layout::neox ? i + 32 : 2 * i + 1;
        const long double ang = static_cast<long double>(pos) * r.inv_freq()[i];
        const double ea = static_cast<double>(af * (x[a] * std::cos(ang) - x[b] * std::sin(ang)));
        const double eb = static_cast<double>(af * (x[b] * std::cos(ang) + x[a] * std::sin(ang)));
        // The library rounds the angle pos * inv_freq to double (error ~ pos * 1.1e-16 rad), the test keeps
        // it in long double; the bound follows from that, scaled by the pair's size (not relative to the
        // result, which can be near zero).
        const double bound = (4e-16 * static_cast<double>(pos) + 1e-14) * af * (std::abs(x[a]) + std::abs(x[b]));
        BOOST_TEST(std::abs(y[a] - ea) <= bound);
        BOOST_TEST(std::abs(y[b] - eb) <= bound);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(identity_norm_and_relative_position) {
  unsigned long long seed;
  auto rng = seeded(seed);
  std::normal_distribution<double> n01;
  BOOST_TEST_CONTEXT("seed " << seed) {
    const rope<double> r(rope_config::smollm2());
    std::vector<double> q(64), k(64);
    for (auto& v : q) v = n01(rng);
    for (auto& v : k) v = n01(rng);
    // Position 0 is the identity.
    auto q0 = q;
    r.apply(q0.data(), 0);
    for (int i = 0; i < 64; ++i) BOOST_TEST(q0[i] == q[i]);
    // Norms are preserved; <R(m) q, R(n) k> depends only on m - n.
    auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
      double s = 0;
      for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
      return s;
    };
    std::uniform_int_distribution<long> pos(0, 5000);
    const long m = pos(rng), n = pos(rng), shift = pos(rng);
    auto qm = q, kn = k, qs = q, ks = k;
    r.apply(qm.data(), m);
    r.apply(kn.data(), n);
    r.apply(qs.data(), m + shift);
    r.apply(ks.data(), n + shift);
    BOOST_TEST(dot(qm, qm) == dot(q, q), boost::test_tools::tolerance(1e-12));
    BOOST_TEST(dot(qm, kn) == dot(qs, ks), boost::test_tools::tolerance(1e-9));
  }
}

BOOST_AUTO_TEST_CASE(layouts_are_a_permutation_of_each_other) {
  // Interleaving a half-split vector (new[2i] = old[i], new[2i+1] = old[i + d/2]) and rotating it in the
  // interleaved layout equals rotating it half-split and then interleaving: the llama.cpp/DeepSeek permutation.
  unsigned long long seed;
  auto rng = seeded(seed);
  std::normal_distribution<float> n01;
  BOOST_TEST_CONTEXT("seed " << seed) {
    rope_config neox = rope_config::gpt_oss(), inter = neox;
    inter.layout = rope_layout::interleaved;
    std::vector<float> x(64), xi(64);
    for (auto& v : x) v = n01(rng);
    for (int i = 0; i < 32; ++i) xi[2 * i] = x[i], xi[2 * i + 1] = x[i + 32];
    rope<float>(neox).apply(x.data(), 777);
    rope<float>(inter).apply(xi.data(), 777);
    // Same arithmetic in both layouts; only FMA contraction may differ (a few float ulps).
    for (int i = 0; i < 32; ++i) {
      BOOST_TEST(std::abs(xi[2 * i] - x[i]) <= 1e-5f * (std::abs(x[i]) + std::abs(x[i + 32])));
      BOOST_TEST(std::abs(xi[2 * i + 1] - x[i + 32]) <= 1e-5f * (std::abs(x[i]) + std::abs(x[i + 32])));
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_configs_are_rejected) {
  rope_config odd = rope_config::smollm2();
  odd.dim = 63;
  BOOST_CHECK_EXCEPTION(rope<float>{odd}, mla::error, [](const mla::error& e) {
    return std::string(e.what()).find("dim must be positive and even") != std::string::npos;
  });
  rope_config yarn = rope_config::gpt_oss();
  yarn.factor = 0.5;
  BOOST_CHECK_THROW(rope<float>{yarn}, mla::error);
  rope_config l3 = rope_config::llama3_1();
  l3.high_freq_factor = 0.5;
  BOOST_CHECK_THROW(rope<float>{l3}, mla::error);
}

BOOST_AUTO_TEST_SUITE_END()
