// The conversion report (mla-convert --report) of a small random model's conversion with every stage that draws
// a picture (budget, layer-wise distillation, end-to-end): report.json and the page's cells against the
// conversion_result's numbers, the KV bytes against the layers' own formula; the directory appears whole or not
// at all; with gnuplot, the pictures are PNGs of the scripts' size; with Chromium, the page renders.
#include "mla/inspect/conversion_report.hpp"

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "../convert/convert_test_support.hpp"
#include "expect_error.hpp"
#include "files.hpp"
#include "resources.hpp"
#include "seed.hpp"

BOOST_AUTO_TEST_SUITE(inspect_conversion_report)  // (its namespace holds the helpers: unity builds join test files)

namespace {

// The first executable `name` on $PATH ("" when there is none).
std::string on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "";
  std::size_t start = 0;
  while (start <= p.size()) {
    const std::size_t end = std::min(p.find(':', start), p.size());
    const std::filesystem::path f = std::filesystem::path(p.substr(start, end - start)) / name;
    std::error_code ec;
    if (end > start && std::filesystem::is_regular_file(f, ec) && ::access(f.c_str(), X_OK) == 0) return f.string();
    start = end + 1;
  }
  return "";
}

struct has_gnuplot {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    return mla::test::skip_unless(!on_path("gnuplot").empty(),
                                  "gnuplot not found on PATH (apt-get install gnuplot-nox): no pictures to check");
  }
};

struct has_chromium {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    return mla::test::skip_unless(!on_path("chromium").empty(),
                                  "chromium not found on PATH (apt-get install chromium): the page is not rendered");
  }
};

// Two SwiGLU layers (hidden 64, 4/2 heads of 16), window 16: 6 calibration windows, 2 held out, d_R 8, a budget
// of 0.7, two layer-wise distillation steps and three end-to-end steps validated at each.
struct small_conversion {
  mla::model::model_config cfg;
  mla::model::model_weights<float> w;
  mla::convert::conversion_recipe r;
  mla::convert::conversion_result<float> res;
  explicit small_conversion(std::mt19937_64& gen) {
    mla::test::random_model(gen, 2, mla::test::layer_spec{}, cfg, w);
    const std::vector<int> tokens = mla::test::random_windows(gen, cfg.vocab_size, 1, 400).front();
    r.model_path = "random/model.gguf";
    r.out_dir = "random-mla";
    r.window = 16;
    r.calib_tokens = 96;
    r.heldout_tokens = 32;
    r.layer.rope.rope_dim = 8;
    r.any_rank = true;
    r.kv_budget = 0.7;
    r.distill.steps = 2;
    r.distill_tokens = 80;
    r.e2e.steps = 3;
    r.e2e.validate_every = 1;
    r.e2e_tokens = 64;
    const mla::model::decoder<float> dec(cfg, w);
    res = mla::convert::run_conversion(dec, tokens, r);
  }
};

struct recorded_notes : mla::convert::conversion_progress {
  std::vector<std::string> notes;
  void note(const std::string& line) override { notes.push_back(line); }
};

std::string format(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Width and height from a PNG's IHDR chunk, after checking the signature and the chunk's place; {0, 0} otherwise.
std::pair<long, long> png_size(const std::string& bytes) {
  if (bytes.size() < 24 || bytes.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) != 0 ||
      bytes.compare(8, 8, std::string("\0\0\0\x0dIHDR", 8)) != 0)
    return {0, 0};
  auto be32 = [&](std::size_t at) {
    long v = 0;
    for (std::size_t i = 0; i < 4; ++i) v = v * 256 + static_cast<unsigned char>(bytes[at + i]);
    return v;
  };
  return {be32(16), be32(20)};
}

}  // namespace

// Without gnuplot: report.json holds the result's numbers bit for bit, the page shows them in its cells, the page
// and the progress say how to get the pictures, and no picture is written.
BOOST_AUTO_TEST_CASE(json_and_page_hold_the_results_numbers) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    const small_conversion c(gen);
    BOOST_TEST_REQUIRE(c.res.report.rows.size() >= 4u);  // exact, rope_split, factorized, ..., distill, e2e
    BOOST_TEST_REQUIRE(c.res.e2e_curve.size() == 3u);
    mla::test::temp_dir t("mla-report");
    const std::string dir = t.file("report");
    recorded_notes progress;
    const auto written = mla::inspect::write_conversion_report(dir, c.r, c.cfg, c.res, "", progress);
    BOOST_TEST(!written.pictures);
    BOOST_TEST(written.files == (std::vector<std::string>{"report.json", "index.html"}),
               boost::test_tools::per_element());
    BOOST_TEST(t.entries() == (std::vector<std::string>{"report"}), boost::test_tools::per_element());
    BOOST_TEST_REQUIRE(progress.notes.size() == 1u);
    BOOST_TEST(progress.notes[0].find("apt-get install gnuplot-nox") != std::string::npos);
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
    BOOST_TEST(files == (std::vector<std::string>{"index.html", "report.json"}), boost::test_tools::per_element());

    const nlohmann::json j = nlohmann::json::parse(mla::test::read_file(dir + "/report.json"));
    const std::string html = mla::test::read_file(dir + "/index.html");
    // Stage rows: the names and every per-layer error, bit for bit; the page's cell in %.3e.
    BOOST_TEST_REQUIRE(j.at("stages").size() == c.res.report.rows.size());
    for (std::size_t s = 0; s < c.res.report.rows.size(); ++s) {
      const auto& row = c.res.report.rows[s];
      const std::string name = mla::convert::to_string(row.id);
      BOOST_TEST(j["stages"][s]["stage"].get<std::string>() == name);
      BOOST_TEST_REQUIRE(j["stages"][s]["per_layer"].size() == 2u);
      for (std::size_t l = 0; l < 2; ++l) {
        BOOST_TEST(j["stages"][s]["per_layer"][l].get<double>() == row.per_layer[l], name << " layer " << l);
        const std::string cell =
            "id=\"err-" + name + "-" + std::to_string(l) + "\">" + format("%.3e", row.per_layer[l]) + "</td>";
        BOOST_TEST(html.find(cell) != std::string::npos, cell);
      }
    }
    // KV bytes per layer: GQA 2 x 2 KV heads x 16 x 4 bytes; the converted layer its rank + d_R, x 4 bytes.
    long before = 0, after = 0;
    for (std::size_t l = 0; l < 2; ++l) {
      const auto& ly = j.at("layers").at(l);
      const long rank = c.res.conversion.ranks[l];
      BOOST_TEST(ly["kv_bytes_original"].get<long>() == 2 * 2 * 16 * 4);
      BOOST_TEST(ly["kv_bytes_converted"].get<long>() == (rank + 8) * 4);
      BOOST_TEST(ly["latent_rank"].get<long>() == rank);
      BOOST_TEST(ly["attention"].get<std::string>() == "mla");
      before += 2 * 2 * 16 * 4, after += (rank + 8) * 4;
    }
    BOOST_TEST(j["kv_cache"]["bytes_per_token_original"].get<long>() == before);
    BOOST_TEST(j["kv_cache"]["bytes_per_token_converted"].get<long>() == after);
    BOOST_TEST(after < before);  // the budget shrank the cache
    BOOST_TEST(html.find("original <b>" + std::to_string(before) + "</b> bytes, converted <b>" + std::to_string(after) +
                         "</b> bytes") != std::string::npos);
    // The layer-wise distillation's losses and the end-to-end stage's KL and curve.
    BOOST_TEST_REQUIRE(j.at("distill").size() == 2u);
    for (std::size_t l = 0; l < 2; ++l) {
      const auto& d = c.res.conversion.distill[l];
      BOOST_TEST(j["distill"][l]["heldout_before"].get<double>() == d.heldout_before);
      BOOST_TEST(j["distill"][l]["heldout_after"].get<double>() == d.heldout_after);
      BOOST_TEST(j["distill"][l]["best_step"].get<int>() == d.best_step);
      BOOST_TEST(html.find("id=\"distill-after-" + std::to_string(l) + "\">" + format("%.3e", d.heldout_after)) !=
                 std::string::npos);
    }
    BOOST_TEST(j["e2e"]["heldout_kl_before"].get<double>() == c.res.e2e.heldout_before);
    BOOST_TEST(j["e2e"]["heldout_kl_after"].get<double>() == c.res.e2e.heldout_after);
    BOOST_TEST_REQUIRE(j["e2e"]["curve"].size() == c.res.e2e_curve.size());
    for (std::size_t i = 0; i < c.res.e2e_curve.size(); ++i) {
      const auto& [step, kl] = c.res.e2e_curve[i];
      BOOST_TEST(j["e2e"]["curve"][i][0].get<int>() == step);
      BOOST_TEST(j["e2e"]["curve"][i][1].get<double>() == kl);
      BOOST_TEST(html.find("id=\"e2e-" + std::to_string(step) + "\">" + format("%.5f", kl) + "</td>") !=
                 std::string::npos);
    }
    BOOST_TEST(j["heldout_tokens"].get<long>() == 32);
    BOOST_TEST(j["settings"]["--kv-budget"].get<double>() == 0.7);
    BOOST_TEST(j["pictures"].empty());
    BOOST_TEST(html.find("apt-get install gnuplot-nox") != std::string::npos);
    BOOST_TEST(html.find("<img") == std::string::npos);
    // Nothing fetched: no scheme in any address.
    BOOST_TEST(html.find("http") == std::string::npos);
  }
}

// A directory that exists is refused before and at writing, and left as it was; a missing parent is named.
BOOST_AUTO_TEST_CASE(existing_directory_is_refused) {
  std::mt19937_64 gen(mla::test::test_seed());
  const small_conversion c(gen);
  mla::test::temp_dir t("mla-report");
  std::filesystem::create_directory(t.file("taken"));
  mla::test::expect_error([&] { mla::inspect::check_report_path(t.file("taken")); },
                          {"--report", t.file("taken"), "already exists"});
  mla::test::expect_error([&] { mla::inspect::write_conversion_report(t.file("taken"), c.r, c.cfg, c.res, ""); },
                          {"--report", t.file("taken"), "already exists"});
  BOOST_TEST(std::filesystem::is_empty(t.file("taken")));
  mla::test::expect_error([&] { mla::inspect::check_report_path(t.file("no_such_dir/report")); },
                          {"--report", "no_such_dir", "does not exist"});
  BOOST_TEST(t.entries() == (std::vector<std::string>{"taken"}), boost::test_tools::per_element());
}

// With gnuplot: every picture the page shows is a PNG of the scripts' 900 x 500 pixels with its SVG, data and
// script beside it, listed in report.json.
BOOST_AUTO_TEST_CASE(pictures_are_drawn, *boost::unit_test::precondition(has_gnuplot())) {
  std::mt19937_64 gen(mla::test::test_seed());
  const small_conversion c(gen);
  mla::test::temp_dir t("mla-report");
  const std::string dir = t.file("report");
  const auto written = mla::inspect::write_conversion_report(dir, c.r, c.cfg, c.res, on_path("gnuplot"));
  BOOST_TEST(written.pictures);
  const nlohmann::json j = nlohmann::json::parse(mla::test::read_file(dir + "/report.json"));
  const std::string html = mla::test::read_file(dir + "/index.html");
  std::vector<std::string> pngs;
  for (const auto& p : j.at("pictures"))
    if (p.get<std::string>().size() > 4 && p.get<std::string>().substr(p.get<std::string>().size() - 4) == ".png")
      pngs.push_back(p.get<std::string>());
  BOOST_TEST(pngs == (std::vector<std::string>{"stage_error.png", "kv_bytes.png", "distill.png", "e2e_kl.png"}),
             boost::test_tools::per_element());
  for (const std::string& png : pngs) {
    BOOST_TEST_CONTEXT(png) {
      const std::string stem = png.substr(0, png.size() - 4);
      const std::string bytes = mla::test::read_file(dir + "/" + png);
      BOOST_TEST((png_size(bytes) == std::pair<long, long>{900, 500}));
      BOOST_TEST(mla::test::read_file(dir + "/" + stem + ".svg").find("<svg") != std::string::npos);
      BOOST_TEST(std::filesystem::exists(dir + "/" + stem + ".dat"));
      BOOST_TEST(std::filesystem::exists(dir + "/" + stem + ".gp"));
      BOOST_TEST(html.find("<img src=\"" + png + "\"") != std::string::npos);
    }
  }
  BOOST_TEST(html.find("apt-get install gnuplot-nox") == std::string::npos);
  for (const auto& e : std::filesystem::directory_iterator(dir))
    BOOST_TEST(e.path().filename().string().find(".tmp") == std::string::npos, e.path().string());
}

// Headless Chromium renders the page with its pictures into a 1200 x 1600 screenshot that is not blank: a blank
// (white) page of that size compresses to about 10 KB, this one (text, tables, four plots) to far more.
BOOST_AUTO_TEST_CASE(chromium_renders_the_page, *boost::unit_test::precondition(has_chromium())) {
  std::mt19937_64 gen(mla::test::test_seed());
  const small_conversion c(gen);
  mla::test::temp_dir t("mla-report");
  const std::string dir = t.file("report");
  mla::inspect::write_conversion_report(dir, c.r, c.cfg, c.res, on_path("gnuplot"));
  const std::string shot = t.file("shot.png");
  const std::string cmd = "timeout 120 '" + on_path("chromium") + "' --headless --no-sandbox --disable-gpu " +
                          "--user-data-dir='" + t.file("profile") + "' --screenshot='" + shot +
                          "' --window-size=1200,1600 'file://" + dir + "/index.html' >'" + t.file("chromium.log") +
                          "' 2>&1";
  const int rc = std::system(cmd.c_str());
  BOOST_TEST_REQUIRE(rc == 0, "chromium failed: " << mla::test::read_file(t.file("chromium.log")));
  const std::string bytes = mla::test::read_file(shot);
  BOOST_TEST((png_size(bytes) == std::pair<long, long>{1200, 1600}));
  BOOST_TEST(bytes.size() > 40000u);
}

BOOST_AUTO_TEST_SUITE_END()
