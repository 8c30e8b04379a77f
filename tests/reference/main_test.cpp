#define BOOST_TEST_MODULE mla_reference_tests
#include <boost/test/unit_test.hpp>
