#include "mla/core/dispatch.hpp"

#include <boost/test/unit_test.hpp>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

BOOST_AUTO_TEST_SUITE(core_dispatch)

// Every supported runtime triple dispatches to exactly its compile-time type (the callback reports the triple
// of the type it received; the list's triples are distinct). One dispatch instantiation for the whole list:
// a typed test per shape would instantiate the dispatch 97 x 97 times, which took 10 minutes to compile under
// the sanitizers.
BOOST_AUTO_TEST_CASE(round_trip) {
  const std::vector<mla::runtime_shape> all = mla::supported_runtime_shapes();
  BOOST_TEST(all.size() == mla::supported_shape_count);
  for (const mla::runtime_shape& rs : all) {
    int calls = 0;
    const mla::runtime_shape got = mla::dispatch_shape(rs, [&](auto shape) {
      ++calls;
      return decltype(shape)::runtime();
    });
    BOOST_TEST(got == rs, "dispatched " << got << " for " << rs);
    BOOST_TEST(calls == 1);
  }
}

BOOST_AUTO_TEST_CASE(returns_values_and_void) {
  const int cached = mla::dispatch_shape(mla::runtime_shape{96, 32, 448},
                                         [](auto shape) { return decltype(shape)::cached_elements_per_token; });
  BOOST_TEST(cached == 480);
  int seen = 0;
  mla::dispatch_shape(mla::runtime_shape{64, 16, 32}, [&](auto shape) { seen = decltype(shape)::nope_dim; });
  BOOST_TEST(seen == 48);
}

BOOST_AUTO_TEST_CASE(unsupported_lists_every_shape) {
  // The audit's degenerate split, and ranks off the grid, are rejected with the full list.
  for (mla::runtime_shape bad : {mla::runtime_shape{64, 64, 256}, mla::runtime_shape{96, 32, 100},
                                 mla::runtime_shape{192, 64, 256}, mla::runtime_shape{0, 0, 0}}) {
    try {
      mla::dispatch_shape(bad, [](auto) {});
      BOOST_FAIL("no error for an unsupported shape");
    } catch (const mla::error& e) {
      const std::string msg = e.what();
      std::ostringstream named;
      named << bad;
      BOOST_TEST(msg.find("unsupported MLA shape " + named.str()) != std::string::npos);
      for (const auto& s : mla::supported_runtime_shapes()) {
        const std::string group = "(head_dim=" + std::to_string(s.head_dim) +
                                  ", rope_dim=" + std::to_string(s.rope_dim) + ", latent_rank in {";
        const auto at = msg.find(group);
        BOOST_TEST_REQUIRE(at != std::string::npos);
        const auto close = msg.find('}', at);
        const std::string ranks = ", " + msg.substr(at + group.size(), close - at - group.size()) + ",";
        BOOST_TEST(ranks.find(", " + std::to_string(s.latent_rank) + ",") != std::string::npos);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(custom_list) {
  using list = std::tuple<mla::mla_shape<64, 32, 64>, mla::mla_shape<128, 64, 512>>;
  BOOST_TEST(mla::dispatch_shape(list{}, {128, 64, 512}, [](auto s) { return decltype(s)::latent_rank; }) == 512);
  BOOST_CHECK_THROW(mla::dispatch_shape(list{}, {64, 32, 96}, [](auto) { return 0; }), mla::error);
}

BOOST_AUTO_TEST_SUITE_END()
