#pragma once
// Grow-only scratch memory for the per-ISA kernel files (*_avx2.cpp, *_avx512*.cpp).
//
// Why not std::vector there: every file that uses std::vector<float> emits its own
// weak copy of members such as _M_default_append, compiled with that file's flags,
// and the linker keeps one copy for the whole program. A copy from an -mavx512f file
// then runs on CPUs without AVX-512 (SIGILL in the sanitizer build on an AVX2-only
// machine). ScratchBuf's code lives in scratch.cpp, built for the baseline ISA, and
// nothing in this header is a template. tests/isa_symbols_check.sh fails the build's
// tests if an ISA file defines any shared weak symbol.
#include <cstddef>
#include <cstdint>

namespace parallama {

class ScratchBuf {
 public:
  ScratchBuf() = default;
  ScratchBuf(const ScratchBuf&) = delete;
  ScratchBuf& operator=(const ScratchBuf&) = delete;
  ~ScratchBuf();

  // At least n elements, 64-byte aligned. Growth drops the old contents, so callers
  // write before they read; the pointer stays valid until the next, larger request.
  float* f32(size_t n);
  int32_t* i32(size_t n);
  uint8_t* u8(size_t n);

 private:
  void* grow(size_t bytes);
  void* p_ = nullptr;
  size_t cap_ = 0;  // bytes
};

}  // namespace parallama
