#define BOOST_TEST_MODULE mla_inspect_tests
#include <boost/test/unit_test.hpp>
