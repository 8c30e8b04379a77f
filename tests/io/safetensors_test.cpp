#include "mla/io/safetensors.hpp"

#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "files.hpp"
#include "io_test_support.hpp"

using namespace mla::io;
using mla_test::bytes;

namespace {

// [u64 N][header][data]
bytes st_bytes(const std::string& header, const bytes& data = {}, std::uint64_t n_override = UINT64_MAX) {
  const std::uint64_t n = n_override != UINT64_MAX ? n_override : header.size();
  bytes b(8 + header.size() + data.size());
  std::memcpy(b.data(), &n, 8);
  if (!header.empty()) std::memcpy(b.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(b.data() + 8 + header.size(), data.data(), data.size());
  return b;
}

safetensors_file parse_safetensors(const bytes& b) { return safetensors_file::from_bytes(mla_test::span(b), "mem.st"); }

struct sample {
  std::string name;
  dtype type;
  std::vector<std::int64_t> shape;
  bytes data;
};

std::vector<sample> random_samples(mla_test::rng& r) {
  const std::vector<std::pair<dtype, std::vector<std::int64_t>>> specs = {
      {dtype::F32, {3, 5}}, {dtype::F16, {7}}, {dtype::BF16, {2, 2, 3}}, {dtype::F64, {4}},     {dtype::I64, {2}},
      {dtype::I32, {3}},    {dtype::I16, {5}}, {dtype::I8, {9}},         {dtype::U8, {5}},      {dtype::BOOL, {4}},
      {dtype::U16, {1}},    {dtype::U32, {2}}, {dtype::U64, {1}},        {dtype::F8_E4M3, {3}}, {dtype::F32, {}},
      {dtype::F32, {0, 3}}, {dtype::F4, {4}},  {dtype::F8_E8M0, {2, 1}},
  };
  std::vector<sample> out;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    sample s;
    s.name = "layers." + std::to_string(i) + "." + dtype_name(specs[i].first);
    s.type = specs[i].first;
    s.shape = specs[i].second;
    std::uint64_t numel = 1;
    for (auto d : s.shape) numel *= static_cast<std::uint64_t>(d);
    std::uint64_t nbytes = 0;
    BOOST_REQUIRE(dtype_nbytes(s.type, numel, nbytes));
    s.data = r.random_bytes(nbytes);
    if (s.type == dtype::BOOL)
      for (auto& x : s.data) x &= 1;
    out.push_back(std::move(s));
  }
  return out;
}

void check_same(const tensor_view& t, const sample& s) {
  BOOST_TEST_CONTEXT("tensor " << s.name) {
    BOOST_TEST(t.name == s.name);
    BOOST_TEST(static_cast<int>(t.type) == static_cast<int>(s.type));
    BOOST_TEST(t.shape == s.shape, boost::test_tools::per_element());
    BOOST_TEST_REQUIRE(t.bytes.size == s.data.size());
    BOOST_TEST((s.data.empty() || std::memcmp(t.bytes.data, s.data.data(), s.data.size()) == 0));
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(io_safetensors)

BOOST_AUTO_TEST_CASE(writer_reader_round_trip) {
  mla::test::temp_dir dir;
  mla_test::rng r(1234);
  const auto samples = random_samples(r);
  safetensors_writer w;
  w.set_metadata("format", "pt");
  w.set_metadata("note", "round \"trip\" \xc3\xa9");
  for (const auto& s : samples) {
    if (s.name.find("U8") != std::string::npos) {
      w.add_borrowed(s.name, s.type, s.shape, byte_span{s.data.data(), s.data.size()});
    } else {
      w.add(s.name, s.type, s.shape, s.data);
    }
  }
  const std::string path = dir.file("model.safetensors");
  w.write(path);
  BOOST_TEST(dir.entries().size() == 1u);  // no temporary left

  const auto f = safetensors_file::open(path);
  BOOST_TEST(f.size() == samples.size());
  BOOST_TEST(f.metadata().at("format") == "pt");
  BOOST_TEST(f.metadata().at("note") == "round \"trip\" \xc3\xa9");
  for (const auto& s : samples) {
    const tensor_view& t = f.tensor(s.name);
    check_same(t, s);
    BOOST_TEST(t.file == path);
    // Data starts 8-aligned and tensors are ordered by descending element size: each is aligned.
    const std::uint64_t abs = f.data_offset() + t.data_begin;
    if (dtype_size(t.type) > 0) BOOST_TEST(abs % dtype_size(t.type) == 0u, s.name);
  }
  BOOST_TEST(f.data_offset() % 8 == 0u);
  // The header is padded with spaces (allowed by the format).
  const auto raw = mla_test::read_file(path);
  std::string header(raw.begin() + 8, raw.begin() + 8 + static_cast<std::ptrdiff_t>(f.header_size()));
  BOOST_TEST(header.front() == '{');
  BOOST_TEST(header.find_last_not_of(' ') == header.rfind('}'));
}

BOOST_AUTO_TEST_CASE(float_helpers) {
  mla::test::temp_dir dir;
  safetensors_writer w;
  const std::vector<float> v = {1.0f, -2.5f, 1.0f / 3.0f, 65504.0f};
  w.add_float("a.f32", dtype::F32, {2, 2}, v.data(), v.size());
  w.add_float("a.f16", dtype::F16, {4}, v.data(), v.size());
  w.add_float("a.bf16", dtype::BF16, {4, 1}, v.data(), v.size());
  w.add("ints", dtype::I32, {1}, bytes(4, 0));
  w.write(dir.file("f.safetensors"));
  const auto f = safetensors_file::open(dir.file("f.safetensors"));
  BOOST_TEST(to_float(f.tensor("a.f32")) == v, boost::test_tools::per_element());
  const auto h = to_float(f.tensor("a.f16"));
  const auto b = to_float(f.tensor("a.bf16"));
  for (std::size_t i = 0; i < v.size(); ++i) {
    BOOST_TEST(h[i] == f16_to_float(float_to_f16(v[i])));
    BOOST_TEST(b[i] == bf16_to_float(float_to_bf16(v[i])));
  }
  BOOST_TEST(h[2] == 0.333251953125f);  // 1/3 rounded to half
  BOOST_TEST(b[2] == 0.333984375f);     // 1/3 rounded to bfloat16
  mla::test::expect_error([&] { (void)to_float(f.tensor("ints")); }, {"'ints'", "I32", "not a floating-point"});
  mla::test::expect_error([&] { (void)f.tensor("nope"); }, {"f.safetensors", "no tensor named 'nope'"});
}

// Borrowed floats are converted when written, a block of 2^20 values at a time: the file holds what add_float
// (the whole tensor converted at once) writes, across block boundaries, in every float type. add_borrowed's
// callback runs once per write of its tensor.
BOOST_AUTO_TEST_CASE(borrowed_floats_are_written_as_add_float_writes_them) {
  mla::test::temp_dir dir;
  mla_test::rng r(5);
  const std::size_t n = (std::size_t(1) << 20) * 2 + 77;
  std::vector<float> v(n);
  for (float& x : v) x = float(std::ldexp(double(r.next() % 2000001) - 1000000.0, -int(r.next() % 30)));
  const bytes raw = r.random_bytes(13);
  int written = 0;
  safetensors_writer lazy, eager;
  for (const dtype t : {dtype::F32, dtype::F16, dtype::BF16}) {
    const std::string name = std::string("w.") + dtype_name(t);
    lazy.add_float_borrowed(name, t, {std::int64_t(n)}, v.data(), v.size());
    eager.add_float(name, t, {std::int64_t(n)}, v.data(), v.size());
  }
  lazy.add_borrowed("raw", dtype::U8, {13}, mla_test::span(raw), [&] { ++written; });
  eager.add("raw", dtype::U8, {13}, raw);
  lazy.write(dir.file("lazy.safetensors"));
  BOOST_TEST(written == 1);
  eager.write(dir.file("eager.safetensors"));
  BOOST_TEST(mla_test::read_file(dir.file("lazy.safetensors")) == mla_test::read_file(dir.file("eager.safetensors")));
  const auto f = safetensors_file::open(dir.file("lazy.safetensors"));
  BOOST_TEST(to_float(f.tensor("w.F32")) == v, boost::test_tools::per_element());
  BOOST_TEST(to_float(f.tensor("w.BF16"))[n - 1] == bf16_to_float(float_to_bf16(v[n - 1])));
  mla::test::expect_error([&] { lazy.add_float_borrowed("i", dtype::I32, {1}, v.data(), 1); },
                          {"'i'", "F32, F16 or BF16", "I32"});
}

BOOST_AUTO_TEST_CASE(reads_a_file_written_by_the_reference_implementation) {
  const mla_test::bytes golden =
      mla_test::read_hex_file(std::string(MLA_IO_TEST_DATA_DIR) + "/safetensors_reference.safetensors.hex");
  BOOST_TEST_REQUIRE(golden.size() == 716u);
  const auto f = safetensors_file::from_bytes(mla_test::span(golden), "safetensors_reference.safetensors");
  BOOST_TEST(f.metadata().at("format") == "pt");
  BOOST_TEST(f.metadata().at("note") == "written by huggingface/safetensors");
  BOOST_TEST(f.size() == 9u);
  const auto f32 = to_float(f.tensor("f32"));
  BOOST_TEST(f.tensor("f32").shape == (std::vector<std::int64_t>{2, 3}), boost::test_tools::per_element());
  for (int i = 0; i < 6; ++i) BOOST_TEST(f32[i] == static_cast<float>(i) * 0.5f - 1.0f);
  BOOST_TEST(to_float(f.tensor("f16")) == (std::vector<float>{1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)}),
             boost::test_tools::per_element());
  const auto f64 = to_float(f.tensor("f64"));
  BOOST_TEST(f64[0] == std::numeric_limits<float>::infinity());  // 1e300 does not fit a float
  BOOST_TEST(f64[1] == -0.0f);
  std::int64_t i64[2];
  std::memcpy(i64, f.tensor("i64").bytes.data, 16);
  BOOST_TEST(i64[0] == -(std::int64_t{1} << 62));
  BOOST_TEST(i64[1] == 7);
  std::int32_t i32[6];
  std::memcpy(i32, f.tensor("i32").bytes.data, 24);
  for (int i = 0; i < 6; ++i) BOOST_TEST(i32[i] == i - 3);
  BOOST_TEST(f.tensor("u8").bytes[4] == 4);
  BOOST_TEST(f.tensor("bool").bytes.size == 3u);
  BOOST_TEST(f.tensor("bool").bytes[1] == 0);
  BOOST_TEST(f.tensor("scalar").shape.empty());
  BOOST_TEST(f.tensor("scalar").numel == 1u);
  BOOST_TEST(to_float(f.tensor("scalar"))[0] == 3.25f);
  BOOST_TEST(f.tensor("empty").numel == 0u);
  BOOST_TEST(f.tensor("empty").shape == (std::vector<std::int64_t>{0, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(sharded_checkpoint_round_trip) {
  mla::test::temp_dir dir;
  mla_test::rng r(99);
  safetensors_writer w;
  w.set_metadata("format", "pt");
  std::vector<sample> samples;
  for (int i = 0; i < 4; ++i) {
    sample s{"model.layers." + std::to_string(i) + ".weight", dtype::BF16, {10, 5}, r.random_bytes(100)};
    w.add(s.name, s.type, s.shape, s.data);
    samples.push_back(s);
  }
  const auto names = w.write_sharded(dir.path(), 250);
  BOOST_TEST(names == (std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                                "model.safetensors.index.json"}),
             boost::test_tools::per_element());
  BOOST_TEST(dir.entries().size() == 3u);

  for (const std::string& path : {dir.path(), dir.file("model.safetensors.index.json")}) {
    const auto c = safetensors_checkpoint::open(path);
    BOOST_TEST(c.shard_count() == 2u);
    BOOST_TEST(c.size() == 4u);
    BOOST_TEST(c.index_metadata().at("total_size").get<std::uint64_t>() == 400u);
    for (const auto& s : samples) check_same(c.tensor(s.name), s);
    // Pages handed back read back the same (either shard); bytes of no shard's mapping are refused.
    for (const auto& s : samples) BOOST_TEST(c.release(c.tensor(s.name).bytes));
    for (const auto& s : samples) check_same(c.tensor(s.name), s);
    BOOST_TEST(!c.release(mla_test::span(samples[0].data)));
    BOOST_TEST(c.tensor("model.layers.0.weight").file == dir.file("model-00001-of-00002.safetensors"));
    BOOST_TEST(c.tensor("model.layers.3.weight").file == dir.file("model-00002-of-00002.safetensors"));
    BOOST_TEST(c.shard(0).metadata().at("format") == "pt");
    BOOST_TEST(c.names().size() == 4u);
    mla::test::expect_error([&] { (void)c.tensor("lm_head.weight"); }, {"no tensor named 'lm_head.weight'"});
  }

  // One shard: model.safetensors and no index, found from the directory.
  mla::test::temp_dir single;
  safetensors_writer w1;
  w1.add(samples[0].name, samples[0].type, samples[0].shape, samples[0].data);
  BOOST_TEST(w1.write_sharded(single.path(), 1 << 20) == std::vector<std::string>{"model.safetensors"});
  const auto c1 = safetensors_checkpoint::open(single.path());
  BOOST_TEST(c1.shard_count() == 1u);
  check_same(c1.tensor(samples[0].name), samples[0]);
  const auto c2 = safetensors_checkpoint::open(single.file("model.safetensors"));
  BOOST_TEST(c2.size() == 1u);
}

BOOST_AUTO_TEST_CASE(index_errors) {
  mla::test::temp_dir dir;
  safetensors_writer w;
  w.add("a", dtype::U8, {2}, bytes{1, 2});
  w.write(dir.file("shard.safetensors"));
  const std::string idx = dir.file("model.safetensors.index.json");
  auto with_index = [&](const std::string& json) {
    mla_test::write_file(idx, json);
    return [&] { (void)safetensors_checkpoint::open(dir.path()); };
  };
  mla::test::expect_error(with_index(R"({"metadata": {}})"), {idx, "missing \"weight_map\""});
  mla::test::expect_error(with_index(R"({"weight_map": {"a": 3}})"), {idx, "weight_map entry for 'a' is not a string"});
  mla::test::expect_error(with_index(R"({"weight_map": {"a": "../shard.safetensors"}})"),
                          {"'../shard.safetensors'", "relative path inside"});
  mla::test::expect_error(with_index(R"({"weight_map": {"a": "/etc/passwd"}})"),
                          {"'/etc/passwd'", "relative path inside"});
  mla::test::expect_error(with_index(R"({"weight_map": {"b": "shard.safetensors"}})"),
                          {"tensor 'b' is mapped to shard 'shard.safetensors', which does not contain it"});
  mla::test::expect_error(with_index(R"({"weight_map": {"a": "missing.safetensors"}})"),
                          {dir.file("missing.safetensors"), "No such file or directory"});
  mla::test::expect_error(with_index(R"({"weight_map": {"a": "shard.safetensors", "a": "shard.safetensors"}})"),
                          {"duplicate key 'a'"});
  mla::test::expect_error(with_index("{\"weight_map\": "), {idx, "invalid JSON"});
  std::filesystem::remove(idx);
  mla::test::temp_dir empty;
  mla::test::expect_error([&] { (void)safetensors_checkpoint::open(empty.path()); },
                          {empty.path(), "neither model.safetensors.index.json nor model.safetensors"});
}

BOOST_AUTO_TEST_CASE(writer_errors) {
  safetensors_writer w;
  mla::test::expect_error(
      [&] {
        w.add("a", dtype::F32, {2, 3}, bytes(20));
      },
      {"'a'", "F32 [2, 3]", "needs 24 bytes, got 20"});
  mla::test::expect_error([&] { w.add("a", dtype::F32, {-1}, bytes{}); }, {"'a'", "negative dimension"});
  mla::test::expect_error([&] { w.add("a", dtype::F4, {3}, bytes(2)); }, {"'a'", "not a whole number of bytes"});
  mla::test::expect_error([&] { w.add("__metadata__", dtype::U8, {1}, bytes(1)); }, {"'__metadata__' is not a valid"});
  w.add("a", dtype::U8, {1}, bytes(1));
  mla::test::expect_error([&] { w.add("a", dtype::U8, {1}, bytes(1)); }, {"duplicate tensor name 'a'"});
  mla::test::temp_dir dir;
  const std::string bad = dir.file("missing_dir/x.safetensors");
  mla::test::expect_error([&] { w.write(bad); }, {bad, "No such file or directory"});
  BOOST_TEST(dir.entries().empty());
  // Invalid UTF-8 in a name cannot be encoded in the JSON header.
  safetensors_writer w2;
  w2.add("bad\xff", dtype::U8, {1}, bytes(1));
  mla::test::expect_error([&] { w2.write(dir.file("y.safetensors")); }, {"valid UTF-8"});
  BOOST_TEST(dir.entries().empty());
}

// Each malformed file must give its own clear error.
BOOST_AUTO_TEST_CASE(malformed_files) {
  const bytes d8(8, 0);
  auto err = [&](const bytes& b, std::initializer_list<std::string> parts) {
    mla::test::expect_error([&] { (void)parse_safetensors(b); }, parts);
  };
  err(bytes{1, 2, 3}, {"mem.st", "file is 3 bytes, too short for the 8-byte header length"});
  err(st_bytes("{}", {}, 100'000'001), {"header length 100000001 exceeds the limit of 100000000"});
  err(st_bytes("{}", {}, 50), {"header length 50 exceeds the 2 bytes after the length field"});
  err(st_bytes("", {}), {"does not start with '{'"});
  err(st_bytes("[1]", {}), {"does not start with '{'"});
  err(st_bytes("{\"a\": ", {}), {"invalid JSON"});
  err(st_bytes("{} x", {}), {"invalid JSON"});
  err(st_bytes("{\"a\xff\": {}}", {}), {"invalid JSON"});  // not UTF-8
  err(st_bytes(
          R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
          bytes(2)),
      {"duplicate key 'a'"});
  err(st_bytes(R"({"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", bytes(1)),
      {"duplicate key 'dtype'"});
  err(st_bytes(R"({"a":[[[[[[[[[[[[[1]]]]]]]]]]]]]})"), {"nests deeper than 8"});
  err(st_bytes(R"({"a": 5})"), {"tensor 'a'", "entry is a JSON number, expected an object"});
  err(st_bytes(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", bytes(1)),
      {"tensor 'a'", "missing or non-string \"dtype\""});
  err(st_bytes(R"({"a":{"dtype":"F12","shape":[1],"data_offsets":[0,1]}})", bytes(1)),
      {"tensor 'a'", "unknown dtype 'F12'"});
  err(st_bytes(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", bytes(1)),
      {"tensor 'a'", "missing or non-array \"shape\""});
  err(st_bytes(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", bytes(1)),
      {"shape entry -1 is not a non-negative integer"});
  err(st_bytes(R"({"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", bytes(1)), {"shape entry 1.5"});
  err(st_bytes(R"({"a":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,1]}})", bytes(1)),
      {"shape entry 9223372036854775808 is not a non-negative integer"});
  err(st_bytes(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", d8),
      {"tensor 'a'", "[4294967296, 4294967296]", "too many elements (overflow)"});
  err(st_bytes(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", d8),
      {"tensor 'a'", "[4611686018427387904]", "too many bytes (overflow)"});  // numel fits, bytes do not
  err(st_bytes(R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", bytes(2)),
      {"F4", "not a whole number of bytes"});
  err(st_bytes(R"({"a":{"dtype":"U8","shape":[1]}})", bytes(1)),
      {"tensor 'a'", "\"data_offsets\" must be [BEGIN, END]"});
  err(st_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", bytes(1)), {"\"data_offsets\" must be"});
  err(st_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[2,1]}})", bytes(2)),
      {"data_offsets [2, 1] have BEGIN > END"});
  err(st_bytes(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", bytes(2)),
      {"tensor 'a'", "data_offsets [0, 4] extend past the data section (2 bytes)"});
  err(st_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}})", bytes(2)),
      {"extend past the data section"});
  err(st_bytes(R"({"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,8]}})", d8),
      {"tensor 'a'", "span 8 bytes, but dtype F16 with shape [2, 3] needs 12"});
  err(st_bytes(
          R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
          bytes(6)),
      {"tensor 'b' at data_offsets [2, 6] overlaps tensor 'a' at [0, 4]"});
  err(st_bytes(
          R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
          bytes(6)),
      {"bytes [2, 4) of the data section belong to no tensor", "before tensor 'b'"});
  err(st_bytes(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", bytes(5)),
      {"bytes [2, 5) at the end of the data section belong to no tensor"});
  err(st_bytes(R"({"__metadata__":{"format":1}})"), {"__metadata__ value for 'format' is not a string"});
  err(st_bytes(R"({"__metadata__":[]})"), {"__metadata__ is not an object"});

  // Valid edge cases: empty header object, empty tensors at the same offset, space padding.
  BOOST_TEST(parse_safetensors(st_bytes("{}")).size() == 0u);
  BOOST_TEST(parse_safetensors(st_bytes("{}      ")).size() == 0u);
  const auto ok = parse_safetensors(st_bytes(
      R"({"e1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
      R"("e2":{"dtype":"F32","shape":[5,0],"data_offsets":[1,1]}})",
      bytes(1)));
  BOOST_TEST(ok.size() == 3u);
  // A zero dimension makes the tensor empty even when the other dimensions would overflow.
  BOOST_TEST(
      parse_safetensors(
          st_bytes(R"({"z":{"dtype":"F64","shape":[9223372036854775807,9223372036854775807,0],"data_offsets":[0,0]}})"))
          .tensor("z")
          .numel == 0u);
}

BOOST_AUTO_TEST_CASE(error_from_a_file_names_its_path) {
  mla::test::temp_dir dir;
  const std::string path = dir.file("broken.safetensors");
  mla_test::write_file(path, st_bytes(R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}})", bytes(4)));
  mla::test::expect_error([&] { (void)safetensors_file::open(path); },
                          {"safetensors '" + path + "'", "tensor 'w'", "needs 6"});
}

// Every prefix and many random corruptions of a valid file either parse or throw mla::error.
BOOST_AUTO_TEST_CASE(truncations_and_corruptions_never_crash) {
  mla::test::temp_dir dir;
  mla_test::rng r(5);
  safetensors_writer w;
  w.set_metadata("format", "pt");
  w.add("a", dtype::F16, {2, 3}, r.random_bytes(12));
  w.add("b", dtype::U8, {5}, r.random_bytes(5));
  w.write(dir.file("v.safetensors"));
  const bytes valid = mla_test::read_file(dir.file("v.safetensors"));
  BOOST_TEST(parse_safetensors(valid).size() == 2u);
  for (std::size_t n = 0; n < valid.size(); ++n) {
    const bytes prefix(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(n));
    BOOST_CHECK_THROW(parse_safetensors(prefix), mla::error);
  }
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    bytes b = valid;
    const int flips = 1 + static_cast<int>(r.below(4));
    for (int k = 0; k < flips; ++k) b[r.below(static_cast<std::uint32_t>(b.size()))] = r.byte();
    try {
      const auto f = parse_safetensors(b);
      for (const auto& t : f.tensors()) {
        if (dtype_is_float(t.type)) (void)to_float(t);
      }
      ++parsed;
    } catch (const mla::error&) {
    }
  }
  BOOST_TEST_MESSAGE("corrupted safetensors files that still parsed: " << parsed);
}

BOOST_AUTO_TEST_SUITE_END()
