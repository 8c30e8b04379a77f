#include "mla/core/shape.hpp"

#include <boost/test/unit_test.hpp>
#include <sstream>
#include <tuple>
#include <type_traits>

// The trait is checked at compile time (a failure stops the build, so it needs no test case).
static_assert(mla::is_mla_shape_v<mla::mla_shape<64, 32, 32>>);
static_assert(!mla::is_mla_shape_v<int>);

BOOST_AUTO_TEST_SUITE(core_shape)

BOOST_AUTO_TEST_CASE(deepseek_v3_constants) {
  using s = mla::mla_shape<192, 64, 512>;
  static_assert(s::nope_dim == 128);
  static_assert(s::absorbed_dim == 576);  // FlashMLA's D_Q
  static_assert(s::cached_elements_per_token == 576);
  BOOST_TEST(s::head_dim == 192);
  BOOST_TEST(s::rope_dim == 64);
  BOOST_TEST(s::latent_rank == 512);
}

BOOST_AUTO_TEST_CASE(head64_conversions) {
  using transmla = mla::mla_shape<96, 32, 448>;
  static_assert(transmla::nope_dim == 64 && transmla::absorbed_dim == 480);
  using mha2mla = mla::mla_shape<64, 16, 128>;
  static_assert(mha2mla::nope_dim == 48 && mha2mla::cached_elements_per_token == 144);
  using audit_fix = mla::mla_shape<64, 32, 256>;  // the shape the audit's degenerate 64/64 should have been
  static_assert(audit_fix::nope_dim == 32);
  BOOST_TEST(audit_fix::cached_elements_per_token == 288);
}

BOOST_AUTO_TEST_CASE(runtime_counterpart) {
  constexpr mla::runtime_shape rs = mla::mla_shape<128, 64, 320>::runtime();
  static_assert(rs.head_dim == 128 && rs.rope_dim == 64 && rs.latent_rank == 320);
  static_assert(rs.nope_dim() == 64 && rs.absorbed_dim() == 384 && rs.cached_elements_per_token() == 384);
  BOOST_TEST((rs == mla::runtime_shape{128, 64, 320}));
  BOOST_TEST((rs != mla::runtime_shape{128, 64, 352}));
  std::ostringstream os;
  os << rs;
  BOOST_TEST(os.str() == "(head_dim=128, rope_dim=64, latent_rank=320)");
}

namespace shape_test {
struct rope_32 {
  template <class S>
  static constexpr bool keep = S::rope_dim == 32;
};
struct none {
  template <class S>
  static constexpr bool keep = false;
};
}  // namespace shape_test

BOOST_AUTO_TEST_CASE(filter_and_contains) {
  using a = mla::mla_shape<64, 16, 32>;
  using b = mla::mla_shape<96, 32, 224>;
  using c = mla::mla_shape<128, 64, 448>;
  using d = mla::mla_shape<64, 32, 128>;
  using list = std::tuple<a, b, c, d>;
  // The kept shapes in list order, and nothing else.
  static_assert(std::is_same_v<mla::filter_shapes_t<list, shape_test::rope_32>, std::tuple<b, d>>);
  static_assert(std::is_same_v<mla::filter_shapes_t<list, shape_test::none>, std::tuple<>>);
  static_assert(std::is_same_v<mla::filter_shapes_t<std::tuple<>, shape_test::rope_32>, std::tuple<>>);
  static_assert(mla::contains_shape_v<c, list> && !mla::contains_shape_v<mla::mla_shape<128, 64, 480>, list>);
  static_assert(!mla::contains_shape_v<a, std::tuple<>>);
  constexpr std::size_t kept = std::tuple_size_v<mla::filter_shapes_t<list, shape_test::rope_32>>;
  BOOST_TEST(kept == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
