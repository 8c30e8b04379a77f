#define BOOST_TEST_MODULE mla_convert_tests
#include <boost/test/unit_test.hpp>
