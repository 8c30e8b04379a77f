#define BOOST_TEST_MODULE mla_io_tests
#include <boost/test/unit_test.hpp>
