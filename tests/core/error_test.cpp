#include "mla/core/error.hpp"

#include <boost/test/unit_test.hpp>
#include <string>

BOOST_AUTO_TEST_SUITE(core_error)

BOOST_AUTO_TEST_CASE(check_throws_with_message) {
  BOOST_CHECK_NO_THROW(mla::check(true, "never"));
  try {
    mla::check(1 + 1 == 3, "tensor '", "blk.0.attn_k", "': expected ", 64, " columns");
    BOOST_FAIL("mla::check did not throw");
  } catch (const mla::error& e) {
    BOOST_TEST(std::string(e.what()) == "tensor 'blk.0.attn_k': expected 64 columns");
  }
}

BOOST_AUTO_TEST_SUITE_END()
