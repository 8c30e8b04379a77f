#define BOOST_TEST_MODULE mla_core_tests
#include <boost/test/unit_test.hpp>
