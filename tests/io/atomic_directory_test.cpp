// io::atomic_directory: the files appear under the target only at commit (a rename of `<dir>.tmp.<pid>`); an
// exception before commit removes the temporary directory and leaves no target; an existing target, an existing
// temporary directory and a file name with a directory in it are refused with their names.
#include "mla/io/atomic_directory.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "expect_error.hpp"
#include "files.hpp"

namespace fs = std::filesystem;

BOOST_AUTO_TEST_SUITE(io_atomic_directory)

BOOST_AUTO_TEST_CASE(commit_renames_the_temporary_directory_into_place) {
  mla::test::temp_dir root;
  const std::string target = root.file("nested/out");  // the missing parent is created
  const std::string temp = target + ".tmp." + std::to_string(::getpid());
  {
    mla::io::atomic_directory d(target, "writer");
    BOOST_TEST(d.temp_path().string() == temp);
    BOOST_TEST(fs::is_directory(temp));
    BOOST_TEST(!fs::exists(target));  // nothing visible before commit
    d.write_file("a.txt", "alpha\n");
    mla::io::write_file_atomically(d.file("b.bin"), "beta");  // any writer may fill file(name)
    BOOST_TEST(!fs::exists(target));
    d.commit();
    BOOST_TEST(!fs::exists(temp));
  }
  BOOST_TEST(mla::test::read_file(target + "/a.txt") == "alpha\n");
  BOOST_TEST(mla::test::read_file(target + "/b.bin") == "beta");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root.file("nested"))) names.push_back(e.path().filename().string());
  BOOST_TEST(names == std::vector<std::string>{"out"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(an_exception_before_commit_removes_the_temporary_directory) {
  mla::test::temp_dir root;
  const std::string target = root.file("out");
  try {
    mla::io::atomic_directory d(target, "writer");
    d.write_file("config.json", "{}\n");
    fs::create_directory(d.file("sub"));  // contents of any depth go with it
    d.write_file("sub_file", std::string(1 << 16, 'x'));
    throw std::runtime_error("the caller fails half-way");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()) == "the caller fails half-way");
  }
  BOOST_TEST(root.entries().empty());  // neither the target nor the temporary directory
}

BOOST_AUTO_TEST_CASE(discard_removes_and_later_writes_are_refused) {
  mla::test::temp_dir root;
  mla::io::atomic_directory d(root.file("out"), "writer");
  d.write_file("a", "1");
  d.discard();
  BOOST_TEST(root.entries().empty());
  mla::test::expect_error([&] { d.write_file("b", "2"); }, {"writer", "'b'", "after commit or discard"});
  mla::test::expect_error([&] { d.commit(); }, {"writer", "commit after commit or discard"});
  BOOST_TEST(root.entries().empty());
}

BOOST_AUTO_TEST_CASE(an_existing_target_is_refused_and_left_alone) {
  mla::test::temp_dir root;
  const std::string target = root.file("out");
  fs::create_directory(target);
  mla::io::write_file_atomically(target + "/keep.txt", "kept");
  mla::test::expect_error([&] { mla::io::atomic_directory d(target, "writer"); },
                          {"writer: output '" + target + "' already exists", "nothing is overwritten"});
  mla::test::expect_error([&] { mla::io::check_new_output_path(target, "saver"); },
                          {"saver: output '" + target + "' already exists"});
  BOOST_TEST(mla::test::read_file(target + "/keep.txt") == "kept");
  BOOST_TEST(root.entries() == std::vector<std::string>{"out"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_stale_temporary_directory_and_bad_names_are_refused) {
  mla::test::temp_dir root;
  const std::string target = root.file("out");
  const std::string temp = target + ".tmp." + std::to_string(::getpid());
  fs::create_directory(temp);
  mla::test::expect_error([&] { mla::io::atomic_directory d(target, "writer"); },
                          {"writer: temporary directory '" + temp + "' already exists"});
  BOOST_TEST(fs::is_directory(temp));  // a stale directory is not someone else's to delete
  fs::remove(temp);
  mla::io::atomic_directory d(target, "writer");
  mla::test::expect_error([&] { d.write_file("a/b", "x"); }, {"writer", "file name 'a/b' is not allowed"});
  mla::test::expect_error([&] { d.write_file("", "x"); }, {"writer", "file name '' is not allowed"});
  mla::test::expect_error([&] { mla::io::atomic_directory e("", "writer"); }, {"writer: empty output path"});
}

BOOST_AUTO_TEST_SUITE_END()
