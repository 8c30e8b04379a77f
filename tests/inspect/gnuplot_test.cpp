#include "mla/inspect/gnuplot.hpp"

#include <sys/stat.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "files.hpp"
#include "random.hpp"
#include "seed.hpp"

namespace {

void write_script(const std::string& path, const std::string& body, bool executable = true) {
  std::ofstream(path) << "#!/bin/sh\n" << body;
  ::chmod(path.c_str(), executable ? 0755 : 0644);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

mla::inspect::heatmap random_heatmap(std::mt19937_64& gen) {
  return {"hm",
          "a 'quoted' title",
          "second line",
          "x axis",
          "y axis",
          "value",
          mla::test::randn<double>(gen, mla::test::pick(gen, 1, 7), mla::test::pick(gen, 1, 9), 3.0)};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(inspect_gnuplot)

BOOST_AUTO_TEST_CASE(find_gnuplot_takes_the_first_executable_on_the_path) {
  mla::test::temp_dir t("mla-gnuplot");
  for (const char* d : {"a", "b", "c"}) std::filesystem::create_directory(t.file(d));
  write_script(t.file("a/gnuplot"), "exit 0\n", /*executable=*/false);
  write_script(t.file("b/gnuplot"), "exit 0\n");
  write_script(t.file("c/gnuplot"), "exit 0\n");
  BOOST_TEST(mla::inspect::find_gnuplot(t.file("a") + "::" + t.file("b") + ":" + t.file("c")) == t.file("b/gnuplot"));
  BOOST_TEST(mla::inspect::find_gnuplot(t.file("a")) == "");
  BOOST_TEST(mla::inspect::find_gnuplot("") == "");
  BOOST_TEST(mla::inspect::gnuplot_missing_message().find("apt-get install gnuplot-nox") != std::string::npos);
}

// The data file holds the matrix (rows = y), the script quotes the labels and draws both pictures.
BOOST_AUTO_TEST_CASE(write_heatmap_writes_the_matrix_and_the_script) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    mla::test::temp_dir t("mla-gnuplot");
    const mla::inspect::heatmap hm = random_heatmap(gen);
    const std::string script = mla::inspect::write_heatmap(t.path(), hm);
    BOOST_TEST(script == t.file("hm.gp"));
    std::istringstream data(slurp(t.file("hm.dat")));
    for (Eigen::Index r = 0; r < hm.values.rows(); ++r)
      for (Eigen::Index c = 0; c < hm.values.cols(); ++c) {
        double v = 0;
        BOOST_TEST_REQUIRE(static_cast<bool>(data >> v));
        BOOST_TEST(v == hm.values(r, c), boost::test_tools::tolerance(1e-5));
      }
    double extra = 0;
    BOOST_TEST(!(data >> extra));
    const std::string gp = slurp(script);
    BOOST_TEST(gp.find("set title 'a ''quoted'' title'.\"\\n\".'second line'") != std::string::npos);
    BOOST_TEST(gp.find("set output 'hm.png'.suffix") != std::string::npos);
    BOOST_TEST(gp.find("set output 'hm.svg'.suffix") != std::string::npos);
    BOOST_TEST(gp.find("set yrange [-0.5:" + std::to_string(hm.values.rows()) + "-0.5]") != std::string::npos);
  }
}

// A gnuplot that fails leaves no picture and no temporary; one that writes the temporaries gets them renamed.
BOOST_AUTO_TEST_CASE(run_gnuplot_renames_on_success_and_cleans_up_on_failure) {
  std::mt19937_64 gen(3);
  mla::test::temp_dir t("mla-gnuplot");
  const std::string script = mla::inspect::write_heatmap(t.path(), random_heatmap(gen));
  const std::vector<std::string> outputs{t.file("hm.png"), t.file("hm.svg")};
  write_script(t.file("failing"), "echo partial > hm.png.tmp\nexit 3\n");
  BOOST_CHECK_EXCEPTION(
      mla::inspect::run_gnuplot(t.file("failing"), script, outputs), mla::error,
      [](const mla::error& e) { return std::string(e.what()).find("exit status 3") != std::string::npos; });
  BOOST_TEST(!std::filesystem::exists(t.file("hm.png.tmp")));
  BOOST_TEST(!std::filesystem::exists(t.file("hm.png")));
  // Writes every output its script names ("set output 'X'.suffix") as X.tmp when called with -e "suffix = '.tmp'"
  // (as run_gnuplot calls it), in the directory it runs in.
  write_script(
      t.file("fake"),
      "[ \"$1\" = -e ] && [ \"$2\" = \"suffix = '.tmp'\" ] || exit 9\n"
      "for f in $(sed -n \"s/^set output '\\(.*\\)'.suffix$/\\1/p\" \"$3\"); do echo drawn > \"$f.tmp\"; done\n");
  mla::inspect::run_gnuplot(t.file("fake"), script, outputs);
  BOOST_TEST(slurp(t.file("hm.png")) == "drawn\n");
  BOOST_TEST(slurp(t.file("hm.svg")) == "drawn\n");
  BOOST_TEST(!std::filesystem::exists(t.file("hm.svg.tmp")));
  // An output the script never wrote is an error naming it.
  write_script(t.file("lazy"), "exit 0\n");
  BOOST_CHECK_EXCEPTION(
      mla::inspect::run_gnuplot(t.file("lazy"), script, {t.file("never.png")}), mla::error,
      [](const mla::error& e) { return std::string(e.what()).find("never.png") != std::string::npos; });
  BOOST_CHECK_THROW(mla::inspect::run_gnuplot("", script, outputs), mla::error);
}

// With the real gnuplot (when installed): a PNG and an SVG that carries the title.
BOOST_AUTO_TEST_CASE(real_gnuplot_draws_png_and_svg) {
  const char* path = std::getenv("PATH");
  const std::string gnuplot = mla::inspect::find_gnuplot(path ? path : "");
  if (gnuplot.empty()) {
    BOOST_TEST_MESSAGE("gnuplot is not installed: " << mla::inspect::gnuplot_missing_message());
    return;
  }
  std::mt19937_64 gen(4);
  mla::test::temp_dir t("mla-gnuplot");
  const auto files = mla::inspect::draw_heatmap(gnuplot, t.path(), random_heatmap(gen));
  BOOST_TEST_REQUIRE(files.size() == 2u);
  BOOST_TEST(slurp(files[0]).substr(0, 8) == std::string("\x89PNG\r\n\x1a\n"));
  const std::string svg = slurp(files[1]);
  BOOST_TEST(svg.find("<svg") != std::string::npos);
  BOOST_TEST(svg.find("quoted") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
