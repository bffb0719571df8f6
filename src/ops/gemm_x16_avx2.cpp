// x16 kernels (layout in repack.h) in 256-bit AVX2, for CPUs without AVX-512.
//
// A 64-byte chunk of a block group holds four weights of each of 16 rows; here
// it is two registers of 8 rows, so a prompt tile does a group as two halves of
// 8 rows, each over all blocks (the second half's bytes come from L1: a group of
// the 135M model is 6-15 KiB); decode does both halves per block. Per block and half, eight vpmaddubsw steps against
// broadcast activation quads give int16 pair sums per row lane; for 4-bit
// weights (<= 15) times int8 activations (|a| <= 127) eight of them add up
// without saturating (8 * 2 * 15 * 127 = 30480), so one vpmaddwd per block turns
// them into the rows' int32 block sums. Q8_0 (stored + 128) is flipped back to
// signed and multiplied as |w| x sign(a, w), each step widened at once (pairs
// reach 2 * 128 * 127). Scales, the unsigned-storage correction and the double
// (GemmArgs::y64) accumulation are as in gemm_x16_impl.h, so each term is the
// same exact value and a row's float result matches the AVX-512 kernels' up to
// float summation order.
#include <immintrin.h>

#include <cstring>

#include "ops/gemm_x16_driver.h"
#include "ops/gemm_x16_meta.h"
#include "ops/quant_kernels.h"

namespace parallama::x16_avx2 {
namespace {

using namespace x16;

inline __m256i bcast4(const int8_t* p) {
  int v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

inline __m256i load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// The 8 int32 block sums (before the unsigned-storage correction) of half h
// (rows 8h..8h+7) of block group `base`, against activation quads aq.
template <int K>
inline __m256i block_isum(const uint8_t* qs, const int8_t* aq) {
  if constexpr (K == kQ8_0) {
    const __m256i flip = _mm256_set1_epi8(-128);
    __m256i acc = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
      const __m256i w = _mm256_xor_si256(load(qs + 64 * k), flip);
      const __m256i a = bcast4(aq + 4 * k);
      const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    }
    return acc;
  } else {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i s16 = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i v = load(qs + 64 * c);
      const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo, bcast4(aq + 4 * c)));
      s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi, bcast4(aq + 16 + 4 * c)));
    }
    return _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
  }
}

// Decode (NT = 1) does both halves in one pass over the blocks and prefetches
// 2 KiB ahead. On Zen 3, one thread, tools/microbench/stream_ratio_bench.cpp
// (135M-shape decode matmuls against a plain read): a half per pass streamed at
// 0.65 (Q4_0, Q4_1) and 0.72 (Q8_0) of the read, where the second pass, from L1,
// leaves memory idle; one pass at 0.69-0.74 / 0.78; with the prefetch 0.89-0.93
// (0.83-0.86 with two threads). 1 KiB ahead gave 0.81-0.89, 4 KiB 0.87-0.88.
// (The Zen 4 finding in gemm_x16_impl.h, no software prefetch, is for AVX-512.)
constexpr size_t kPfBytes = 2048;

// One group of 16 rows x NT tokens over all nb blocks (as gemm_x16_impl.h's tile).
template <int K, int NT, bool kExact>
void tile(const uint8_t* gw, const ActMeta& m, const uint8_t* const* act, float* const* y, double* const* y64) {
  constexpr size_t BB = w_block_bytes(K) * 16;  // bytes per block of the group
  constexpr size_t QS = K == kQ4_1 ? 64 : 32;   // offset of qs in a block group
  constexpr int HS = NT == 1 ? 2 : 1;           // halves per pass over the blocks
  const int64_t nb = m.nb;
  for (int h0 = 0; h0 < 2; h0 += HS) {
    __m256 acc[HS][NT];
    __m256d acc_lo[HS][NT], acc_hi[HS][NT];
    for (int j = 0; j < HS; ++j)
      for (int t = 0; t < NT; ++t) {
        acc[j][t] = _mm256_setzero_ps();
        acc_lo[j][t] = acc_hi[j][t] = _mm256_setzero_pd();
      }
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* base = gw + b * BB;
      if constexpr (NT == 1)  // decode: a block group's bytes, 2 KiB ahead
        for (size_t o = 0; o < BB; o += 64) _mm_prefetch(reinterpret_cast<const char*>(base + kPfBytes + o), _MM_HINT_T0);
      for (int j = 0; j < HS; ++j) {
        const int h = h0 + j;
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(base + 16 * h)));
        __m256 mw = _mm256_setzero_ps();
        if constexpr (K == kQ4_1)
          mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(base + 32 + 16 * h)));
        const uint8_t* qs = base + QS + 32 * h;
        for (int t = 0; t < NT; ++t) {
          const int8_t* aq = reinterpret_cast<const int8_t*>(act[t] + b * act_block_bytes(K) + act_qs_offset(K));
          __m256i isum = block_isum<K>(qs, aq);
          const int64_t mi = t * nb + b;
          if constexpr (K == kQ4_0) isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(m.corr[mi]));
          const __m256 sc = _mm256_mul_ps(dw, _mm256_set1_ps(m.d[mi]));
          if constexpr (!kExact) {
            acc[j][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), sc, acc[j][t]);
            if constexpr (K == kQ4_1) acc[j][t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(m.s[mi]), acc[j][t]);
          } else {
            acc_lo[j][t] = _mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(isum)),
                                           _mm256_cvtps_pd(_mm256_castps256_ps128(sc)), acc_lo[j][t]);
            acc_hi[j][t] = _mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(isum, 1)),
                                           _mm256_cvtps_pd(_mm256_extractf128_ps(sc, 1)), acc_hi[j][t]);
            if constexpr (K == kQ4_1) {
              const __m256 ms = _mm256_mul_ps(mw, _mm256_set1_ps(m.s[mi]));  // f16 x f16: exact
              acc_lo[j][t] = _mm256_add_pd(acc_lo[j][t], _mm256_cvtps_pd(_mm256_castps256_ps128(ms)));
              acc_hi[j][t] = _mm256_add_pd(acc_hi[j][t], _mm256_cvtps_pd(_mm256_extractf128_ps(ms, 1)));
            }
          }
        }
      }
    }
    for (int j = 0; j < HS; ++j) {
      const int h = h0 + j;
      for (int t = 0; t < NT; ++t) {
        if constexpr (kExact) {
          _mm256_storeu_pd(y64[t] + 8 * h, acc_lo[j][t]);
          _mm256_storeu_pd(y64[t] + 8 * h + 4, acc_hi[j][t]);
        } else {
          _mm256_storeu_ps(y[t] + 8 * h, acc[j][t]);
        }
      }
    }
  }
}

template <int K, bool kExact>
void tile_nt(int nt, const uint8_t* gw, const ActMeta& m, const uint8_t* const* act, float* const* y,
             double* const* y64) {
  switch (nt) {
    case 1: tile<K, 1, kExact>(gw, m, act, y, y64); break;
    case 2: tile<K, 2, kExact>(gw, m, act, y, y64); break;
    case 3: tile<K, 3, kExact>(gw, m, act, y, y64); break;
    default: tile<K, 4, kExact>(gw, m, act, y, y64); break;
  }
}

template <int K>
void gemm_x16(const GemmArgs& g, int64_t r0, int64_t r1) {
  thread_local ActMeta meta;
  meta.resize(g.n_cols / QK);
  x16::drive<kMaxTok>(
      g, r0, r1, [&](int t, const uint8_t* a) { fill_meta<K>(meta, t, a); },
      [&](int nt, bool exact, const uint8_t* gw, const uint8_t* const* act, float* const* y, double* const* y64) {
        if (exact) tile_nt<K, true>(nt, gw, meta, act, y, y64);
        else tile_nt<K, false>(nt, gw, meta, act, y, y64);
      });
}

}  // namespace
}  // namespace parallama::x16_avx2

namespace parallama {
void fill_x16_avx2_kernels(KernelTable& k) {
  k.t[SLOT_Q4_0].gemm_x16 = x16_avx2::gemm_x16<x16::kQ4_0>;
  k.t[SLOT_Q4_1].gemm_x16 = x16_avx2::gemm_x16<x16::kQ4_1>;
  k.t[SLOT_Q8_0].gemm_x16 = x16_avx2::gemm_x16<x16::kQ8_0>;
}
}  // namespace parallama
