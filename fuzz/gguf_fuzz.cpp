// libFuzzer target: GgufFile::from_memory on arbitrary bytes must either parse
// or throw parallama::Error; ASan/UBSan catch everything else.
// Build and run: scripts/fuzz_gguf.sh [seconds]
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/check.h"
#include "gguf/gguf_file.h"

namespace {

// Touches every byte the parser kept so that stale or out-of-range data shows up.
size_t touch(const parallama::GgufValue& v) {
  size_t h = static_cast<size_t>(v.type) + v.u + static_cast<size_t>(v.i) + v.s.size();
  for (char c : v.s) h += static_cast<unsigned char>(c);
  for (const auto& e : v.arr) h += touch(e);
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = parallama::GgufFile::from_memory(data, size, "fuzz");
    volatile size_t sink = 0;
    for (const auto& kv : f->metadata()) {
      sink = sink + touch(kv.value) + kv.key.size();
      sink = sink + kv.value.to_string(4).size();
      if (kv.value.is_integer() || kv.value.is_float()) sink = sink + (kv.value.as_double() > 0.0);
    }
    for (const auto& t : f->tensors()) {
      const uint8_t* p = f->tensor_data(t);
      if (t.n_bytes) sink = sink + p[0] + p[t.n_bytes - 1];  // first and last byte must be in bounds
      sink = sink + static_cast<size_t>(t.n_elements());
      if (f->find_tensor(t.name) != &t) __builtin_trap();
    }
    // Getters on keys that exist in real models (most inputs lack them).
    for (const char* k : {"general.architecture", "general.alignment", "tokenizer.ggml.tokens"}) {
      try {
        if (const auto* v = f->find(k)) {
          if (v->type == parallama::GgufValueType::STRING) sink = sink + f->get_string(k).size();
          else if (v->type == parallama::GgufValueType::ARRAY) sink = sink + f->get_string_array(k).size();
          else sink = sink + static_cast<size_t>(f->get_int(k));
        }
      } catch (const parallama::Error&) {
      }
    }
    (void)sink;
  } catch (const parallama::Error&) {
  }
  return 0;
}
