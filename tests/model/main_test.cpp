#define BOOST_TEST_MODULE mla_model_tests
#include <boost/test/unit_test.hpp>
