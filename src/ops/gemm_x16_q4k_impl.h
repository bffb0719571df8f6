// Kernel for x16-repacked Q4_K weights (layout in repack_q4k.h) against Q8_K
// activations, one token or a prompt batch. Included once per ISA TU with
// PL_X16K_NS (namespace) and PL_X16K_VNNI (1: vpdpbusd / vpdpwssd, 0: vpmaddubsw +
// vpmaddwd; nibble x int8 pair sums cannot saturate int16).
//
// Per super-block of a 16-row group: each 32-bit lane of a weight register holds four
// nibbles of one row, so eight u8 x s8 dot-product steps against broadcast activation
// quads give the 16 rows' sums of one 32-element sub-block, which are multiplied by
// the 16 per-row sub-block scales (int32, exact) and added up. The min term is
// sum_j mn[j] * (activation sum of sub-block j): with the mins widened to int16 pairs
// (sub-blocks 2p, 2p+1 of a row in one lane) it is four vpmaddwd against broadcast
// int16 pairs of activation sums. Per super-block and token:
//   y += d * da * sumi - dmin * da * summ
// Weights (nibbles, scales, mins) are unpacked once per super-block and reused by up
// to 4 tokens.
//
// With GemmArgs::y64 set each super-block term is computed in double from the exact
// integers and the f16/f32 scales (the same arithmetic whatever the column split) and
// accumulated in double.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "ops/gemm_x16_driver.h"
#include "ops/quant_blocks.h"
#include "ops/quant_kernels.h"
#include "ops/repack_q4k.h"
#include "ops/gemm_x16_q4k_meta.h"

namespace parallama::PL_X16K_NS {
namespace {

using namespace x16k;

constexpr int kMaxTok = 4;
constexpr size_t kGB = kQ4KGroupBlockBytes;  // bytes of one super-block of a group

inline __m512i dot4(__m512i acc, __m512i u, __m512i s) {
#if PL_X16K_VNNI
  return _mm512_dpbusd_epi32(acc, u, s);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}

inline __m512i dot2w(__m512i acc, __m512i a, __m512i b) {
#if PL_X16K_VNNI
  return _mm512_dpwssd_epi32(acc, a, b);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

inline __m512i bcast4(const int8_t* p) {
  int v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// The two 64-byte value vectors of a 96-byte 6-bit code (repack_q4k.h).
inline void decode6(const uint8_t* in, __m512i& lo, __m512i& hi) {
  const __m512i L = _mm512_loadu_si512(in);
  const __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 64)));
  // Top bits of byte P sit at bits 2(P/32) (first vector) and 4 + 2(P/32) (second):
  // move them to bits 4-5. Word shifts are fine: the 0x30 mask drops what crosses bytes.
  const __m512i up = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i down = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  const __m512i m0f = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  lo = _mm512_or_si512(_mm512_and_si512(L, m0f), _mm512_and_si512(_mm512_sllv_epi16(H, up), m30));
  hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m0f),
                       _mm512_and_si512(_mm512_srlv_epi16(H, down), m30));
}

// One group of 16 rows x NT tokens over all nb super-blocks.
//   gw: the group's packed bytes; act[t]: token t's Q8_K row; y[t] / y64[t]: 16 outputs.
template <int NT, bool kExact>
void tile(const uint8_t* gw, const ActMetaK& m, const uint8_t* const* act, float* const* y, double* const* y64) {
  const int64_t nb = m.nb;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NT];
  __m512d acc_lo[NT], acc_hi[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm512_setzero_ps();
    acc_lo[t] = _mm512_setzero_pd();
    acc_hi[t] = _mm512_setzero_pd();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* base = gw + b * kGB;
    // No software prefetch: a task's groups are one sequential stream, and measured on
    // Zen 4 prefetching 1-4 super-blocks ahead was 15-25% slower than none.
    __m512i s_lo, s_hi, m_lo, m_hi;
    decode6(base + 64, s_lo, s_hi);
    decode6(base + 160, m_lo, m_hi);
    // Spelled out: the lane index must be an immediate even in unoptimised (sanitizer) builds.
    const __m512i sc[8] = {_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(s_lo, 0)),
                           _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(s_lo, 1)),
                           _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(s_lo, 2)),
                           _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(s_lo, 3)),
                           _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(s_hi, 0)),
                           _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(s_hi, 1)),
                           _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(s_hi, 2)),
                           _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(s_hi, 3))};
    const __m512i mp[4] = {_mm512_cvtepu8_epi16(_mm512_castsi512_si256(m_lo)),
                           _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(m_lo, 1)),
                           _mm512_cvtepu8_epi16(_mm512_castsi512_si256(m_hi)),
                           _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(m_hi, 1))};
    __m512i sumi[NT], summ[NT];
    const int8_t* aq[NT];
    for (int t = 0; t < NT; ++t) {
      const int32_t* ps = m.pair_sums + 4 * (t * nb + b);
      __m512i s = _mm512_madd_epi16(mp[0], _mm512_set1_epi32(ps[0]));
      s = dot2w(s, mp[1], _mm512_set1_epi32(ps[1]));
      s = dot2w(s, mp[2], _mm512_set1_epi32(ps[2]));
      summ[t] = dot2w(s, mp[3], _mm512_set1_epi32(ps[3]));
      sumi[t] = _mm512_setzero_si512();
      aq[t] = reinterpret_cast<const int8_t*>(act[t] + b * sizeof(BlockQ8_K) + offsetof(BlockQ8_K, qs));
    }
    const uint8_t* qs = base + 256;
    for (int c = 0; c < 4; ++c) {
      __m512i wl[8], wh[8];
      for (int i = 0; i < 8; ++i) {
        const __m512i v = _mm512_loadu_si512(qs + 64 * (8 * c + i));
        wl[i] = _mm512_and_si512(v, m4);
        wh[i] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      }
      for (int t = 0; t < NT; ++t) {
        const int8_t* a = aq[t] + 64 * c;
        __m512i l0 = dot4(_mm512_setzero_si512(), wl[0], bcast4(a));
        __m512i h0 = dot4(_mm512_setzero_si512(), wh[0], bcast4(a + 32));
        __m512i l1 = dot4(_mm512_setzero_si512(), wl[1], bcast4(a + 4));
        __m512i h1 = dot4(_mm512_setzero_si512(), wh[1], bcast4(a + 36));
        for (int i = 2; i < 8; i += 2) {
          l0 = dot4(l0, wl[i], bcast4(a + 4 * i));
          h0 = dot4(h0, wh[i], bcast4(a + 32 + 4 * i));
          l1 = dot4(l1, wl[i + 1], bcast4(a + 4 * i + 4));
          h1 = dot4(h1, wh[i + 1], bcast4(a + 36 + 4 * i));
        }
        const __m512i pl = _mm512_mullo_epi32(_mm512_add_epi32(l0, l1), sc[2 * c]);
        const __m512i ph = _mm512_mullo_epi32(_mm512_add_epi32(h0, h1), sc[2 * c + 1]);
        sumi[t] = _mm512_add_epi32(sumi[t], _mm512_add_epi32(pl, ph));
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base)));
    const __m512 dmw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + 32)));
    for (int t = 0; t < NT; ++t) {
      const float da = m.d[t * nb + b];
      if constexpr (!kExact) {
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]), _mm512_mul_ps(dw, _mm512_set1_ps(da)), acc[t]);
        acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(summ[t]), _mm512_mul_ps(dmw, _mm512_set1_ps(da)), acc[t]);
      } else {
        // f16 x f32 scale products are exact in double; one rounding in the fmsub.
        const __m512d dad = _mm512_set1_pd(da);
        const __m512d d_lo = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(dw)), dad);
        const __m512d d_hi = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(dw, 1)), dad);
        const __m512d m_lo_d = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(dmw)), dad);
        const __m512d m_hi_d = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(dmw, 1)), dad);
        const __m512d mlo = _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(summ[t])), m_lo_d);
        const __m512d mhi = _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(summ[t], 1)), m_hi_d);
        acc_lo[t] = _mm512_add_pd(acc_lo[t],
                                  _mm512_fmsub_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(sumi[t])), d_lo, mlo));
        acc_hi[t] = _mm512_add_pd(
            acc_hi[t], _mm512_fmsub_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(sumi[t], 1)), d_hi, mhi));
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    if constexpr (kExact) {
      _mm512_storeu_pd(y64[t], acc_lo[t]);
      _mm512_storeu_pd(y64[t] + 8, acc_hi[t]);
    } else {
      _mm512_storeu_ps(y[t], acc[t]);
    }
  }
}

template <bool kExact>
void tile_nt(int nt, const uint8_t* gw, const ActMetaK& m, const uint8_t* const* act, float* const* y,
             double* const* y64) {
  switch (nt) {
    case 1: tile<1, kExact>(gw, m, act, y, y64); break;
    case 2: tile<2, kExact>(gw, m, act, y, y64); break;
    case 3: tile<3, kExact>(gw, m, act, y, y64); break;
    default: tile<4, kExact>(gw, m, act, y, y64); break;
  }
}

// Rows [r0, r1) of x16 groups for every token (gemm_x16_driver.h).
void gemm_x16_q4_k(const GemmArgs& g, int64_t r0, int64_t r1) {
  thread_local ActMetaK meta;
  meta.resize(g.n_cols / QK_K);
  x16::drive<kMaxTok>(
      g, r0, r1, [&](int t, const uint8_t* a) { fill_meta(meta, t, a); },
      [&](int nt, bool exact, const uint8_t* gw, const uint8_t* const* act, float* const* y, double* const* y64) {
        if (exact) tile_nt<true>(nt, gw, meta, act, y, y64);
        else tile_nt<false>(nt, gw, meta, act, y, y64);
      });
}

}  // namespace

inline void fill_x16_q4k_kernels(KernelTable& k) { k.t[SLOT_Q4_K].gemm_x16 = gemm_x16_q4_k; }

}  // namespace parallama::PL_X16K_NS
