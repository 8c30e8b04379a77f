// util::stale_temporaries and its checks: a `<out>.tmp.<pid>` left by a run that is gone is named and removed
// on request; one whose process still runs is named as such and never removed; look-alikes are ignored.
#include "mla/util/output_path.hpp"

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "expect_error.hpp"
#include "files.hpp"

BOOST_AUTO_TEST_SUITE(output_path)

namespace {

// The pid of a child that has exited and been reaped (not reused this soon).
long finished_pid() {
  const pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

}  // namespace

BOOST_AUTO_TEST_CASE(stale_temporaries_are_named_and_removed) {
  namespace fs = std::filesystem;
  mla::test::temp_dir tmp("mla-stale");
  const std::string out = tmp.file("conv");
  BOOST_CHECK_NO_THROW(mla::util::check_no_stale_temporary("--out", out));
  // Look-alikes: another output's temporary, a non-numeric suffix, this process's own.
  fs::create_directory(tmp.file("conv2.tmp.1"));
  fs::create_directory(tmp.file("conv.tmp.abc"));
  fs::create_directory(out + ".tmp." + std::to_string(::getpid()));
  BOOST_TEST(mla::util::stale_temporaries(out).empty());
  BOOST_CHECK_NO_THROW(mla::util::check_no_stale_temporary("--out", out));

  const std::string dead = out + ".tmp." + std::to_string(finished_pid());
  fs::create_directory(dead);
  std::ofstream(dead + "/model.safetensors") << "partial";
  const auto found = mla::util::stale_temporaries(out);
  BOOST_TEST_REQUIRE(found.size() == 1u);
  BOOST_TEST(found[0].path == dead);
  BOOST_TEST(!found[0].running);
  mla::test::expect_error([&] { mla::util::check_no_stale_temporary("--out", out); },
                          {"--out: '" + dead + "' is left from an earlier run", "no longer running", "--force"});

  // A running process's temporary (the parent of this one): named, and never removed.
  const std::string live = out + ".tmp." + std::to_string(::getppid());
  std::ofstream(live) << "being written";
  mla::test::expect_error([&] { mla::util::remove_stale_temporaries("--out", out); },
                          {"--out: '" + live + "' belongs to process", "still running"});
  BOOST_TEST(fs::exists(live));
  fs::remove(live);

  const auto removed = mla::util::remove_stale_temporaries("--out", out);
  BOOST_TEST_REQUIRE(removed.size() == 1u);
  BOOST_TEST(removed[0] == dead);
  BOOST_TEST(!fs::exists(dead));
  BOOST_TEST(fs::exists(tmp.file("conv2.tmp.1")));
  BOOST_TEST(fs::exists(tmp.file("conv.tmp.abc")));
}

BOOST_AUTO_TEST_SUITE_END()
