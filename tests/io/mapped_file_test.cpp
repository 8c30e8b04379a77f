#include "mla/io/mapped_file.hpp"

#include <boost/test/unit_test.hpp>

#include <cstring>
#include <string>
#include <utility>

#include "expect_error.hpp"
#include "files.hpp"
#include "io_test_support.hpp"

BOOST_AUTO_TEST_SUITE(io_mapped_file)

BOOST_AUTO_TEST_CASE(maps_the_whole_file) {
  mla::test::temp_dir dir;
  mla_test::rng r(1);
  const auto content = r.random_bytes(10000);
  mla_test::write_file(dir.file("a.bin"), content);
  const mla::io::mapped_file m(dir.file("a.bin"));
  BOOST_TEST(m.size() == content.size());
  BOOST_TEST(m.is_mapped());
  BOOST_TEST(m.path() == dir.file("a.bin"));
  BOOST_TEST(std::memcmp(m.data(), content.data(), content.size()) == 0);
  BOOST_TEST(m.bytes().size == content.size());
  BOOST_TEST(m.bytes().subspan(10, 5)[0] == content[10]);
}

BOOST_AUTO_TEST_CASE(empty_file_has_no_mapping) {
  mla::test::temp_dir dir;
  mla_test::write_file(dir.file("empty"), mla_test::bytes{});
  const mla::io::mapped_file m(dir.file("empty"));
  BOOST_TEST(m.size() == 0u);
  BOOST_TEST(m.data() == nullptr);
  BOOST_TEST(m.bytes().empty());
}

BOOST_AUTO_TEST_CASE(move_keeps_the_address) {
  mla::test::temp_dir dir;
  mla_test::write_file(dir.file("a"), std::string("hello"));
  mla::io::mapped_file a(dir.file("a"));
  const std::uint8_t* p = a.data();
  mla::io::mapped_file b(std::move(a));
  BOOST_TEST(b.data() == p);
  BOOST_TEST(b.size() == 5u);
  BOOST_TEST(a.data() == nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
  mla::io::mapped_file c;
  c = std::move(b);
  BOOST_TEST(c.data() == p);
  BOOST_TEST(std::string(reinterpret_cast<const char*>(c.data()), c.size()) == "hello");
}

BOOST_AUTO_TEST_CASE(errors_name_the_path_and_errno_text) {
  mla::test::temp_dir dir;
  const std::string missing = dir.file("does_not_exist.bin");
  mla::test::expect_error([&] { mla::io::mapped_file m(missing); },
                          {"cannot open", missing, "No such file or directory"});
  mla::test::expect_error([&] { mla::io::mapped_file m(dir.path()); }, {dir.path(), "not a regular file"});
}

BOOST_AUTO_TEST_SUITE_END()
