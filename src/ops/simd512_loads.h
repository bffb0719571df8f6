// AVX-512 load helpers shared by the per-ISA kernel headers (quant_simd_impl.h,
// quant_exact_impl.h). Include only from translation units compiled for
// AVX-512 (F, BW, VL). Internal linkage: each TU keeps its own copy, compiled
// with that TU's ISA flags, so copies built for different ISAs never merge.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace parallama::simd512 {
namespace {

inline uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Two 32-byte runs as one register [p0 | p1] (two blocks' int8 values).
inline __m512i load2x32(const void* p0, const void* p1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(p0)), loadu256(p1), 1);
}

// Two blocks' 16 nibble bytes -> 64 values [lo(b0) hi(b0) lo(b1) hi(b1)], the element
// order of two consecutive 32-element activation blocks.
inline __m512i nibbles64(const uint8_t* p0, const uint8_t* p1) {
  const __m256i q = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p0))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1)), 1);
  const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
  return _mm512_and_si512(_mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0F));
}

// The first 4 bytes of cnt (<= 16) blocks `stride` bytes apart as 16 u32 lanes, zero
// past cnt. Scalar loads: vpgatherdd is slow on some AVX-512 cores (Zen 4); lane by
// lane into registers, since a stack array read back as one vector would stall
// store forwarding.
inline __m512i load_head_u32x16(const uint8_t* p, size_t stride, int64_t cnt) {
  auto ld = [&](int i) { return i < cnt ? static_cast<int>(load_u32(p + i * stride)) : 0; };
  __m128i q[4];
  for (int i = 0; i < 4; ++i) {
    __m128i v = _mm_cvtsi32_si128(ld(4 * i));
    v = _mm_insert_epi32(v, ld(4 * i + 1), 1);
    v = _mm_insert_epi32(v, ld(4 * i + 2), 2);
    q[i] = _mm_insert_epi32(v, ld(4 * i + 3), 3);
  }
  const __m256i lo = _mm256_inserti128_si256(_mm256_castsi128_si256(q[0]), q[1], 1);
  const __m256i hi = _mm256_inserti128_si256(_mm256_castsi128_si256(q[2]), q[3], 1);
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

}  // namespace
}  // namespace parallama::simd512
