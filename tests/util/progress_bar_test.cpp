// util::moving_rate: the rate behind the progress bars' ETA is that of the last minute, so a slow first step (the
// RoPE placement of a layer, a machine busy for a while) does not set the estimate of the rest; checked against
// the rate written out from the samples.
#include "mla/util/progress_bar.hpp"

#include <boost/test/unit_test.hpp>

BOOST_AUTO_TEST_SUITE(progress_bar)

BOOST_AUTO_TEST_CASE(rate_of_the_last_window) {
  mla::util::moving_rate r(60.0);
  BOOST_TEST(r.rate() == 0.0);
  r.add(0, 0);
  BOOST_TEST(r.rate() == 0.0);  // one sample: no rate yet
  r.add(600, 1);                // a first unit that took ten minutes
  BOOST_TEST(r.rate() == 1.0 / 600.0);
  for (int k = 1; k <= 100; ++k) r.add(600 + k, 1 + k);  // then one unit per second
  // The oldest sample kept is the last one at least 60 s before t = 700: (640, 41).
  BOOST_TEST(r.rate() == (101.0 - 41.0) / (700.0 - 640.0));
  // The overall rate would have been 101 / 700 = 0.14 per second: an ETA about seven times too long.
  BOOST_TEST(r.rate() > 0.99);
}

BOOST_AUTO_TEST_CASE(rate_spans_one_update_at_least) {
  mla::util::moving_rate r(60.0);
  r.add(0, 0);
  r.add(100, 3);  // both far apart: the window keeps the pair
  r.add(300, 5);
  BOOST_TEST(r.rate() == 2.0 / 200.0);
}

BOOST_AUTO_TEST_SUITE_END()
