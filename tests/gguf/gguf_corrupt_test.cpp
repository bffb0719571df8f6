// Corrupt and hostile GGUF images: every one must raise parallama::Error
// whose message names the file and the specific problem; none may crash or
// read out of bounds (run under PARALLAMA_SANITIZE=ON to check the latter).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "test_util.h"

namespace parallama {
namespace {

constexpr const char* kName = "corrupt.gguf";

// Byte-level GGUF builder that lets a test write anything, valid or not.
struct Raw {
  std::vector<uint8_t> b;
  Raw& u8(uint8_t v) { b.push_back(v); return *this; }
  Raw& u32(uint32_t v) { return put(&v, 4); }
  Raw& u64(uint64_t v) { return put(&v, 8); }
  Raw& put(const void* p, size_t n) {
    const uint8_t* q = static_cast<const uint8_t*>(p);
    b.insert(b.end(), q, q + n);
    return *this;
  }
  Raw& str(const std::string& s) { u64(s.size()); return put(s.data(), s.size()); }
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    put("GGUF", 4);
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  Raw& kv_u32(const std::string& k, uint32_t v) { str(k); u32(4); return u32(v); }
  Raw& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t off) {
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    u32(type);
    return u64(off);
  }
  Raw& pad(size_t a = 32) { while (b.size() % a) b.push_back(0); return *this; }
  Raw& zeros(size_t n) { b.resize(b.size() + n, 0); return *this; }
};

// Parses from an exactly-sized heap copy, so an overread is a real overflow under ASan.
void parse(const std::vector<uint8_t>& bytes) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() ? bytes.size() : 1]);
  if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
  GgufFile::from_memory(copy.get(), bytes.size(), kName);
}

// Expects an Error naming the file and containing `phrase`.
void expect_error(const std::vector<uint8_t>& bytes, const std::string& phrase) {
  try {
    parse(bytes);
    ADD_FAILURE() << "no error, expected: " << phrase;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(std::string(kName) + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(phrase), std::string::npos) << "message: " << msg << "\nexpected: " << phrase;
  }
}

// A valid small file: a few kinds of metadata and three tensors.
std::vector<uint8_t> small_valid_file() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_f32("llama.rope.freq_base", 10000.f);
  w.set_string_array("tokenizer.ggml.tokens", {"a", "bc", "<s>"});
  w.set_i32_array("tokenizer.ggml.token_type", {1, 1, 3});
  w.set_bool("b", true);
  std::vector<float> f32(8, 1.f);
  w.add_tensor("norm", {8}, GgmlType::F32, f32.data(), 32);
  std::vector<uint8_t> q8(34 * 2, 3);
  w.add_tensor("w", {32, 2}, GgmlType::Q8_0, q8.data(), q8.size());
  std::vector<uint8_t> h(2 * 4, 0);
  w.add_tensor("h", {2, 2}, GgmlType::F16, h.data(), h.size());
  return w.to_bytes();
}

TEST(GgufCorrupt, ValidBaselineParses) {
  const auto bytes = small_valid_file();
  auto f = GgufFile::from_memory(bytes.data(), bytes.size(), kName);
  EXPECT_EQ(f->tensors().size(), 3u);
  // The minimal tensor-less file also parses.
  parse(Raw().header(0, 0).b);
}

TEST(GgufCorrupt, TruncatedAtEveryLength) {
  const auto bytes = small_valid_file();
  // Only the padding after the last tensor's bytes may be cut off.
  auto full = GgufFile::from_memory(bytes.data(), bytes.size(), kName);
  size_t needed = 0;
  for (const GgufTensorInfo& t : full->tensors())
    needed = std::max<size_t>(needed, (full->data_section() - full->mapping()) + t.offset + t.n_bytes);
  ASSERT_LT(needed, bytes.size());
  for (size_t n = 0; n < bytes.size(); ++n) {
    SCOPED_TRACE(n);
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    if (n >= needed) {
      parse(cut);
      continue;
    }
    try {
      parse(cut);
      ADD_FAILURE() << "prefix of " << n << " bytes parsed";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind(std::string(kName) + ": ", 0), 0u) << e.what();
    }
  }
  expect_error({}, "truncated");
  expect_error(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 10), "truncated");
}

TEST(GgufCorrupt, TruncatedFileOnDiskNamesPath) {
  const auto bytes = small_valid_file();
  const std::string path = test::temp_path("truncated.gguf");
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), 100);
  }
  try {
    GgufFile::open(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
  }
  EXPECT_THROW(GgufFile::open(path + ".missing"), Error);
  std::remove(path.c_str());
}

TEST(GgufCorrupt, FlippedBytesNeverCrash) {
  const auto bytes = small_valid_file();
  int errors = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t x : {uint8_t(0xff), uint8_t(0x80), uint8_t(0x01)}) {
      std::vector<uint8_t> m = bytes;
      m[i] ^= x;
      try {
        parse(m);
      } catch (const Error& e) {
        ++errors;
        EXPECT_EQ(std::string(e.what()).rfind(std::string(kName) + ": ", 0), 0u) << e.what();
      }
    }
  }
  EXPECT_GT(errors, 100);
}

TEST(GgufCorrupt, BadMagicAndVersion) {
  auto b = Raw().header(0, 0).b;
  b[0] = 'X';
  expect_error(b, "bad magic");
  expect_error(Raw().header(0, 0, 1).b, "unsupported GGUF version 1");
  expect_error(Raw().header(0, 0, 4).b, "unsupported GGUF version 4");
  expect_error(Raw().header(0, 0, 0x03000000).b, "big-endian");
  parse(Raw().header(0, 0, 2).b);  // v2 has the same layout
}

TEST(GgufCorrupt, AbsurdCounts) {
  expect_error(Raw().header(0, std::numeric_limits<uint64_t>::max()).b,
               "metadata count 18446744073709551615 is larger than the file could hold");
  expect_error(Raw().header(1ull << 40, 0).b, "tensor count 1099511627776 is larger than the file could hold");
  // Array of 2^40 uint32: would need 4 TiB.
  Raw r;
  r.header(0, 1).str("arr").u32(9).u32(4).u64(1ull << 40).zeros(64);
  expect_error(r.b, "array length 1099511627776 is larger than the file could hold");
  // Array of strings: each needs at least 8 bytes.
  Raw s;
  s.header(0, 1).str("arr").u32(9).u32(8).u64(100).zeros(700);
  expect_error(s.b, "array length 100 is larger");
}

TEST(GgufCorrupt, StringsPastEnd) {
  Raw r;
  r.header(0, 1).u64(1ull << 62).put("abc", 3).zeros(16);
  expect_error(r.b, "runs past end of file");
  Raw v;
  v.header(0, 1).str("k").u32(8).u64(9).put("short", 5);
  expect_error(v.b, "string of length 9");
  Raw t;
  t.header(1, 0).u64(1000).zeros(40);
  expect_error(t.b, "tensor name: string of length 1000");
}

TEST(GgufCorrupt, UnknownValueTypes) {
  Raw r;
  r.header(0, 1).str("k").u32(13).u32(0);
  expect_error(r.b, "key 'k': unknown value type 13");
  Raw a;
  a.header(0, 1).str("k").u32(9).u32(77).u64(0);
  expect_error(a.b, "key 'k': unknown value type 77 in array");
}

TEST(GgufCorrupt, DeeplyNestedArrays) {
  Raw r;
  r.header(0, 1).str("k");
  r.u32(9);
  for (int d = 0; d < 100; ++d) r.u32(9).u64(1);
  r.u32(4).u64(0);
  expect_error(r.b, "nested too deeply");
}

TEST(GgufCorrupt, DuplicateKeysAndTensors) {
  expect_error(Raw().header(0, 2).kv_u32("a", 1).kv_u32("a", 2).b, "duplicate key 'a'");
  Raw r;
  r.header(2, 0).tensor("t", {4}, 0, 0).tensor("t", {4}, 0, 32).pad().zeros(64);
  expect_error(r.b, "duplicate tensor name 't'");
}

TEST(GgufCorrupt, Alignment) {
  expect_error(Raw().header(0, 1).kv_u32("general.alignment", 0).b, "non-zero power of two, got 0");
  expect_error(Raw().header(0, 1).kv_u32("general.alignment", 48).b, "power of two, got 48");
  Raw s;
  s.header(0, 1).str("general.alignment").u32(8).str("x");
  expect_error(s.b, "general.alignment has type string");
  // A valid non-default alignment moves the data section and the offset rule.
  Raw ok;
  ok.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {4}, 0, 0).pad(64).zeros(16);
  auto bytes = ok.b;
  auto f = GgufFile::from_memory(bytes.data(), bytes.size(), kName);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ((f->data_section() - f->mapping()) % 64, 0);
  Raw bad;
  bad.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {4}, 0, 32).pad(64).zeros(64);
  expect_error(bad.b, "tensor 't' offset 32 is not aligned to 64");
}

TEST(GgufCorrupt, TensorInfoProblems) {
  auto one = [](std::vector<uint64_t> dims, uint32_t type, uint64_t off, size_t data) {
    Raw r;
    r.header(1, 0).tensor("blk.0.w", std::move(dims), type, off).pad().zeros(data);
    return r.b;
  };
  expect_error(one({4}, 99, 0, 64), "tensor 'blk.0.w' has unknown type id 99");
  expect_error(one({4}, 4, 0, 64), "unknown type id 4");  // a hole in ggml's numbering
  expect_error(one({1, 1, 1, 1, 1}, 0, 0, 64), "tensor 'blk.0.w' has 5 dimensions");
  expect_error(one({}, 0, 0, 64), "has 0 dimensions");
  expect_error(one({4, 0}, 0, 0, 64), "dimension 1 is 0 (must be positive)");
  expect_error(one({std::numeric_limits<uint64_t>::max()}, 0, 0, 64), "dimension 0 is -1 (must be positive)");
  expect_error(one({1ull << 32, 1ull << 32}, 0, 0, 64), "element count overflows");
  expect_error(one({33}, 8, 0, 64), "row length 33 is not a multiple of the block size 32 of type Q8_0");
  expect_error(one({100}, 12, 0, 512), "not a multiple of the block size 256 of type Q4_K");
  expect_error(one({4}, 0, 8, 64), "offset 8 is not aligned to 32");
  expect_error(one({4}, 0, 64, 64), "tensor 'blk.0.w' data (offset 64, 16 bytes) runs past end of file");
  expect_error(one({4}, 0, 1ull << 63, 64), "runs past end of file");
  expect_error(one({32}, 0, 0, 100), "runs past end of file");  // 128 bytes needed
  // Known-to-ggml but not computable (Q5_0 = 6, Q2_K = 10) still parses.
  for (uint32_t t : {6u, 10u}) {
    const TypeTraits tr = type_traits(t);
    auto b = one({static_cast<uint64_t>(tr.block_size)}, t, 0, static_cast<size_t>(tr.type_size));
    auto f = GgufFile::from_memory(b.data(), b.size(), kName);
    EXPECT_EQ(f->tensors()[0].type, t);
    EXPECT_EQ(f->tensors()[0].n_bytes, static_cast<uint64_t>(tr.type_size));
  }
}

TEST(GgufCorrupt, OverlappingTensors) {
  Raw r;
  r.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32).pad().zeros(128);
  expect_error(r.b, "tensor 'b' overlaps tensor 'a'");
}

TEST(GgufCorrupt, DataSectionPastEnd) {
  // Tensor infos end unaligned and the file stops before the padding.
  Raw r;
  r.header(1, 0).tensor("t", {1}, 0, 0);
  expect_error(r.b, "data section would start at offset");
}

TEST(GgufCorrupt, TypedGetterErrorsNameKey) {
  const auto bytes = small_valid_file();
  auto f = GgufFile::from_memory(bytes.data(), bytes.size(), kName);
  try {
    f->get_string("llama.block_count");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt.gguf: key 'llama.block_count' has type uint32, expected string"),
              std::string::npos) << e.what();
  }
  try {
    f->get_int("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt.gguf: missing key 'nope'"), std::string::npos);
  }
  EXPECT_THROW(f->get_int_array("tokenizer.ggml.tokens"), Error);
  EXPECT_THROW(f->get_string_array("tokenizer.ggml.token_type"), Error);
  EXPECT_THROW(f->get_bool("llama.block_count"), Error);
  EXPECT_THROW(f->get_float("general.architecture", 1.0), Error);  // present, wrong type
}

}  // namespace
}  // namespace parallama
