// The end-to-end stage stopped and continued (issue 29, item 6): a run killed after a saved state and taken up
// again from the file gives the loss curve and the weights of a run that never stopped, bit for bit; a state of
// another run is refused; a damaged file is named; a step that turns the loss non-finite stops the stage with the
// step in the message.
#include "mla/convert/distill_state.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "distill_model_case.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/distill_model.hpp"
#include "mla/convert/pipeline.hpp"

namespace {

struct stopped_here {};  // thrown by the save callback: the process "dies" right after the state is on disk

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("mla_distill_state_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

bool same_attention(const mla::convert::model_conversion<float>& a, const mla::convert::model_conversion<float>& b) {
  for (std::size_t l = 0; l < a.weights.layers.size(); ++l) {
    const auto &x = a.weights.layers[l].mla, &y = b.weights.layers[l].mla;
    if (!(x.wq == y.wq && x.w_dkv == y.w_dkv && x.w_kr == y.w_kr && x.w_uk == y.w_uk && x.w_uv == y.w_uv &&
          x.wo == y.wo))
      return false;
  }
  return true;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(distill_state)

BOOST_AUTO_TEST_CASE(stopped_and_resumed_run_is_the_uninterrupted_run) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::distill_model_case<float> c(gen, 10, 32);
    const mla::model::decoder<float> src(c.cfg, c.w);
    mla::convert::distill_options o;
    o.steps = 12;
    o.learning_rate = 5e-3;
    o.batch_windows = 2;
    o.validate_every = 2;
    o.temperature = 2.0;

    auto whole = c.conv;  // the run that never stops
    mla::convert::distill_report rep_whole;
    mla::convert::distill_model<float>(src, whole, c.windows, o, &rep_whole);
    BOOST_TEST_REQUIRE(rep_whole.curve.size() == 6u);
    BOOST_TEST(rep_whole.best_step > 0);

    // Saves every 4 steps, killed right after the save at step 8 ...
    const std::string path = temp_path("a.safetensors");
    mla::convert::distill_checkpointing<float> ck;
    ck.every = 4;
    std::vector<int> saved_steps;
    ck.save = [&](const mla::convert::distill_model_state<float>& st) {
      mla::convert::save_distill_state(path, st);
      saved_steps.push_back(st.step);
      if (st.step == 8) throw stopped_here{};
    };
    auto killed = c.conv;
    BOOST_CHECK_THROW(mla::convert::distill_model<float>(src, killed, c.windows, o, nullptr, {}, nullptr, ck),
                      stopped_here);
    BOOST_TEST((saved_steps == std::vector<int>{4, 8}));

    // ... and a fresh process continues from the file, with the model it started from.
    const auto st = mla::convert::load_distill_state<float>(path);
    BOOST_TEST(st.step == 8);
    BOOST_TEST(st.curve.size() == 4u);
    auto resumed = c.conv;
    mla::convert::distill_checkpointing<float> go;
    go.resume = &st;
    mla::convert::distill_report rep_resumed;
    std::vector<int> steps_seen;
    mla::convert::distill_model<float>(
        src, resumed, c.windows, o, &rep_resumed, [&](int step, int, double) { steps_seen.push_back(step); }, nullptr,
        go);
    BOOST_TEST((steps_seen == std::vector<int>{9, 10, 11, 12}));
    BOOST_TEST((rep_resumed.curve == rep_whole.curve), "the resumed run's held-out curve differs");
    BOOST_TEST(rep_resumed.heldout_before == rep_whole.heldout_before);
    BOOST_TEST(rep_resumed.heldout_after == rep_whole.heldout_after);
    BOOST_TEST(rep_resumed.best_step == rep_whole.best_step);
    BOOST_TEST(same_attention(resumed, whole), "the resumed run's weights differ from the uninterrupted run's");

    // Without Adam's moments (a restart from the saved weights alone) the trajectory differs: the state matters.
    auto moments_lost = mla::convert::load_distill_state<float>(path);
    for (auto& m : moments_lost.m1) m.setZero();
    for (auto& m : moments_lost.m2) m.setZero();
    auto restarted = c.conv;
    go.resume = &moments_lost;
    mla::convert::distill_report rep_restarted;
    mla::convert::distill_model<float>(src, restarted, c.windows, o, &rep_restarted, {}, nullptr, go);
    BOOST_TEST(rep_restarted.curve.back().second != rep_whole.curve.back().second);
    std::filesystem::remove(path);
  }
}

BOOST_AUTO_TEST_CASE(state_of_another_run_is_refused) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::distill_model_case<float> c(gen, 10, 32);
    const mla::model::decoder<float> src(c.cfg, c.w);
    mla::convert::distill_options o;
    o.steps = 4;
    o.learning_rate = 5e-3;
    const std::string path = temp_path("b.safetensors");
    mla::convert::distill_checkpointing<float> ck;
    ck.every = 2;
    ck.save = [&](const mla::convert::distill_model_state<float>& st) { mla::convert::save_distill_state(path, st); };
    auto first = c.conv;
    mla::convert::distill_model<float>(src, first, c.windows, o, nullptr, {}, nullptr, ck);
    const auto st = mla::convert::load_distill_state<float>(path);
    BOOST_TEST(st.fingerprint == mla::convert::distill_model_fingerprint(c.conv.weights, c.windows, o));
    mla::convert::distill_checkpointing<float> go;
    go.resume = &st;
    // Other options, other windows, other starting weights: each a different run.
    auto other = c.conv;
    mla::convert::distill_options o2 = o;
    o2.temperature = 2.0;
    BOOST_CHECK_THROW(mla::convert::distill_model<float>(src, other, c.windows, o2, nullptr, {}, nullptr, go),
                      mla::error);
    auto windows = c.windows;
    windows[3][5] = (windows[3][5] + 1) % c.cfg.vocab_size;
    BOOST_CHECK_THROW(mla::convert::distill_model<float>(src, other, windows, o, nullptr, {}, nullptr, go), mla::error);
    other.weights.layers[1].mla.w_uv(0, 0) += 1e-3f;
    BOOST_CHECK_THROW(mla::convert::distill_model<float>(src, other, c.windows, o, nullptr, {}, nullptr, go),
                      mla::error);
    std::filesystem::remove(path);
  }
}

BOOST_AUTO_TEST_CASE(damaged_state_file_is_named) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    mla::convert::distill_model_state<float> st;
    st.fingerprint = "0123456789abcdef";
    st.step = 6;
    st.best_step = 4;
    st.heldout_before = 0.5, st.best_loss = 0.25;
    st.curve = {{2, 0.4}, {4, 0.25}, {6, 0.3}};
    for (int i = 0; i < 3; ++i) {
      const auto n = Eigen::Index(5 + i);
      st.param.push_back(mla::test::randn_vec<float>(gen, n, 1.0).array());
      st.best.push_back(mla::test::randn_vec<float>(gen, n, 1.0).array());
      st.m1.push_back(mla::test::randn_vec<float>(gen, n, 1.0).array());
      st.m2.push_back(mla::test::randn_vec<float>(gen, n, 1.0).array().abs());
      st.scale.push_back(0.1 * (i + 1));
    }
    const std::string path = temp_path("c.safetensors");
    mla::convert::save_distill_state(path, st);
    const auto back = mla::convert::load_distill_state<float>(path);  // exact round trip
    BOOST_TEST(back.fingerprint == st.fingerprint);
    BOOST_TEST((back.step == 6 && back.best_step == 4 && back.heldout_before == 0.5 && back.best_loss == 0.25));
    BOOST_TEST((back.curve == st.curve));
    for (std::size_t i = 0; i < 3; ++i)
      BOOST_TEST((back.param[i].matrix() == st.param[i].matrix() && back.best[i].matrix() == st.best[i].matrix() &&
                  back.m1[i].matrix() == st.m1[i].matrix() && back.m2[i].matrix() == st.m2[i].matrix() &&
                  back.scale[i] == st.scale[i]));
    // The same file for double weights: refused by dtype, naming the file and the tensor.
    try {
      mla::convert::load_distill_state<double>(path);
      BOOST_ERROR("a float state was read as double");
    } catch (const mla::error& e) {
      const std::string m = e.what();
      BOOST_TEST((m.find(path) != std::string::npos && m.find("param.0") != std::string::npos), m);
    }
    // Random damage (byte flips, truncations, both): every read parses or throws mla::error, never reads out of
    // bounds (the ASan build checks) and never returns a state with inconsistent sizes.
    std::vector<std::uint8_t> bytes(std::filesystem::file_size(path));
    {
      std::ifstream in(path, std::ios::binary);
      in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
    }
    int parsed = 0, refused = 0;
    for (int trial = 0; trial < 400; ++trial) {
      std::vector<std::uint8_t> b = bytes;
      const int flips = std::uniform_int_distribution<int>(0, 4)(gen);
      for (int k = 0; k < flips; ++k)
        b[std::uniform_int_distribution<std::size_t>(0, b.size() - 1)(gen)] ^=
            std::uint8_t(1u << std::uniform_int_distribution<int>(0, 7)(gen));
      if (trial % 3 == 0) b.resize(std::uniform_int_distribution<std::size_t>(0, b.size())(gen));
      try {
        const auto f = mla::io::safetensors_file::from_bytes(mla::io::byte_span{b.data(), b.size()}, "damaged");
        const auto d = mla::convert::load_distill_state<float>(f, "damaged");
        for (std::size_t i = 0; i < d.param.size(); ++i)
          BOOST_TEST_REQUIRE((d.best[i].size() == d.param[i].size() && d.m1[i].size() == d.param[i].size() &&
                              d.m2[i].size() == d.param[i].size()));
        BOOST_TEST_REQUIRE(d.scale.size() == d.param.size());
        ++parsed;
      } catch (const mla::error&) {
        ++refused;
      }
    }
    BOOST_TEST_MESSAGE("damaged states: " << parsed << " parsed, " << refused << " refused");
    BOOST_TEST(refused > 0);
    // Truncated: the reader names the file.
    const auto size = std::filesystem::file_size(path);
    std::filesystem::resize_file(path, size - 7);
    try {
      mla::convert::load_distill_state<float>(path);
      BOOST_ERROR("a truncated state was read");
    } catch (const mla::error& e) {
      BOOST_TEST(std::string(e.what()).find(path) != std::string::npos, e.what());
    }
    std::filesystem::remove(path);
  }
}

BOOST_AUTO_TEST_CASE(non_finite_loss_stops_with_the_step) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::test::distill_model_case<float> c(gen, 10, 32);
    const mla::model::decoder<float> src(c.cfg, c.w);
    mla::convert::distill_options o;
    o.steps = 6;
    o.learning_rate = 1e12;  // the first step throws the weights far: the loss of the second is not finite
    try {
      auto run = c.conv;
      mla::convert::distill_model<float>(src, run, c.windows, o);
      BOOST_ERROR("a run whose loss diverged returned normally");
    } catch (const mla::error& e) {
      const std::string m = e.what();
      BOOST_TEST_MESSAGE(m);
      BOOST_TEST(m.find("not finite") != std::string::npos, m);
      BOOST_TEST(m.find("step ") != std::string::npos, m);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
