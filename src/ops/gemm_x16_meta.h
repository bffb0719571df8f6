// Per-token activation data of the x16 kernels (gemm_x16_impl.h for AVX-512,
// gemm_x16_avx2.cpp): per block the f32 scale, the Q8_1 s term (Q4_1), and the
// correction for unsigned weight storage (off * sum of the block's int8 values).
// Internal linkage: each ISA translation unit compiles its own copy with its own
// flags, so the linker can never hand an AVX2 CPU the AVX-512 build of these.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "core/fp16.h"
#include "ops/quant_blocks.h"
#include "ops/scratch.h"

namespace parallama::x16 {
namespace {

enum Kind { kQ4_0, kQ4_1, kQ8_0 };

// Activation block data for a tile of tokens: scale, unsigned-storage correction,
// and (Q4_1) the s term. [kMaxTok][nb] each.
constexpr int kMaxTok = 4;
struct ActMeta {
  float* d = nullptr;
  float* s = nullptr;
  int32_t* corr = nullptr;
  int64_t nb = 0;
  void resize(int64_t n) {
    nb = n;
    const size_t len = static_cast<size_t>(kMaxTok * n);
    d = d_buf.f32(len), s = s_buf.f32(len), corr = corr_buf.i32(len);
  }

 private:
  ScratchBuf d_buf, s_buf, corr_buf;
};

inline int32_t block_sum(const int8_t* q) {
  // sum(q) = sum(q + 128) - 32 * 128, with the unsigned sum from vpsadbw.
  const __m256i u = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)), _mm256_set1_epi8(-128));
  const __m256i s = _mm256_sad_epu8(u, _mm256_setzero_si256());
  const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  return static_cast<int32_t>(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1)) - 32 * 128;
}

template <int K>
void fill_meta(ActMeta& m, int t, const uint8_t* act_row) {
  float* d = m.d + t * m.nb;
  float* s = m.s + t * m.nb;
  int32_t* corr = m.corr + t * m.nb;
  for (int64_t b = 0; b < m.nb; ++b) {
    if constexpr (K == kQ4_1) {
      const BlockQ8_1& a = reinterpret_cast<const BlockQ8_1*>(act_row)[b];
      d[b] = fp16_to_fp32(a.d);
      s[b] = fp16_to_fp32(a.s);
    } else {
      const BlockQ8_0& a = reinterpret_cast<const BlockQ8_0*>(act_row)[b];
      d[b] = fp16_to_fp32(a.d);
      corr[b] = (K == kQ4_0 ? 8 : 128) * block_sum(a.qs);
    }
  }
}

constexpr size_t act_block_bytes(int K) { return K == kQ4_1 ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0); }
constexpr size_t w_block_bytes(int K) {
  return K == kQ4_0 ? sizeof(BlockQ4_0) : K == kQ4_1 ? sizeof(BlockQ4_1) : sizeof(BlockQ8_0);
}
constexpr size_t act_qs_offset(int K) { return K == kQ4_1 ? offsetof(BlockQ8_1, qs) : offsetof(BlockQ8_0, qs); }

}  // namespace
}  // namespace parallama::x16
