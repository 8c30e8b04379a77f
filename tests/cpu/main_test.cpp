#define BOOST_TEST_MODULE mla_cpu_tests
#include <boost/test/unit_test.hpp>
