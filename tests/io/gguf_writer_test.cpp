// GGUF writer: files written by gguf_writer read back through the project's reader (io/gguf.hpp) with every
// metadata type, the tensor shapes in ggml order and the alignment; F32 exactly, F16 within half an ulp of
// binary16, Q8_0 equal to an independent float64 quantisation (d = amax / 127, codes rounded to nearest) and
// within that rule's bound. Fresh random data each run (MLA_TEST_SEED replays one).
#include "mla/io/gguf_writer.hpp"

#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "files.hpp"
#include "seed.hpp"

using namespace mla::io;

namespace {

std::vector<float> random_floats(std::mt19937_64& gen, std::size_t n, double scale) {
  std::normal_distribution<double> nd(0.0, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(nd(gen));
  return v;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(io_gguf_writer)

BOOST_AUTO_TEST_CASE(every_metadata_type_reads_back) {
  mla::test::temp_dir dir("mla-gguf-writer");
  const std::string path = dir.file("kv.gguf");
  gguf_writer w;
  w.set("general.architecture", "deepseek2");
  w.set("t.u8", std::uint8_t{250});
  w.set("t.i8", std::int8_t{-120});
  w.set("t.u16", std::uint16_t{65000});
  w.set("t.i16", std::int16_t{-32000});
  w.set("t.u32", std::uint32_t{4000000000u});
  w.set("t.i32", std::int32_t{-7});
  w.set("t.f32", 0.25f);
  w.set("t.bool", true);
  w.set("t.u64", std::uint64_t{0xFFFFFFFFFFFFFFFFull});
  w.set("t.i64", std::int64_t{std::numeric_limits<std::int64_t>::min()});
  w.set("t.f64", 0.1);
  w.set("t.empty", std::string());
  w.set("t.a.u8", std::vector<std::uint8_t>{1, 2, 255});
  w.set("t.a.i8", std::vector<std::int8_t>{-1, 0});
  w.set("t.a.u16", std::vector<std::uint16_t>{7});
  w.set("t.a.i16", std::vector<std::int16_t>{-300, 300});
  w.set("t.a.u32", std::vector<std::uint32_t>{});
  w.set("t.a.i32", std::vector<std::int32_t>{1, 3, -1});
  w.set("t.a.f32", std::vector<float>{0.0f, -1.5f, 2.25f});
  w.set("t.a.bool", std::vector<bool>{true, false, true});
  w.set("t.a.str", std::vector<std::string>{"<s>", "", "h\xc3\xa9llo"});
  w.set("t.a.u64", std::vector<std::uint64_t>{1ull << 63});
  w.set("t.a.i64", std::vector<std::int64_t>{-5, 5});
  w.set("t.a.f64", std::vector<double>{1e300, -0.0});
  w.set("t.i32", std::int32_t{-8});  // replaced in place: order and count unchanged
  w.write(path);
  BOOST_TEST(dir.entries() == std::vector<std::string>{"kv.gguf"}, boost::test_tools::per_element());

  const gguf_file g = gguf_file::open(path);
  BOOST_TEST(g.version() == 3u);
  BOOST_TEST(g.metadata().size() == 25u);
  BOOST_TEST(g.metadata()[6].first == "t.i32");
  BOOST_TEST(g.get<std::string>("general.architecture") == "deepseek2");
  BOOST_TEST(g.get<std::uint8_t>("t.u8") == 250);
  BOOST_TEST(g.get<std::int8_t>("t.i8") == -120);
  BOOST_TEST(g.get<std::uint16_t>("t.u16") == 65000);
  BOOST_TEST(g.get<std::int16_t>("t.i16") == -32000);
  BOOST_TEST(g.get<std::uint32_t>("t.u32") == 4000000000u);
  BOOST_TEST(g.get<std::int32_t>("t.i32") == -8);
  BOOST_TEST(g.get<float>("t.f32") == 0.25f);
  BOOST_TEST(g.get<bool>("t.bool"));
  BOOST_TEST(g.get<std::uint64_t>("t.u64") == 0xFFFFFFFFFFFFFFFFull);
  BOOST_TEST(g.get<std::int64_t>("t.i64") == std::numeric_limits<std::int64_t>::min());
  BOOST_TEST(g.get<double>("t.f64") == 0.1);
  BOOST_TEST(g.get<std::string>("t.empty").empty());
  BOOST_TEST(g.get<std::vector<std::uint8_t>>("t.a.u8") == (std::vector<std::uint8_t>{1, 2, 255}),
             boost::test_tools::per_element());
  BOOST_TEST(g.get<std::vector<std::int8_t>>("t.a.i8") == (std::vector<std::int8_t>{-1, 0}),
             boost::test_tools::per_element());
  BOOST_TEST(g.get<std::vector<std::uint16_t>>("t.a.u16") == (std::vector<std::uint16_t>{7}),
             boost::test_tools::per_element());
  BOOST_TEST(g.get<std::vector<std::int16_t>>("t.a.i16") == (std::vector<std::int16_t>{-300, 300}),
             boost::test_tools::per_element());
  BOOST_TEST(g.get<std::vector<std::uint32_t>>("t.a.u32").empty());
  BOOST_TEST(g.get<std::vector<std::int32_t>>("t.a.i32") == (std::vector<std::int32_t>{1, 3, -1}),
             boost::test_tools::per_element());
  BOOST_TEST(g.get<std::vector<float>>("t.a.f32") == (std::vector<float>{0.0f, -1.5f, 2.25f}),
             boost::test_tools::per_element());
  BOOST_TEST((g.get<std::vector<bool>>("t.a.bool") == std::vector<bool>{true, false, true}));
  BOOST_TEST(g.get<std::vector<std::string>>("t.a.str") == (std::vector<std::string>{"<s>", "", "h\xc3\xa9llo"}),
             boost::test_tools::per_element());
  BOOST_TEST(g.get<std::vector<std::uint64_t>>("t.a.u64") == (std::vector<std::uint64_t>{1ull << 63}),
             boost::test_tools::per_element());
  BOOST_TEST(g.get<std::vector<std::int64_t>>("t.a.i64") == (std::vector<std::int64_t>{-5, 5}),
             boost::test_tools::per_element());
  const auto f64 = g.get<std::vector<double>>("t.a.f64");
  BOOST_TEST(f64.size() == 2u);
  BOOST_TEST(f64[0] == 1e300);
  BOOST_TEST((f64[1] == 0.0 && std::signbit(f64[1])));
  BOOST_TEST(g.tensors().empty());
}

BOOST_AUTO_TEST_CASE(tensors_read_back_f32_f16_q8_0) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("MLA_TEST_SEED=" << seed) {
    std::mt19937_64 gen(seed);
    for (std::uint32_t align : {32u, 64u}) {
      BOOST_TEST_CONTEXT("alignment " << align) {
        mla::test::temp_dir dir("mla-gguf-writer");
        const std::string path = dir.file("t.gguf");
        gguf_writer w;
        if (align != 32) w.set("general.alignment", std::uint32_t{align});
        // Odd sizes so that every tensor needs padding; 3-D like llama.cpp's attn_k_b.
        const auto a = random_floats(gen, 7 * 3, 1.0);
        const auto b = random_floats(gen, 5 * 4 * 3, 3.0);
        const auto c = random_floats(gen, 64 * 5, 0.05);
        const auto one = random_floats(gen, 13, 1.0);
        w.add_tensor("a.weight", {7, 3}, ggml_type::F32, a.data());
        w.add_tensor("blk.0.attn_k_b.weight", {5, 4, 3}, ggml_type::F16, b.data());
        w.add_tensor("q8", {64, 5}, ggml_type::Q8_0, c.data());
        w.add_tensor("norm", {13}, ggml_type::F32, one.data());
        w.write(path);
        const gguf_file g = gguf_file::open(path);
        BOOST_TEST(g.alignment() == align);
        BOOST_TEST(g.data_offset() % align == 0u);
        BOOST_REQUIRE(g.tensors().size() == 4u);
        const auto& ta = g.tensor("a.weight");
        BOOST_TEST(ta.n_dims == 2u);
        BOOST_TEST((ta.shape() == std::vector<std::int64_t>{3, 7}));
        BOOST_TEST(g.dequantize(ta) == a, boost::test_tools::per_element());  // exact
        BOOST_TEST(g.dequantize("norm") == one, boost::test_tools::per_element());
        const auto& tb = g.tensor("blk.0.attn_k_b.weight");
        BOOST_TEST((tb.shape() == std::vector<std::int64_t>{3, 4, 5}));
        BOOST_TEST((tb.type == ggml_type::F16));
        const auto gb = g.dequantize(tb);
        for (std::size_t i = 0; i < b.size(); ++i) {
          // binary16 has 11 significant bits: round to nearest is within 2^-11 relative (normal range).
          BOOST_TEST(std::fabs(double(gb[i]) - b[i]) <= std::ldexp(std::fabs(double(b[i])), -11) + 1e-7);
        }
        const auto& tc = g.tensor("q8");
        BOOST_TEST((tc.type == ggml_type::Q8_0));
        BOOST_TEST(tc.nbytes == 5u * 2 * 34);
        const auto gc = g.dequantize(tc);
        // Independent float64 quantisation of each 32-element block.
        for (std::size_t blk = 0; blk < c.size() / 32; ++blk) {
          double amax = 0;
          for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double(c[blk * 32 + j])));
          const double d = amax / 127.0;
          const double d16 = double(f16_to_float(float_to_f16(static_cast<float>(d))));  // stored as half
          for (int j = 0; j < 32; ++j) {
            const double x = c[blk * 32 + j], t = x / d;
            const double want = std::round(t) * d16;
            const double got = gc[blk * 32 + j];
            // A code may differ by one only where x / d lies within float rounding of a half-integer.
            const bool near_tie = std::fabs(std::fabs(t - std::trunc(t)) - 0.5) < 1e-4;
            BOOST_TEST((got == want || (near_tie && std::fabs(got - want) <= d16 * 1.0001)));
            BOOST_TEST(std::fabs(got - x) <= d / 2 + 127 * std::fabs(d - d16) + 1e-12);
          }
        }
        std::uintmax_t expect_size = g.data_offset();
        for (const auto& t : g.tensors()) expect_size += (t.nbytes + align - 1) / align * align;
        BOOST_TEST(std::filesystem::file_size(path) == expect_size);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_requests_name_what_is_wrong) {
  mla::test::temp_dir dir("mla-gguf-writer");
  gguf_writer w;
  const std::vector<float> x(40, 1.0f);
  mla::test::expect_error([&] { w.add_tensor("q", {40}, ggml_type::Q8_0, x.data()); },
                          {"'q'", "Q8_0", "multiple of 32", "40"});
  mla::test::expect_error([&] { w.add_tensor("k", {8}, ggml_type::Q4_K, x.data()); }, {"'k'", "Q4_K", "F32, F16"});
  mla::test::expect_error([&] { w.add_tensor(std::string(64, 'n'), {8}, ggml_type::F32, x.data()); },
                          {"tensor name", "63 bytes"});
  mla::test::expect_error(
      [&] {
        w.add_tensor("five", {1, 1, 1, 1, 8}, ggml_type::F32, x.data());
      },
      {"'five'", "5 dims"});
  w.add_tensor("t", {8}, ggml_type::F32, x.data());
  mla::test::expect_error([&] { w.add_tensor("t", {8}, ggml_type::F32, x.data()); }, {"duplicate", "'t'"});
  w.set("general.alignment", std::uint32_t{48});
  mla::test::expect_error([&] { w.write(dir.file("x.gguf")); }, {"general.alignment", "power of two"});
  BOOST_TEST(dir.entries().empty());  // nothing written, no temporary left
}

BOOST_AUTO_TEST_SUITE_END()
