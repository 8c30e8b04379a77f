#include "mla/io/mapped_file.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include <sys/mman.h>
#include <unistd.h>

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

// Released pages read back the same bytes (faulted in again from the page cache); a span outside the mapping
// is refused, and memory it covers (here anonymous memory, which MADV_DONTNEED would zero) is untouched.
BOOST_AUTO_TEST_CASE(released_pages_read_back_the_same_bytes) {
  mla::test::temp_dir dir;
  mla_test::rng r(2);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const auto content = r.random_bytes(3 * page + 123);
  mla_test::write_file(dir.file("a.bin"), content);
  const mla::io::mapped_file m(dir.file("a.bin"));
  BOOST_TEST(m.release(m.bytes().subspan(page / 2, page + 7)));  // straddles pages 0-1
  BOOST_TEST(m.release(m.bytes().subspan(3 * page, 123)));       // the partial last page
  BOOST_TEST(std::memcmp(m.data(), content.data(), content.size()) == 0);
  BOOST_TEST(!m.release(mla::io::byte_span{m.data() + 1, m.size()}));  // one byte past the end
  BOOST_TEST(!m.release(mla::io::byte_span{}));

  void* p = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  BOOST_REQUIRE(p != MAP_FAILED);
  std::memset(p, 0xAB, 2 * page);
  BOOST_TEST(!m.release(mla::io::byte_span{static_cast<const std::uint8_t*>(p), 2 * page}));
  BOOST_TEST(static_cast<const std::uint8_t*>(p)[page + 5] == 0xAB);
  ::munmap(p, 2 * page);
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
