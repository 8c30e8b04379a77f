#include "mla/io/gguf.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "files.hpp"
#include "io_test_support.hpp"

using namespace mla::io;
using mla_test::bytes;
using mla_test::f32_bytes;
using mla_test::full_gguf_builder;
using mla_test::gguf_builder;
namespace id = mla_test;

namespace {

gguf_file parse_gguf(const bytes& b) { return gguf_file::from_bytes(mla_test::span(b), "mem.gguf"); }

}  // namespace

BOOST_AUTO_TEST_SUITE(io_gguf)

BOOST_AUTO_TEST_CASE(reads_every_metadata_type_and_tensor_v3_and_v2) {
  for (std::uint32_t version : {3u, 2u}) {
    BOOST_TEST_CONTEXT("version " << version) {
      mla::test::temp_dir dir;
      const std::string path = dir.file("m.gguf");
      mla_test::write_file(path, full_gguf_builder(version).build());
      const auto g = gguf_file::open(path);
      BOOST_TEST(g.version() == version);
      BOOST_TEST(g.alignment() == 32u);
      BOOST_TEST(g.data_offset() % 32 == 0u);
      BOOST_TEST(g.metadata().size() == 25u);
      BOOST_TEST(g.metadata()[0].first == "general.architecture");  // file order kept
      BOOST_TEST(g.get<std::string>("general.architecture") == "llama");
      BOOST_TEST(g.get<std::uint8_t>("t.u8") == 250);
      BOOST_TEST(g.get<std::int8_t>("t.i8") == -120);
      BOOST_TEST(g.get<std::uint16_t>("t.u16") == 65000);
      BOOST_TEST(g.get<std::int16_t>("t.i16") == -32000);
      BOOST_TEST(g.get<std::uint32_t>("llama.block_count") == 30u);
      BOOST_TEST(g.get<std::int32_t>("t.i32") == -7);
      BOOST_TEST(g.get<float>("llama.rope.freq_base") == 10000.0f);
      BOOST_TEST(g.get<bool>("t.bool") == true);
      BOOST_TEST(g.get<std::uint64_t>("t.u64") == 0xFFFFFFFFFFFFFFFFull);
      BOOST_TEST(g.get<std::int64_t>("t.i64") == -5);
      BOOST_TEST(g.get<double>("t.f64") == 0.1);
      BOOST_TEST(g.get<std::string>("t.empty_string").empty());
      BOOST_TEST(g.get<std::vector<std::uint8_t>>("t.a.u8") == (std::vector<std::uint8_t>{1, 2, 255}),
                 boost::test_tools::per_element());
      BOOST_TEST(g.get<std::vector<std::int8_t>>("t.a.i8") == (std::vector<std::int8_t>{-1, 0}),
                 boost::test_tools::per_element());
      BOOST_TEST(g.get<std::vector<std::uint16_t>>("t.a.u16") == std::vector<std::uint16_t>{7});
      BOOST_TEST(g.get<std::vector<std::int16_t>>("t.a.i16") == (std::vector<std::int16_t>{-300, 300}),
                 boost::test_tools::per_element());
      BOOST_TEST(g.get<std::vector<std::uint32_t>>("t.a.u32").empty());
      BOOST_TEST(g.find("t.a.u32")->type_name() == "ARRAY[UINT32]");
      BOOST_TEST(g.get<std::vector<std::int32_t>>("tokenizer.ggml.token_type") == (std::vector<std::int32_t>{1, 3, 1}),
                 boost::test_tools::per_element());
      BOOST_TEST(g.get<std::vector<float>>("tokenizer.ggml.scores") == (std::vector<float>{0.0f, -1.5f, 2.25f}),
                 boost::test_tools::per_element());
      BOOST_TEST((g.get<std::vector<bool>>("t.a.bool") == std::vector<bool>{true, false, true}));
      BOOST_TEST(g.get<std::vector<std::string>>("tokenizer.ggml.tokens") ==
                     (std::vector<std::string>{"<s>", "", "h\xc3\xa9llo"}),
                 boost::test_tools::per_element());
      BOOST_TEST(g.get<std::vector<std::uint64_t>>("t.a.u64") == std::vector<std::uint64_t>{1ull << 63});
      BOOST_TEST(g.get<std::vector<std::int64_t>>("t.a.i64")[0] == std::numeric_limits<std::int64_t>::min());
      BOOST_TEST(g.get<std::vector<double>>("t.a.f64")[0] == 1e300);
      BOOST_TEST(g.find("t.a.f64")->array_size() == 2u);
      BOOST_TEST((g.find("t.a.f64")->array_type() == gguf_type::FLOAT64));

      // Typed access errors name the file, the key, the found and the wanted type.
      mla::test::expect_error([&] { (void)g.get<std::uint32_t>("llama.context_length"); },
                              {path, "metadata key 'llama.context_length' is absent"});
      mla::test::expect_error([&] { (void)g.get<std::int32_t>("llama.block_count"); },
                              {"'llama.block_count' has type UINT32, expected INT32"});
      mla::test::expect_error([&] { (void)g.get<std::vector<std::int32_t>>("tokenizer.ggml.tokens"); },
                              {"has type ARRAY[STRING], expected ARRAY[INT32]"});
      BOOST_TEST(g.get_or<std::uint32_t>("llama.context_length", 2048u) == 2048u);
      BOOST_TEST(g.get_or<std::uint32_t>("llama.block_count", 1u) == 30u);
      BOOST_TEST(g.get_integer<std::int64_t>("llama.block_count") == 30);
      BOOST_TEST(g.get_integer<int>("t.i8") == -120);
      BOOST_TEST(g.get_integer<std::uint64_t>("t.u64") == 0xFFFFFFFFFFFFFFFFull);
      mla::test::expect_error([&] { (void)g.get_integer<std::uint32_t>("t.u64"); }, {"'t.u64'", "does not fit"});
      mla::test::expect_error([&] { (void)g.get_integer<std::uint32_t>("t.i64"); }, {"'t.i64' value -5 does not fit"});
      mla::test::expect_error([&] { (void)g.get_integer<int>("llama.rope.freq_base"); },
                              {"has type FLOAT32, expected an integer"});

      // Tensors.
      BOOST_TEST(g.tensors().size() == 6u);
      const auto& emb = g.tensor("token_embd.weight");
      BOOST_TEST(emb.n_dims == 2u);
      BOOST_TEST(emb.shape() == (std::vector<std::int64_t>{3, 4}), boost::test_tools::per_element());
      BOOST_TEST(emb.numel == 12u);
      BOOST_TEST(emb.nbytes == 48u);
      BOOST_TEST(emb.offset == 0u);
      BOOST_TEST(emb.n_rows() == 3u);
      BOOST_TEST(emb.row_bytes() == 16u);
      const auto e = g.dequantize(emb);
      for (int i = 0; i < 12; ++i) BOOST_TEST(e[i] == static_cast<float>(i) - 5.5f);
      const auto norm = g.dequantize("output_norm.weight");
      BOOST_TEST(norm[0] == 1.0f);
      BOOST_TEST(norm[1] == -2.0f);
      BOOST_TEST(norm[2] == std::ldexp(1.0f, -24));
      BOOST_TEST(norm[3] == std::numeric_limits<float>::infinity());
      BOOST_TEST(g.tensor("output_norm.weight").offset == 64u);  // 48 padded to 32
      BOOST_TEST(g.dequantize("blk.0.bf16") == (std::vector<float>{1.0f, 3.0f, -1.0f, 0.0f}),
                 boost::test_tools::per_element());
      BOOST_TEST(g.tensor("blk.0.bf16").shape() == (std::vector<std::int64_t>{2, 1, 2}),
                 boost::test_tools::per_element());
      const auto& q = g.tensor("blk.0.attn_q.weight");
      BOOST_TEST(static_cast<int>(q.type) == static_cast<int>(ggml_type::Q8_0));
      BOOST_TEST(q.nbytes == 4u * 34);
      BOOST_TEST(q.row_bytes() == 68u);
      const auto qv = g.dequantize(q);
      for (int i = 0; i < 128; ++i) BOOST_TEST_REQUIRE(qv[i] == static_cast<float>(i - 64));
      BOOST_TEST(g.tensor("blk.0.four_d").shape() == (std::vector<std::int64_t>{2, 1, 2, 1}),
                 boost::test_tools::per_element());
      BOOST_TEST(g.dequantize("blk.0.q4k").size() == 256u);
      for (const auto& t : g.tensors()) BOOST_TEST(t.offset % 32 == 0u, t.name);
      mla::test::expect_error([&] { (void)g.tensor("output.weight"); }, {path, "no tensor named 'output.weight'"});
    }
  }
}

BOOST_AUTO_TEST_CASE(custom_alignment) {
  gguf_builder b;
  b.alignment = 64;
  b.kv<std::uint32_t>("general.alignment", id::U32, 64);
  b.add_tensor("a", {8}, 0, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8}));
  b.add_tensor("b", {2}, 0, f32_bytes({9, 10}));
  const bytes file = b.build();
  const auto g = parse_gguf(file);
  BOOST_TEST(g.alignment() == 64u);
  BOOST_TEST(g.data_offset() % 64 == 0u);
  BOOST_TEST(g.tensor("b").offset == 64u);
  BOOST_TEST(g.dequantize("b") == (std::vector<float>{9, 10}), boost::test_tools::per_element());
  // A file with no tensors needs no data section.
  gguf_builder empty;
  empty.kv_string("general.architecture", "llama");
  BOOST_TEST(parse_gguf(empty.build()).tensors().empty());
  bytes eb = empty.build();
  eb.resize(24 + (8 + 20) + 4 + (8 + 5));  // no padding after the metadata at all
  BOOST_TEST(parse_gguf(eb).get<std::string>("general.architecture") == "llama");
}

// llama.cpp's own Python writer and dequantisers (gguf-py) as an independent oracle: see
// data/make_gguf_golden.py.
BOOST_AUTO_TEST_CASE(matches_gguf_py_golden_file) {
  const mla_test::bytes golden =
      mla_test::read_hex_file(std::string(MLA_IO_TEST_DATA_DIR) + "/gguf_py_golden.gguf.hex");
  BOOST_TEST_REQUIRE(golden.size() == 24000u);
  const auto g = gguf_file::from_bytes(mla_test::span(golden), "gguf_py_golden.gguf");
  BOOST_TEST(g.version() == 3u);
  BOOST_TEST(g.get<std::string>("general.architecture") == "llama");
  BOOST_TEST(g.get<std::uint8_t>("test.u8") == 200);
  BOOST_TEST(g.get<std::int8_t>("test.i8") == -100);
  BOOST_TEST(g.get<std::uint16_t>("test.u16") == 60000);
  BOOST_TEST(g.get<std::int16_t>("test.i16") == -30000);
  BOOST_TEST(g.get<std::uint32_t>("test.u32") == 4000000000u);
  BOOST_TEST(g.get<std::int32_t>("test.i32") == -2000000000);
  BOOST_TEST(g.get<float>("test.f32") == 0.15625f);
  BOOST_TEST(g.get<std::uint64_t>("test.u64") == 18000000000000000000ull);
  BOOST_TEST(g.get<std::int64_t>("test.i64") == -9000000000000000000ll);
  BOOST_TEST(g.get<double>("test.f64") == -2.5e-300);
  BOOST_TEST(g.get<bool>("test.bool"));
  BOOST_TEST(g.get<std::string>("test.string") == "h\xc3\xa9llo, GGUF");
  BOOST_TEST(g.get<std::vector<std::string>>("test.array_strings") ==
                 (std::vector<std::string>{"a", "", "\xc3\xbcnicode", "last"}),
             boost::test_tools::per_element());
  BOOST_TEST(g.get<std::vector<std::int32_t>>("test.array_i32") == (std::vector<std::int32_t>{1, -2, 3}),
             boost::test_tools::per_element());
  BOOST_TEST(g.get<std::uint32_t>("llama.block_count") == 2u);
  BOOST_TEST(g.get<std::uint32_t>("llama.context_length") == 2048u);

  const char* types[] = {"Q4_0", "Q4_1", "Q5_0", "Q5_1",  "Q8_0", "Q2_K", "Q3_K",
                         "Q4_K", "Q5_K", "Q6_K", "MXFP4", "F16",  "BF16"};
  for (const char* name : types) {
    BOOST_TEST_CONTEXT("type " << name) {
      const auto& q = g.tensor(std::string("q.") + name);
      BOOST_TEST(ggml_type_name(q.type) == name);
      BOOST_TEST(q.shape() == g.tensor(std::string("expected.") + name).shape(), boost::test_tools::per_element());
      const auto got = g.dequantize(q);
      const auto want = g.dequantize(std::string("expected.") + name);
      BOOST_TEST_REQUIRE(got.size() == want.size());
      // Bit-identical: both follow ggml's order of float operations.
      std::size_t inf = 0;
      for (std::size_t i = 0; i < got.size(); ++i) {
        BOOST_TEST_REQUIRE(float_bits(got[i]) == float_bits(want[i]),
                           "element " << i << ": " << got[i] << " vs " << want[i]);
        if (std::isinf(got[i])) ++inf;
      }
      if (std::string(name) == "MXFP4") BOOST_TEST(inf > 0u);  // the 2^127 block overflows, in both
    }
  }
}

BOOST_AUTO_TEST_CASE(malformed_files) {
  auto err = [](const bytes& b, std::initializer_list<std::string> parts) {
    mla::test::expect_error([&] { (void)parse_gguf(b); }, parts);
  };
  auto header = [](std::uint32_t magic, std::uint32_t version, std::uint64_t nt, std::uint64_t nkv) {
    bytes b;
    mla_test::put(b, magic);
    mla_test::put(b, version);
    mla_test::put(b, nt);
    mla_test::put(b, nkv);
    return b;
  };
  err(bytes{}, {"mem.gguf", "header", "truncated file: magic needs 4 bytes at offset 0, only 0 left"});
  err(header(0x4C4C5547, 3, 0, 0), {"bad magic 'GULL', expected 'GGUF'"});
  err(header(0x00000000, 3, 0, 0), {"bad magic '\\x00\\x00\\x00\\x00'"});
  err(header(gguf_magic, 1, 0, 0), {"version 1 is not supported"});
  err(header(gguf_magic, 0x03000000, 0, 0), {"big-endian"});
  err(header(gguf_magic, 4, 0, 0), {"unsupported GGUF version 4"});
  err(header(gguf_magic, 3, 1ull << 40, 0), {"tensor count 1099511627776 is impossible"});
  err(header(gguf_magic, 3, 0, 1ull << 60), {"metadata count 1152921504606846976 is impossible"});
  {
    bytes b = header(gguf_magic, 3, 0, 1);
    mla_test::put<std::uint64_t>(b, 1ull << 62);  // key length
    b.resize(b.size() + 20, 'k');
    err(b, {"metadata entry 0", "key has length 4611686018427387904, past the end of the file"});
  }
  {
    gguf_builder g;
    bytes v;
    mla_test::put<std::uint64_t>(v, 1000);  // string length past EOF
    v.insert(v.end(), {'a', 'b'});
    g.kv_raw("general.name", id::STRING, v);
    err(g.build(), {"metadata key 'general.name'", "STRING value has length 1000, past the end of the file"});
  }
  {
    gguf_builder g;
    g.kv<std::uint32_t>("x", 13, 0);
    err(g.build(), {"metadata key 'x'", "value type 13 is not a GGUF value type"});
  }
  {
    gguf_builder g;
    g.kv<std::uint8_t>("flag", id::BOOL, 2);
    err(g.build(), {"metadata key 'flag'", "BOOL byte is 2, expected 0 or 1"});
  }
  {
    gguf_builder g;
    g.kv_string("a", "x");
    g.kv_string("a", "y");
    err(g.build(), {"metadata key 'a'", "duplicate key"});
  }
  {
    gguf_builder g;
    bytes v;
    mla_test::put<std::uint32_t>(v, id::ARRAY);
    mla_test::put<std::uint64_t>(v, 1);
    mla_test::put<std::uint32_t>(v, id::U8);
    mla_test::put<std::uint64_t>(v, 0);
    g.kv_raw("nested", id::ARRAY, v);
    err(g.build(), {"metadata key 'nested'", "nested arrays are not supported"});
  }
  {
    gguf_builder g;
    bytes v;
    mla_test::put<std::uint32_t>(v, 77);
    mla_test::put<std::uint64_t>(v, 0);
    g.kv_raw("arr", id::ARRAY, v);
    err(g.build(), {"metadata key 'arr'", "array element type 77"});
  }
  {
    gguf_builder g;
    bytes v;
    mla_test::put<std::uint32_t>(v, id::U64);
    mla_test::put<std::uint64_t>(v, 1ull << 61);  // 2^61 * 8 bytes overflows 64 bits
    g.kv_raw("big", id::ARRAY, v);
    err(g.build(), {"metadata key 'big'", "array of 2305843009213693952 UINT64", "bytes left"});
  }
  {
    gguf_builder g;
    bytes v;
    mla_test::put<std::uint32_t>(v, id::STRING);
    mla_test::put<std::uint64_t>(v, 3);
    mla_test::put_string(v, "ok");
    mla_test::put<std::uint64_t>(v, 1ull << 50);
    v.resize(v.size() + 32, 0);  // enough bytes for the count check to pass
    g.kv_raw("tokens", id::ARRAY, v);
    err(g.build(), {"metadata key 'tokens'", "array string has length 1125899906842624"});
  }
  {
    gguf_builder g;
    g.kv_string("general.alignment", "32");
    err(g.build(), {"'general.alignment'", "has type STRING, expected UINT32"});
  }
  {
    gguf_builder g;
    g.kv<std::uint32_t>("general.alignment", id::U32, 24);
    err(g.build(), {"'general.alignment'", "alignment 24 is not a power of two"});
  }
  {
    gguf_builder g;
    g.kv<std::uint32_t>("general.alignment", id::U32, 0);
    err(g.build(), {"alignment 0 is not a power of two"});
  }
  // Tensor infos.
  {
    gguf_builder g;
    g.add_tensor("t", {1, 1, 1, 1, 1}, 0, f32_bytes({1}));
    err(g.build(), {"tensor 't'", "n_dims is 5, at most 4"});
  }
  {
    gguf_builder g;
    g.add_tensor("t", {1ull << 32, 1ull << 32}, 0, f32_bytes({1}));
    err(g.build(), {"tensor 't'", "element count overflows", "[4294967296, 4294967296]"});
  }
  {
    gguf_builder g;
    g.add_tensor("t", {1ull << 63}, 0, f32_bytes({1}));
    err(g.build(), {"tensor 't'", "ne[0] = 9223372036854775808 is negative as int64"});
  }
  {
    gguf_builder g;
    g.add_tensor("t", {1ull << 62}, 0, f32_bytes({1}));  // numel fits, 4 bytes each does not
    err(g.build(), {"tensor 't'", "byte size overflows"});
  }
  {
    gguf_builder g;
    g.add_tensor("t", {48}, 8, bytes(51));
    err(g.build(), {"tensor 't'", "ne[0] = 48 is not a multiple of the Q8_0 block size 32"});
  }
  {
    gguf_builder g;
    g.add_tensor("t", {32}, 4, bytes(20));
    err(g.build(), {"tensor 't'", "unknown ggml type id 4"});
  }
  {
    gguf_builder g;
    g.add_tensor("t", {4}, 0, f32_bytes({1, 2, 3, 4}));
    g.add_tensor("t", {4}, 0, f32_bytes({1, 2, 3, 4}));
    err(g.build(), {"tensor 't'", "duplicate tensor name"});
  }
  {
    gguf_builder g;
    g.add_tensor(std::string(65, 'n'), {4}, 0, f32_bytes({1, 2, 3, 4}));
    err(g.build(), {"tensor info 0", "tensor name is 65 bytes, more than 64"});
  }
  {
    gguf_builder g;
    g.add_tensor("t", {4}, 0, f32_bytes({1, 2, 3, 4}));
    g.tensors[0].override_offset = true;
    g.tensors[0].offset = 8;
    err(g.build(), {"tensor 't'", "data offset 8 is not a multiple of the alignment 32"});
  }
  {
    gguf_builder g;
    g.add_tensor("a", {16}, 0, f32_bytes(std::vector<float>(16)));
    g.add_tensor("b", {8}, 0, f32_bytes(std::vector<float>(8)));
    g.tensors[1].override_offset = true;
    g.tensors[1].offset = 32;  // inside a's 64 bytes
    err(g.build(), {"tensor 'b' at data offset 32 overlaps tensor 'a' [0, 64)"});
  }
  {
    gguf_builder g;
    g.add_tensor("w", {64}, 0, f32_bytes(std::vector<float>(64)));
    bytes b = g.build();
    b.resize(b.size() - 10);  // data past EOF
    err(b, {"tensor 'w': data [0, 0 + 256) extends past the end of the data section (246 bytes"});
  }
  {
    gguf_builder g;
    g.add_tensor("w", {4}, 0, f32_bytes({1, 2, 3, 4}));
    bytes b = g.build();
    // The offset field: 24-byte header, then name (8 + 1), n_dims (4), ne (8), type (4).
    const std::uint64_t huge = 1ull << 63;
    std::memcpy(b.data() + 24 + 9 + 4 + 8 + 4, &huge, 8);
    err(b, {"tensor 'w'", "extends past the end of the data section"});
  }
}

BOOST_AUTO_TEST_CASE(errors_from_a_file_name_its_path_and_unsupported_types) {
  mla::test::temp_dir dir;
  gguf_builder g;
  g.add_tensor("blk.0.attn_k.weight", {256}, 16, bytes(66, 0));  // IQ2_XXS: parses, cannot dequantise
  const std::string path = dir.file("iq.gguf");
  mla_test::write_file(path, g.build());
  const auto f = gguf_file::open(path);
  mla::test::expect_error([&] { (void)f.dequantize("blk.0.attn_k.weight"); },
                          {path, "tensor 'blk.0.attn_k.weight' has ggml type IQ2_XXS, which cannot be dequantised"});
  mla::test::expect_error([&] { (void)gguf_file::open(dir.file("nope.gguf")); },
                          {dir.file("nope.gguf"), "No such file"});
}

// Every prefix and many random corruptions of a valid file either parse or throw mla::error.
BOOST_AUTO_TEST_CASE(truncations_and_corruptions_never_crash) {
  const bytes valid = full_gguf_builder(3).build();
  const auto whole = parse_gguf(valid);
  BOOST_TEST(whole.tensors().size() == 6u);
  // Cutting into the trailing padding after the last tensor still leaves a complete file.
  std::uint64_t needed = 0;
  for (const auto& t : whole.tensors()) needed = std::max(needed, whole.data_offset() + t.offset + t.nbytes);
  BOOST_TEST(needed < valid.size());
  for (std::size_t n = 0; n < valid.size(); ++n) {
    const bytes prefix(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(n));
    if (n < needed) {
      BOOST_CHECK_THROW(parse_gguf(prefix), mla::error);
    } else {
      BOOST_CHECK_NO_THROW(parse_gguf(prefix));
    }
  }
  mla_test::rng r(77);
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    bytes b = valid;
    const int flips = 1 + static_cast<int>(r.below(4));
    for (int k = 0; k < flips; ++k) {
      // Bias towards the header and infos, where the structure lives.
      const auto limit = static_cast<std::uint32_t>(r.below(2) ? 700 : b.size());
      b[r.below(std::min<std::uint32_t>(limit, static_cast<std::uint32_t>(b.size())))] = r.byte();
    }
    try {
      const auto f = parse_gguf(b);
      for (const auto& t : f.tensors()) {
        if (can_dequantize(t.type) && t.numel < (1u << 20)) (void)f.dequantize(t);
      }
      ++parsed;
    } catch (const mla::error&) {
    }
  }
  BOOST_TEST_MESSAGE("corrupted GGUF files that still parsed: " << parsed);
}

BOOST_AUTO_TEST_SUITE_END()
