#define BOOST_TEST_MODULE mla_tokenizer_tests
#include <boost/test/unit_test.hpp>
