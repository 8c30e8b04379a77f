// The CPU kernels' own arithmetic: the exp approximation, bf16 rounding and the automatic split count.
#include "mla/cpu/decode_common.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>

#include "mla/cpu/element.hpp"
#include "test_support.hpp"

using namespace mla_cpu_test;

BOOST_AUTO_TEST_SUITE(cpu_decode_common)

BOOST_AUTO_TEST_CASE(exp_approx_accuracy) {
  using mla::cpu::detail::exp_approx;
  double worst = 0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -87.0f + 88.0f * static_cast<float>(i) / 200000.0f;  // [-87, 1]
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(exp_approx(x) - want) / want);
  }
  BOOST_TEST(worst <= 3e-7);  // a few float ulps (2^-23 = 1.2e-7)
  BOOST_TEST(exp_approx(0.0f) == 1.0f);
  BOOST_TEST(exp_approx(-HUGE_VALF) == 0.0f);
  BOOST_TEST(exp_approx(-100.0f) == 0.0f);
  BOOST_TEST(std::isnan(exp_approx(nan_f())));
}

BOOST_AUTO_TEST_CASE(bf16_round_trip) {
  BOOST_TEST(mla::cpu::to_float(mla::cpu::to_bf16(1.0f)) == 1.0f);
  BOOST_TEST(mla::cpu::to_float(mla::cpu::to_bf16(-2.5f)) == -2.5f);
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1).
  BOOST_TEST(mla::cpu::to_float(mla::cpu::to_bf16(1.0f + 1.0f / 256)) == 1.0f);
  BOOST_TEST(mla::cpu::to_float(mla::cpu::to_bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
  BOOST_TEST(std::isnan(mla::cpu::to_float(mla::cpu::to_bf16(nan_f()))));
  BOOST_TEST(std::isinf(mla::cpu::to_float(mla::cpu::to_bf16(HUGE_VALF))));
}

BOOST_AUTO_TEST_CASE(auto_split_count) {
  BOOST_TEST(mla::cpu::auto_num_splits(4, 100000, 1) == 1);     // one thread: no split
  BOOST_TEST(mla::cpu::auto_num_splits(1, 8192, 2) == 8);       // 4 items per thread
  BOOST_TEST(mla::cpu::auto_num_splits(64, 8192, 2) == 1);      // the batch alone fills the threads
  BOOST_TEST(mla::cpu::auto_num_splits(1, 300, 16) == 1);       // no split under 256 keys
  BOOST_TEST(mla::cpu::auto_num_splits(1, 1 << 20, 64) == 64);  // capped
}

BOOST_AUTO_TEST_SUITE_END()
