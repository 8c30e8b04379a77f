#define BOOST_TEST_MODULE mla_cuda_tests
#include <boost/test/unit_test.hpp>
