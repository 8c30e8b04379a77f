#include "mla/io/atomic_file.hpp"

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "files.hpp"
#include "io_test_support.hpp"

namespace fs = std::filesystem;

BOOST_AUTO_TEST_SUITE(io_atomic_file)

BOOST_AUTO_TEST_CASE(commit_renames_into_place) {
  mla::test::temp_dir dir;
  const std::string path = dir.file("out.bin");
  {
    mla::io::atomic_file f(path);
    BOOST_TEST(f.temp_path() == path + ".tmp." + std::to_string(::getpid()));
    BOOST_TEST(fs::exists(f.temp_path()));
    BOOST_TEST(!fs::exists(path));  // nothing visible before commit
    f.write(std::string("abc"));
    f.write("def", 3);
    BOOST_TEST(f.bytes_written() == 6u);
    f.commit();
    BOOST_TEST(!fs::exists(f.temp_path()));
  }
  BOOST_TEST(fs::exists(path));
  const auto content = mla_test::read_file(path);
  BOOST_TEST(std::string(content.begin(), content.end()) == "abcdef");
  BOOST_TEST(dir.entries().size() == 1u);
}

BOOST_AUTO_TEST_CASE(replaces_an_existing_file) {
  mla::test::temp_dir dir;
  const std::string path = dir.file("out.txt");
  mla_test::write_file(path, std::string("old"));
  mla::io::write_file_atomically(path, std::string("new contents"));
  const auto content = mla_test::read_file(path);
  BOOST_TEST(std::string(content.begin(), content.end()) == "new contents");
}

BOOST_AUTO_TEST_CASE(destructor_without_commit_leaves_nothing) {
  mla::test::temp_dir dir;
  const std::string path = dir.file("out.bin");
  mla_test::write_file(path, std::string("old"));
  try {
    mla::io::atomic_file f(path);
    f.write(std::string("partial"));
    throw std::runtime_error("writer failed half-way");
  } catch (const std::runtime_error&) {
  }
  // The old file is intact and the temporary is gone.
  const auto content = mla_test::read_file(path);
  BOOST_TEST(std::string(content.begin(), content.end()) == "old");
  BOOST_TEST(dir.entries() == std::vector<std::string>{"out.bin"});

  {
    mla::io::atomic_file g(dir.file("never.bin"));
    g.write(std::string("x"));
  }
  BOOST_TEST(!fs::exists(dir.file("never.bin")));
  BOOST_TEST(dir.entries().size() == 1u);
}

BOOST_AUTO_TEST_CASE(move_transfers_ownership) {
  mla::test::temp_dir dir;
  mla::io::atomic_file a(dir.file("m.bin"));
  a.write(std::string("12"));
  mla::io::atomic_file b(std::move(a));
  b.write(std::string("34"));
  b.commit();
  const auto content = mla_test::read_file(dir.file("m.bin"));
  BOOST_TEST(std::string(content.begin(), content.end()) == "1234");
  BOOST_TEST(dir.entries().size() == 1u);
}

BOOST_AUTO_TEST_CASE(errors_name_the_paths) {
  mla::test::temp_dir dir;
  const std::string bad = dir.file("no_such_dir/out.bin");
  mla::test::expect_error([&] { mla::io::atomic_file f(bad); },
                          {"cannot create temporary file", bad + ".tmp.", "No such file or directory"});
  mla::io::atomic_file f(dir.file("x"));
  f.commit();
  mla::test::expect_error([&] { f.write("a", 1); }, {"write after commit", dir.file("x")});
  mla::test::expect_error([&] { f.commit(); }, {"commit after commit"});
  // A second writer for the same target in the same process is refused, not interleaved.
  mla::io::atomic_file g(dir.file("y"));
  mla::test::expect_error([&] { mla::io::atomic_file h(dir.file("y")); }, {"File exists", dir.file("y") + ".tmp."});
}

BOOST_AUTO_TEST_SUITE_END()
