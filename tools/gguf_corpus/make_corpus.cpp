// Writes a small seed corpus for fuzz/gguf_fuzz.cpp into the directory given
// as argv[1]: valid GGUF files built with GgufWriter covering every value type,
// nested arrays, several tensor types and alignments.
// Built and run by scripts/fuzz_gguf.sh:
//   c++ -std=c++20 -Isrc tools/gguf_corpus/make_corpus.cpp src/gguf/*.cpp src/core/ggml_type.cpp
#include <cstdio>
#include <string>
#include <vector>

#include "core/check.h"
#include "gguf/gguf_writer.h"

using namespace parallama;

namespace {

GgufValue num(GgufValueType t, int64_t x) {
  GgufValue v;
  v.type = t;
  v.u = static_cast<uint64_t>(x);
  v.i = x;
  v.f = static_cast<double>(x);
  return v;
}

void add_tensor(GgufWriter& w, const std::string& name, GgmlType t, std::vector<int64_t> dims) {
  int64_t rows = 1;
  for (size_t k = 1; k < dims.size(); ++k) rows *= dims[k];
  std::vector<uint8_t> d(row_size(t, dims[0]) * static_cast<size_t>(rows), 0x11);
  w.add_tensor(name, dims, t, d.data(), d.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  try {
    {  // every scalar type, strings and arrays, no tensors
      GgufWriter w;
      const GgufValueType scalars[] = {
          GgufValueType::UINT8, GgufValueType::INT8, GgufValueType::UINT16, GgufValueType::INT16,
          GgufValueType::UINT32, GgufValueType::INT32, GgufValueType::FLOAT32, GgufValueType::BOOL,
          GgufValueType::UINT64, GgufValueType::INT64, GgufValueType::FLOAT64};
      for (GgufValueType t : scalars) w.set(std::string("k.") + gguf_value_type_name(t), num(t, 1));
      w.set_string("general.architecture", "llama");
      w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
      w.set_i32_array("ints", {1, 2, 3});
      w.set_f32_array("floats", {0.5f});
      GgufValue nested;
      nested.type = GgufValueType::ARRAY;
      nested.elem_type = GgufValueType::ARRAY;
      GgufValue inner;
      inner.type = GgufValueType::ARRAY;
      inner.elem_type = GgufValueType::UINT8;
      inner.arr = {num(GgufValueType::UINT8, 7)};
      nested.arr = {inner, inner};
      w.set("nested", nested);
      w.write(dir + "/metadata.gguf");
    }
    {  // tensors of several types
      GgufWriter w;
      w.set_string("general.architecture", "llama");
      w.set_u32("llama.block_count", 1);
      add_tensor(w, "a", GgmlType::F32, {4, 2});
      add_tensor(w, "b", GgmlType::Q8_0, {32});
      add_tensor(w, "c", GgmlType::Q4_K, {256});
      add_tensor(w, "d", GgmlType::F16, {2, 1, 1, 2});
      w.write(dir + "/tensors.gguf");
      w.write(dir + "/tensors_align64.gguf", 64);
      w.write(dir + "/tensors_align8.gguf", 8);
    }
    {  // minimal
      GgufWriter w;
      w.write(dir + "/empty.gguf");
      add_tensor(w, "x", GgmlType::Q5_0, {32});
      w.write(dir + "/one_tensor.gguf");
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
