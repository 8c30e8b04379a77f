// util::install_signal_cleanup: a process interrupted while io::atomic_directory and io::atomic_file hold their
// temporaries exits 128 + the signal and leaves nothing behind; the registry lets go of a committed or
// discarded temporary. Each interrupted run is a forked child that signals itself, checked by the parent.
#include "mla/util/signal_cleanup.hpp"

#include <boost/test/unit_test.hpp>
#include <csignal>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "files.hpp"
#include "mla/io/atomic_directory.hpp"
#include "mla/io/atomic_file.hpp"
#include "mla/util/output_path.hpp"

BOOST_AUTO_TEST_SUITE(signal_cleanup)

namespace {

int registered_slots() {
  int n = 0;
  for (const auto& s : mla::util::cleanup_detail::cleanup_registry) n += s.state.load() == 2;
  return n;
}

// Runs `work` in a forked child with the handler installed (SIGINT reset to its default first, in case the test
// runs with it ignored), then returns the child's wait status. The child exits 99 when `work` returns.
template <class F>
int in_child(F&& work) {
  const pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    std::signal(SIGINT, SIG_DFL);
    mla::util::install_signal_cleanup("signal_cleanup_test");
    try {
      work();
    } catch (...) {
      ::_exit(98);
    }
    ::_exit(99);
  }
  int status = 0;
  BOOST_REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

}  // namespace

// A checkpoint directory half written (two files committed inside, a third open, a subdirectory) and a single
// file open beside it: the signal removes all of it and the exit status is 128 + signal.
BOOST_AUTO_TEST_CASE(signal_removes_temporaries_and_exits_128_plus_signal) {
  for (const int sig : {SIGINT, SIGTERM}) {
    mla::test::temp_dir tmp("mla-signal");
    const int status = in_child([&] {
      mla::io::atomic_directory dir(tmp.file("ckpt"));
      dir.write_file("config.json", "{}\n");
      dir.write_file("tokenizer.json", std::string(100000, 'x'));
      std::filesystem::create_directory(dir.file("sub"));
      mla::io::write_file_atomically(dir.file("sub") + "/inner", std::string("inner"));
      mla::io::atomic_file open_inside(dir.file("model.safetensors"));
      open_inside.write(std::string(1 << 20, 'w'));
      mla::io::atomic_file beside(tmp.file("export.gguf"));
      beside.write(std::string("GGUF"));
      BOOST_TEST_REQUIRE(std::filesystem::exists(dir.temp_path()));
      ::raise(sig);
    });
    BOOST_TEST_INFO("signal " << sig);
    BOOST_TEST_REQUIRE(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 128 + sig);
    BOOST_TEST(tmp.entries() == std::vector<std::string>{}, boost::test_tools::per_element());
  }
}

// Without the handler's work to do (nothing registered) the exit status is still 128 + signal; an output
// committed before the signal stays, complete.
BOOST_AUTO_TEST_CASE(committed_output_stays) {
  mla::test::temp_dir tmp("mla-signal");
  const int status = in_child([&] {
    mla::io::atomic_directory dir(tmp.file("ckpt"));
    dir.write_file("config.json", "{}\n");
    dir.commit();
    mla::io::write_file_atomically(tmp.file("report.json"), std::string("{}"));
    ::raise(SIGTERM);
  });
  BOOST_TEST_REQUIRE(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 143);
  BOOST_TEST(mla::test::read_file(tmp.file("ckpt/config.json")) == "{}\n");
  BOOST_TEST(mla::test::read_file(tmp.file("report.json")) == "{}");
  BOOST_TEST(tmp.entries().size() == 2u);
}

// Registrations end with commit, discard and destruction (and moves keep one), so the handler never removes a
// path that is no longer a temporary.
BOOST_AUTO_TEST_CASE(registry_follows_the_temporaries) {
  mla::test::temp_dir tmp("mla-signal");
  const int before = registered_slots();
  {
    mla::io::atomic_directory dir(tmp.file("a"));
    BOOST_TEST(registered_slots() == before + 1);
    mla::io::atomic_file f(dir.file("x"));
    BOOST_TEST(registered_slots() == before + 2);
    mla::io::atomic_file g = std::move(f);
    BOOST_TEST(registered_slots() == before + 2);
    g.commit();
    BOOST_TEST(registered_slots() == before + 1);
    dir.commit();
    BOOST_TEST(registered_slots() == before);
    mla::io::atomic_file h(tmp.file("y"));
    h.discard();
    BOOST_TEST(registered_slots() == before);
    mla::io::atomic_directory gone(tmp.file("b"));
    BOOST_TEST(registered_slots() == before + 1);
  }
  BOOST_TEST(registered_slots() == before);
  mla::util::write_file("--json", tmp.file("j.json"), "{}");
  BOOST_TEST(registered_slots() == before);
}

BOOST_AUTO_TEST_SUITE_END()
