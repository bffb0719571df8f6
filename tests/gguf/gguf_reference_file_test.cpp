// tests/fixtures/gguf_small_reference.gguf-fixture was written by the reference `gguf`
// Python package (tools/gguf_make_fixture.py). We read it and check every
// value, then rebuild the same content with GgufWriter and expect the very
// same bytes, so both our reader and our writer are checked against it.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "test_util.h"

namespace parallama {
namespace {

// Same formula as pattern() in tools/gguf_make_fixture.py.
std::vector<uint8_t> byte_pattern(size_t n, int seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((seed * 31 + i * 7) % 251);
  return v;
}

struct TensorSpec {
  const char* name;
  GgmlType type;
  std::vector<int64_t> dims;
};

const std::vector<TensorSpec>& specs() {
  static const std::vector<TensorSpec> s = {
      {"f32", GgmlType::F32, {4, 3}},       {"f16", GgmlType::F16, {8, 2}},
      {"bf16", GgmlType::BF16, {16}},       {"q8_0", GgmlType::Q8_0, {64, 2}},
      {"q4_k", GgmlType::Q4_K, {256, 1, 2}}, {"q5_0", GgmlType::Q5_0, {32}},
  };
  return s;
}

size_t n_bytes(const TensorSpec& s) {
  int64_t rows = 1;
  for (size_t k = 1; k < s.dims.size(); ++k) rows *= s.dims[k];
  return row_size(s.type, s.dims[0]) * static_cast<size_t>(rows);
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

GgufValue int_value(GgufValueType t, int64_t x) {
  GgufValue v;
  v.type = t;
  v.i = x;
  return v;
}

TEST(GgufReferenceFile, ReadsEveryValue) {
  auto f = GgufFile::open(test::fixture_path("gguf_small_reference.gguf-fixture"));
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  ASSERT_EQ(f->metadata().size(), 19u);
  EXPECT_EQ(f->metadata()[0].key, "general.architecture");
  EXPECT_EQ(f->get_string("general.architecture"), "test");
  EXPECT_EQ(f->find("t.u8")->type, GgufValueType::UINT8);
  EXPECT_EQ(f->get_int("t.u8"), 200);
  EXPECT_EQ(f->find("t.i8")->type, GgufValueType::INT8);
  EXPECT_EQ(f->get_int("t.i8"), -100);
  EXPECT_EQ(f->get_int("t.u16"), 60000);
  EXPECT_EQ(f->get_int("t.i16"), -30000);
  EXPECT_EQ(f->get_int("t.u32"), 4000000000LL);
  EXPECT_EQ(f->get_int("t.i32"), -2000000000LL);
  EXPECT_EQ(f->get_float("t.f32"), static_cast<double>(3.14159f));
  EXPECT_TRUE(f->get_bool("t.bool"));
  EXPECT_EQ(f->get_string("t.str"), "h\xc3\xa9llo\nworld");
  EXPECT_EQ(f->find("t.u64")->u, std::numeric_limits<uint64_t>::max());
  EXPECT_THROW(f->get_int("t.u64"), Error);  // does not fit int64
  EXPECT_EQ(f->get_int("t.i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->get_float("t.f64"), 2.718281828459045);
  EXPECT_EQ(f->get_int_array("t.arr_i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f->get_float_array("t.arr_f32"), (std::vector<double>{0.5, -1.25}));
  EXPECT_EQ(f->get_string_array("t.arr_str"), (std::vector<std::string>{"a", "", "\xc3\xbc"}));
  const GgufValue* b = f->find("t.arr_bool");
  ASSERT_EQ(b->elem_type, GgufValueType::BOOL);
  ASSERT_EQ(b->arr.size(), 2u);
  EXPECT_EQ(b->arr[0].u, 1u);
  EXPECT_EQ(b->arr[1].u, 0u);
  EXPECT_EQ(f->get_int_array("t.arr_u64"), (std::vector<int64_t>{7, int64_t(1) << 40}));
  const GgufValue* n = f->find("t.nested");
  ASSERT_EQ(n->elem_type, GgufValueType::ARRAY);
  ASSERT_EQ(n->arr.size(), 2u);
  EXPECT_EQ(n->arr[0].elem_type, GgufValueType::INT32);
  ASSERT_EQ(n->arr[0].arr.size(), 2u);
  EXPECT_EQ(n->arr[0].arr[1].i, 2);
  ASSERT_EQ(n->arr[1].arr.size(), 1u);
  EXPECT_EQ(n->arr[1].arr[0].i, 3);
  EXPECT_EQ(n->to_string(), "[[1, 2], [3]]");

  ASSERT_EQ(f->tensors().size(), specs().size());
  uint64_t expect_offset = 0;
  for (size_t k = 0; k < specs().size(); ++k) {
    const TensorSpec& s = specs()[k];
    const GgufTensorInfo& t = f->tensors()[k];
    SCOPED_TRACE(s.name);
    EXPECT_EQ(t.name, s.name);
    EXPECT_EQ(t.ggml_type(), s.type);
    EXPECT_EQ(t.dims, s.dims);
    EXPECT_EQ(t.n_bytes, n_bytes(s));
    EXPECT_EQ(t.offset, expect_offset);
    expect_offset += (t.n_bytes + 31) / 32 * 32;
    const std::vector<uint8_t> want = byte_pattern(t.n_bytes, static_cast<int>(k));
    EXPECT_EQ(std::vector<uint8_t>(f->tensor_data(t), f->tensor_data(t) + t.n_bytes), want);
  }
}

TEST(GgufReferenceFile, WriterReproducesReferenceBytes) {
  GgufWriter w;
  w.set_string("general.architecture", "test");
  w.set("t.u8", [] { GgufValue v; v.type = GgufValueType::UINT8; v.u = 200; return v; }());
  w.set("t.i8", int_value(GgufValueType::INT8, -100));
  w.set("t.u16", [] { GgufValue v; v.type = GgufValueType::UINT16; v.u = 60000; return v; }());
  w.set("t.i16", int_value(GgufValueType::INT16, -30000));
  w.set_u32("t.u32", 4000000000u);
  w.set_i32("t.i32", -2000000000);
  w.set_f32("t.f32", 3.14159f);
  w.set_bool("t.bool", true);
  w.set_string("t.str", "h\xc3\xa9llo\nworld");
  w.set("t.u64", [] {
    GgufValue v; v.type = GgufValueType::UINT64; v.u = std::numeric_limits<uint64_t>::max(); return v;
  }());
  w.set("t.i64", int_value(GgufValueType::INT64, std::numeric_limits<int64_t>::min()));
  w.set("t.f64", [] { GgufValue v; v.type = GgufValueType::FLOAT64; v.f = 2.718281828459045; return v; }());
  w.set_i32_array("t.arr_i32", {1, -2, 3});
  w.set_f32_array("t.arr_f32", {0.5f, -1.25f});
  w.set_string_array("t.arr_str", {"a", "", "\xc3\xbc"});
  {
    GgufValue v;
    v.type = GgufValueType::ARRAY;
    v.elem_type = GgufValueType::BOOL;
    for (int x : {1, 0}) {
      GgufValue e;
      e.type = GgufValueType::BOOL;
      e.u = x;
      v.arr.push_back(e);
    }
    w.set("t.arr_bool", v);
  }
  {
    GgufValue v;
    v.type = GgufValueType::ARRAY;
    v.elem_type = GgufValueType::UINT64;
    for (uint64_t x : {uint64_t(7), uint64_t(1) << 40}) {
      GgufValue e;
      e.type = GgufValueType::UINT64;
      e.u = x;
      v.arr.push_back(e);
    }
    w.set("t.arr_u64", v);
  }
  {
    GgufValue outer;
    outer.type = GgufValueType::ARRAY;
    outer.elem_type = GgufValueType::ARRAY;
    for (std::vector<int> xs : {std::vector<int>{1, 2}, std::vector<int>{3}}) {
      GgufValue inner;
      inner.type = GgufValueType::ARRAY;
      inner.elem_type = GgufValueType::INT32;
      for (int x : xs) inner.arr.push_back(int_value(GgufValueType::INT32, x));
      outer.arr.push_back(inner);
    }
    w.set("t.nested", outer);
  }
  for (size_t k = 0; k < specs().size(); ++k) {
    const TensorSpec& s = specs()[k];
    const std::vector<uint8_t> data = byte_pattern(n_bytes(s), static_cast<int>(k));
    w.add_tensor(s.name, s.dims, s.type, data.data(), data.size());
  }
  const std::vector<uint8_t> want = read_all(test::fixture_path("gguf_small_reference.gguf-fixture"));
  ASSERT_FALSE(want.empty());
  const std::vector<uint8_t> got = w.to_bytes();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "first difference at byte " << i;
}

}  // namespace
}  // namespace parallama
