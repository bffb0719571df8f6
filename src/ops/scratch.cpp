#include "ops/scratch.h"

#include <cstdlib>
#include <new>

namespace parallama {

ScratchBuf::~ScratchBuf() { std::free(p_); }

void* ScratchBuf::grow(size_t bytes) {
  if (bytes <= cap_) return p_;
  const size_t cap = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, cap);
  if (p == nullptr) throw std::bad_alloc();
  std::free(p_);
  p_ = p;
  cap_ = cap;
  return p_;
}

float* ScratchBuf::f32(size_t n) { return static_cast<float*>(grow(n * sizeof(float))); }
int32_t* ScratchBuf::i32(size_t n) { return static_cast<int32_t*>(grow(n * sizeof(int32_t))); }
uint8_t* ScratchBuf::u8(size_t n) { return static_cast<uint8_t*>(grow(n * sizeof(uint8_t))); }

}  // namespace parallama
