#define BOOST_TEST_MODULE mla_util_tests
#include <boost/test/unit_test.hpp>
