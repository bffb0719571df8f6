// GgufWriter -> GgufFile round trips: every value type (incl. empty and nested
// arrays), several tensor types, non-default alignment, files on disk.
// The byte format itself is checked against the reference Python writer in
// gguf_reference_file_test.cpp; here we check what that fixture cannot cover.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "test_util.h"

namespace parallama {
namespace {

GgufValue scalar(GgufValueType t) {
  GgufValue v;
  v.type = t;
  return v;
}

GgufValue array(GgufValueType et, std::vector<GgufValue> xs) {
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.elem_type = et;
  v.arr = std::move(xs);
  return v;
}

void expect_same(const GgufValue& a, const GgufValue& b) {
  ASSERT_EQ(a.type, b.type);
  switch (a.type) {
    case GgufValueType::STRING: EXPECT_EQ(a.s, b.s); break;
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64:
      if (std::isnan(a.f)) EXPECT_TRUE(std::isnan(b.f));
      else EXPECT_EQ(a.f, b.f);
      break;
    case GgufValueType::ARRAY:
      ASSERT_EQ(a.elem_type, b.elem_type);
      ASSERT_EQ(a.arr.size(), b.arr.size());
      for (size_t k = 0; k < a.arr.size(); ++k) expect_same(a.arr[k], b.arr[k]);
      break;
    default:
      EXPECT_EQ(a.u, b.u);
      EXPECT_EQ(a.i, b.i);
  }
}

std::vector<GgufKV> all_kinds() {
  std::vector<GgufKV> kv;
  auto u = [&](const char* k, GgufValueType t, uint64_t x) { auto v = scalar(t); v.u = x; kv.push_back({k, v}); };
  auto i = [&](const char* k, GgufValueType t, int64_t x) { auto v = scalar(t); v.i = x; kv.push_back({k, v}); };
  auto f = [&](const char* k, GgufValueType t, double x) { auto v = scalar(t); v.f = x; kv.push_back({k, v}); };
  u("u8", GgufValueType::UINT8, 255);
  i("i8", GgufValueType::INT8, -128);
  u("u16", GgufValueType::UINT16, 65535);
  i("i16", GgufValueType::INT16, -32768);
  u("u32", GgufValueType::UINT32, 0xffffffffu);
  i("i32", GgufValueType::INT32, std::numeric_limits<int32_t>::min());
  u("u64", GgufValueType::UINT64, std::numeric_limits<uint64_t>::max());
  i("i64", GgufValueType::INT64, std::numeric_limits<int64_t>::min());
  f("f32", GgufValueType::FLOAT32, -0.1f);
  f("f32.inf", GgufValueType::FLOAT32, -INFINITY);
  f("f32.nan", GgufValueType::FLOAT32, NAN);
  f("f64", GgufValueType::FLOAT64, 1e-300);
  u("bool.t", GgufValueType::BOOL, 1);
  u("bool.f", GgufValueType::BOOL, 0);
  {
    auto v = scalar(GgufValueType::STRING);
    v.s = std::string("nul\0inside", 10);
    kv.push_back({"str.nul", v});
    v.s = "";
    kv.push_back({"str.empty", v});
  }
  kv.push_back({"arr.empty", array(GgufValueType::INT32, {})});
  kv.push_back({"arr.empty_str", array(GgufValueType::STRING, {})});
  {
    std::vector<GgufValue> xs;
    for (int k = 0; k < 300; ++k) { auto v = scalar(GgufValueType::UINT8); v.u = k & 255; xs.push_back(v); }
    kv.push_back({"arr.u8", array(GgufValueType::UINT8, xs)});
  }
  {
    std::vector<GgufValue> xs;
    for (double x : {1.5, -2.25}) { auto v = scalar(GgufValueType::FLOAT64); v.f = x; xs.push_back(v); }
    kv.push_back({"arr.f64", array(GgufValueType::FLOAT64, xs)});
  }
  {
    std::vector<GgufValue> xs;
    for (int64_t x : {int64_t(-5), int64_t(1) << 50}) { auto v = scalar(GgufValueType::INT64); v.i = x; xs.push_back(v); }
    kv.push_back({"arr.i64", array(GgufValueType::INT64, xs)});
  }
  {
    auto s1 = scalar(GgufValueType::STRING);
    s1.s = "x";
    std::vector<GgufValue> inner = {array(GgufValueType::STRING, {s1, s1}), array(GgufValueType::STRING, {})};
    auto mid = array(GgufValueType::ARRAY, inner);
    kv.push_back({"arr.nested3", array(GgufValueType::ARRAY, {mid, array(GgufValueType::ARRAY, {})})});
  }
  return kv;
}

TEST(GgufRoundTrip, EveryValueType) {
  GgufWriter w;
  const auto kvs = all_kinds();
  for (const auto& kv : kvs) w.set(kv.key, kv.value);
  const auto bytes = w.to_bytes();
  auto f = GgufFile::from_memory(bytes.data(), bytes.size(), "mem");
  ASSERT_EQ(f->metadata().size(), kvs.size());
  for (size_t k = 0; k < kvs.size(); ++k) {
    SCOPED_TRACE(kvs[k].key);
    EXPECT_EQ(f->metadata()[k].key, kvs[k].key);  // insertion order
    expect_same(f->metadata()[k].value, kvs[k].value);
  }
  EXPECT_TRUE(f->tensors().empty());
}

TEST(GgufRoundTrip, SetReplacesInPlace) {
  GgufWriter w;
  w.set_u32("a", 1);
  w.set_string("b", "x");
  w.set_i32("a", -7);
  const auto bytes = w.to_bytes();
  auto f = GgufFile::from_memory(bytes.data(), bytes.size(), "mem");
  ASSERT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata()[0].key, "a");
  EXPECT_EQ(f->metadata()[0].value.type, GgufValueType::INT32);
  EXPECT_EQ(f->get_int("a"), -7);
}

TEST(GgufRoundTrip, ToString) {
  auto v = scalar(GgufValueType::STRING);
  v.s = "a\"b\n";
  EXPECT_EQ(v.to_string(), "a\"b\n");  // top-level strings are shown raw
  auto arr = array(GgufValueType::STRING, {v, v, v});
  EXPECT_EQ(arr.to_string(2), "[\"a\\\"b\\n\", \"a\\\"b\\n\", ... (3 items)]");
  auto f = scalar(GgufValueType::FLOAT32);
  f.f = 1e-5f;
  EXPECT_EQ(f.to_string(), "1e-05");
  auto b = scalar(GgufValueType::BOOL);
  b.u = 1;
  EXPECT_EQ(b.to_string(), "true");
  auto i = scalar(GgufValueType::INT16);
  i.i = -3;
  EXPECT_EQ(i.to_string(), "-3");
  EXPECT_EQ(array(GgufValueType::INT32, {}).to_string(), "[]");
  EXPECT_EQ(array(GgufValueType::INT32, {i, i}).to_string(0), "[... (2 items)]");
}

struct TensorCase {
  std::string name;
  GgmlType type;
  std::vector<int64_t> dims;
};

void tensor_round_trip(uint64_t alignment, bool via_disk) {
  const std::vector<TensorCase> cases = {
      {"a.f32", GgmlType::F32, {3}},          {"b.f16", GgmlType::F16, {5, 3}},
      {"c.bf16", GgmlType::BF16, {7, 1, 2}},  {"d.q4_0", GgmlType::Q4_0, {64, 3}},
      {"e.q4_1", GgmlType::Q4_1, {32, 2, 2, 1}}, {"f.q8_0", GgmlType::Q8_0, {96}},
      {"g.q5_k", GgmlType::Q5_K, {512, 2}},   {"h.q6_k", GgmlType::Q6_K, {256}},
      {"i.q3_k", GgmlType::Q3_K, {256}},
  };
  std::mt19937 rng(42);
  std::vector<std::vector<uint8_t>> datas;
  GgufWriter w;
  w.set_string("general.architecture", "x");
  for (const auto& c : cases) {
    int64_t rows = 1;
    for (size_t k = 1; k < c.dims.size(); ++k) rows *= c.dims[k];
    std::vector<uint8_t> d(row_size(c.type, c.dims[0]) * rows);
    for (auto& x : d) x = static_cast<uint8_t>(rng());
    w.add_tensor(c.name, c.dims, c.type, d.data(), d.size());
    datas.push_back(std::move(d));
  }
  std::vector<uint8_t> bytes;
  std::unique_ptr<GgufFile> f;
  std::string path;
  if (via_disk) {
    path = test::temp_path("roundtrip_" + std::to_string(alignment) + ".gguf");
    w.write(path, alignment);
    f = GgufFile::open(path);
    EXPECT_EQ(f->path(), path);
  } else {
    bytes = w.to_bytes(alignment);
    f = GgufFile::from_memory(bytes.data(), bytes.size(), "mem");
  }
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), alignment);
  EXPECT_EQ((f->data_section() - f->mapping()) % alignment, 0);
  ASSERT_EQ(f->tensors().size(), cases.size());
  for (size_t k = 0; k < cases.size(); ++k) {
    const GgufTensorInfo& t = f->tensors()[k];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, cases[k].name);
    EXPECT_EQ(t.ggml_type(), cases[k].type);
    EXPECT_EQ(t.dims, cases[k].dims);
    EXPECT_EQ(t.offset % alignment, 0u);
    ASSERT_EQ(t.n_bytes, datas[k].size());
    EXPECT_EQ(0, std::memcmp(f->tensor_data(t), datas[k].data(), datas[k].size()));
    EXPECT_EQ(f->find_tensor(cases[k].name), &t);
  }
  f.reset();
  if (!path.empty()) std::remove(path.c_str());
}

TEST(GgufRoundTrip, TensorsDefaultAlignment) { tensor_round_trip(32, false); }
TEST(GgufRoundTrip, TensorsAlignment64OnDisk) { tensor_round_trip(64, true); }
TEST(GgufRoundTrip, TensorsAlignment1) { tensor_round_trip(1, false); }
TEST(GgufRoundTrip, TensorsAlignment4096OnDisk) { tensor_round_trip(4096, true); }

TEST(GgufRoundTrip, WriterRejectsBadInput) {
  GgufWriter w;
  std::vector<uint8_t> d(64);
  EXPECT_THROW(w.add_tensor("t", {33}, GgmlType::Q8_0, d.data(), 34), Error);  // row not a block multiple
  EXPECT_THROW(w.add_tensor("t", {4}, GgmlType::F32, d.data(), 15), Error);    // wrong byte count
  EXPECT_THROW(w.add_tensor("t", {}, GgmlType::F32, d.data(), 0), Error);
  EXPECT_THROW(w.add_tensor("t", {1, 1, 1, 1, 1}, GgmlType::F32, d.data(), 4), Error);
  EXPECT_THROW(w.add_tensor("t", {0}, GgmlType::F32, d.data(), 0), Error);
  EXPECT_THROW(w.add_tensor("t", {4}, static_cast<GgmlType>(99), d.data(), 16), Error);
  w.add_tensor("t", {4}, GgmlType::F32, d.data(), 16);
  EXPECT_THROW(w.add_tensor("t", {4}, GgmlType::F32, d.data(), 16), Error);  // duplicate
  EXPECT_THROW(w.to_bytes(48), Error);
  w.set_u32("general.alignment", 64);
  EXPECT_THROW(w.to_bytes(32), Error);  // metadata disagrees with the requested alignment
  EXPECT_NO_THROW(w.to_bytes(64));
  GgufWriter bad;
  bad.set("arr", array(GgufValueType::INT32, {scalar(GgufValueType::STRING)}));
  EXPECT_THROW(bad.to_bytes(), Error);
  EXPECT_THROW(GgufWriter().write("/nonexistent-dir/x.gguf"), Error);
}

}  // namespace
}  // namespace parallama
