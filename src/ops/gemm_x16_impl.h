// Kernels for x16-repacked weights (layout in repack.h), one token or a prompt
// batch. Included once per ISA TU with PL_X16_NS (namespace) and PL_X16_VNNI
// (1: vpdpbusd, 0: vpmaddubsw + vpmaddwd; the latter only for 4-bit weights, whose
// pairwise int16 sums cannot saturate).
//
// Per block, each 32-bit lane of a weight register holds four weights of one row,
// so eight u8 x s8 dot-product steps against broadcast activation quads give the
// 16 rows' integer block sums in 16 lanes. Unsigned storage (nibbles, or Q8 + 128)
// is corrected with the activation block sum: isum - off * sum(a). The 16 scales
// of a block are one f16 load. Weights of a block are unpacked once and reused for
// up to 4 tokens.
//
// With GemmArgs::y64 set the block terms d_w*d_a*isum (+ m*s) are accumulated in
// double instead: each term is exact there (f16 x f16 scales are exact in f32, and
// times a < 2^21 integer exact in f64), so the sum hardly depends on the order and
// column splits of a row give the same float after rounding (tensor parallelism).
// GCC 12 warns falsely inside its own AVX-512 intrinsic headers (_mm512_undefined_*).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <cstddef>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "ops/gemm_x16_driver.h"
#include "ops/gemm_x16_meta.h"
#include "ops/quant_blocks.h"
#include "ops/quant_kernels.h"

namespace parallama::PL_X16_NS {
namespace {

using namespace x16;

inline __m512i dot4(__m512i acc, __m512i u, __m512i s) {
#if PL_X16_VNNI
  return _mm512_dpbusd_epi32(acc, u, s);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}

inline __m512i bcast4(const int8_t* p) {
  int v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// No software prefetch: a task's groups are one sequential stream that the hardware
// prefetcher follows. Measured on Zen 4 over the 135M model's matmul sequence (one
// thread, alternating with a plain read of the same bytes): prefetching 4 blocks
// ahead into L1 streamed at 0.76-0.87 of the plain read, none at 0.96-1.02
// (tools/microbench/stream_ratio_bench.cpp).
// One group of 16 rows x NT tokens over all nb blocks.
//   gw:  the group's packed bytes; act[t]: token t's activation row; y[t] / y64[t]: 16 outputs.
template <int K, int NT, bool kExact>
void tile(const uint8_t* gw, const ActMeta& m, const uint8_t* const* act, float* const* y, double* const* y64) {
  constexpr size_t BB = w_block_bytes(K) * 16;  // bytes per block of the group
  constexpr size_t QS = K == kQ4_1 ? 64 : 32;   // offset of qs in a block group
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
    const uint8_t* base = gw + b * BB;
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base)));
    __m512 mw = _mm512_setzero_ps();
    if constexpr (K == kQ4_1) mw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + 32)));
    const uint8_t* qs = base + QS;
    // The empty asm after each load keeps the loads in address order. GCC 12 hoisted
    // the Q8_0 block's last load (which reaches into the next group) ahead of the
    // others in the exact tile, and that stream ran at 0.70-0.76 of the in-order one
    // out of memory on Zen 4 (one thread; the same loop in cache was as fast).
    __m512i w[8];
    if constexpr (K == kQ8_0) {
      for (int k = 0; k < 8; ++k) {
        w[k] = _mm512_loadu_si512(qs + 64 * k);
        __asm__ volatile("" : "+v"(w[k]));
      }
    } else {
      for (int c = 0; c < 4; ++c) {
        __m512i v = _mm512_loadu_si512(qs + 64 * c);
        __asm__ volatile("" : "+v"(v));
        w[c] = _mm512_and_si512(v, m4);
        w[4 + c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      }
    }
    for (int t = 0; t < NT; ++t) {
      const int8_t* aq = reinterpret_cast<const int8_t*>(act[t] + b * act_block_bytes(K) + act_qs_offset(K));
      __m512i s0 = dot4(_mm512_setzero_si512(), w[0], bcast4(aq));
      __m512i s1 = dot4(_mm512_setzero_si512(), w[1], bcast4(aq + 4));
      s0 = dot4(s0, w[2], bcast4(aq + 8));
      s1 = dot4(s1, w[3], bcast4(aq + 12));
      s0 = dot4(s0, w[4], bcast4(aq + 16));
      s1 = dot4(s1, w[5], bcast4(aq + 20));
      s0 = dot4(s0, w[6], bcast4(aq + 24));
      s1 = dot4(s1, w[7], bcast4(aq + 28));
      __m512i isum = _mm512_add_epi32(s0, s1);
      const int64_t mi = t * nb + b;
      if constexpr (K != kQ4_1) isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(m.corr[mi]));
      const __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(m.d[mi]));
      if constexpr (!kExact) {
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), sc, acc[t]);
        if constexpr (K == kQ4_1) acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(m.s[mi]), acc[t]);
      } else {
        acc_lo[t] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(isum)),
                                    _mm512_cvtps_pd(_mm512_castps512_ps256(sc)), acc_lo[t]);
        acc_hi[t] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(isum, 1)),
                                    _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sc), 1))),
                                    acc_hi[t]);
        if constexpr (K == kQ4_1) {
          const __m512 ms = _mm512_mul_ps(mw, _mm512_set1_ps(m.s[mi]));  // f16 x f16: exact
          acc_lo[t] = _mm512_add_pd(acc_lo[t], _mm512_cvtps_pd(_mm512_castps512_ps256(ms)));
          acc_hi[t] = _mm512_add_pd(acc_hi[t],
                                    _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(ms), 1))));
        }
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

// Rows [r0, r1) of x16 groups for every token (gemm_x16_driver.h).
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

inline void fill_x16_kernels(KernelTable& k) {
  k.t[SLOT_Q4_0].gemm_x16 = gemm_x16<kQ4_0>;
  k.t[SLOT_Q4_1].gemm_x16 = gemm_x16<kQ4_1>;
#if PL_X16_VNNI
  k.t[SLOT_Q8_0].gemm_x16 = gemm_x16<kQ8_0>;  // u8 up to 255: vpmaddubsw pairs would saturate
#endif
}

}  // namespace parallama::PL_X16_NS
