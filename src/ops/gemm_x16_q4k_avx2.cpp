// x16 Q4_K kernel (layout in repack_q4k.h) in 256-bit AVX2, for CPUs without
// AVX-512.
//
// As in gemm_x16_avx2.cpp a 64-byte chunk is two registers of 8 rows, so a
// group is done as two halves of 8 rows, each over all super-blocks (the second
// half reads the group again from L1/L2). Per 32-element sub-block, eight
// vpmaddubsw steps (nibble x int8 pair sums <= 2 * 15 * 128) add up in int16
// without saturating (8 * 3840 = 30720), and one vpmaddwd against the row
// scales duplicated into both int16 halves of a lane widens and scales them at
// once. The min term and the float and double (GemmArgs::y64) arithmetic per
// row are those of gemm_x16_q4k_impl.h, so a row's result has the same bits as
// the AVX-512 kernel's.
#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "ops/gemm_x16_driver.h"
#include "ops/gemm_x16_q4k_meta.h"
#include "ops/quant_kernels.h"
#include "ops/repack_q4k.h"

namespace parallama::x16q4k_avx2 {
namespace {

using namespace x16k;

// Tokens per tile: per token two int16 and one int32 accumulators stay in
// registers through the sub-block loop; 3 tokens leave room for the weight and
// broadcast registers in the 16 of AVX2.
constexpr int kTok = 3;
constexpr size_t kGB = kQ4KGroupBlockBytes;

inline __m256i load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

inline __m256i bcast4(const int8_t* p) {
  int v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The 128 values of a 96-byte 6-bit code (repack_q4k.h) into out[0..127].
inline void decode6(const uint8_t* in, uint8_t* out) {
  const __m256i l0 = load(in), l1 = load(in + 32), h = load(in + 64);
  const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  // Values P < 32 take H bits 0-1, 32 <= P < 64 bits 2-3, then 4-5 and 6-7 for
  // the second 64: moved to bits 4-5 (word shifts; the 0x30 mask drops what
  // crosses bytes).
  const __m256i v0 = _mm256_or_si256(_mm256_and_si256(l0, m0f), _mm256_and_si256(_mm256_slli_epi16(h, 4), m30));
  const __m256i v1 = _mm256_or_si256(_mm256_and_si256(l1, m0f), _mm256_and_si256(_mm256_slli_epi16(h, 2), m30));
  const __m256i v2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m0f), _mm256_and_si256(h, m30));
  const __m256i v3 =
      _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m0f), _mm256_and_si256(_mm256_srli_epi16(h, 2), m30));
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), v0);
  _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32), v1);
  _mm256_store_si256(reinterpret_cast<__m256i*>(out + 64), v2);
  _mm256_store_si256(reinterpret_cast<__m256i*>(out + 96), v3);
}

// Rows 8h..8h+7 of one group x NT tokens over all nb super-blocks.
template <int NT, bool kExact>
void half_tile(int h, const uint8_t* gw, const ActMetaK& m, const uint8_t* const* act, float* const* y,
               double* const* y64) {
  const int64_t nb = m.nb;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[NT];
  __m256d acc_lo[NT], acc_hi[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm256_setzero_ps();
    acc_lo[t] = acc_hi[t] = _mm256_setzero_pd();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* base = gw + b * kGB;
    if constexpr (NT == 1) {
      // Decode: the first half prefetches 2 KiB ahead, the second (from L1/L2,
      // where memory would idle) the next group's super-block. Zen 3, one thread,
      // tools/microbench/stream_ratio_bench.cpp 12 1 1: 0.61-0.67 of a plain read
      // without, 0.74-0.77 with the second alone, 0.77-0.79 with both.
      const uint8_t* pf = h == 0 ? base + 2048 : base + nb * kGB;
      for (size_t o = 0; o < kGB; o += 64) _mm_prefetch(reinterpret_cast<const char*>(pf + o), _MM_HINT_T0);
    }
    alignas(32) uint8_t sv[128], mv[128];
    decode6(base + 64, sv);
    decode6(base + 160, mv);
    // Scale of sub-block j of row 8h + r at sv[16j + 8h + r]; in both int16
    // halves of lane r.
    __m256i sc[8];
    for (int j = 0; j < 8; ++j) {
      const __m256i s = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sv + 16 * j + 8 * h)));
      sc[j] = _mm256_or_si256(s, _mm256_slli_epi32(s, 16));
    }
    __m256i sumi[NT];
    const int8_t* aq[NT];
    for (int t = 0; t < NT; ++t) {
      sumi[t] = _mm256_setzero_si256();
      aq[t] = reinterpret_cast<const int8_t*>(act[t] + b * sizeof(BlockQ8_K) + offsetof(BlockQ8_K, qs));
    }
    const uint8_t* qs = base + 256 + 32 * h;
    // One sub-block at a time (low nibbles of the chunks, then high), so that a
    // token needs one int16 accumulator: the chunks are loaded twice, from L1.
    for (int j = 0; j < 8; ++j) {
      const uint8_t* q = qs + 64 * 8 * (j / 2);
      const int shift = 4 * (j % 2);
      __m256i s16[NT];
      for (int t = 0; t < NT; ++t) s16[t] = _mm256_setzero_si256();
      for (int i = 0; i < 8; ++i) {
        const __m256i w = _mm256_and_si256(_mm256_srl_epi16(load(q + 64 * i), _mm_cvtsi32_si128(shift)), m4);
        for (int t = 0; t < NT; ++t)
          s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(w, bcast4(aq[t] + 32 * j + 4 * i)));
      }
      for (int t = 0; t < NT; ++t) sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(s16[t], sc[j]));
    }
    // The min terms after the sub-block loop, whose registers they would take.
    __m256i summ[NT];
    for (int t = 0; t < NT; ++t) {
      // Mins of sub-blocks 2p, 2p+1 of row 8h + r at mv[32p + 16h + 2r + {0, 1}].
      const int32_t* ps = m.pair_sums + 4 * (t * nb + b);
      __m256i s = _mm256_setzero_si256();
      for (int p = 0; p < 4; ++p) {
        const __m256i mp = _mm256_cvtepu8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(mv + 32 * p + 16 * h)));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(mp, _mm256_set1_epi32(ps[p])));
      }
      summ[t] = s;
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(base + 16 * h)));
    const __m256 dmw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(base + 32 + 16 * h)));
    for (int t = 0; t < NT; ++t) {
      const float da = m.d[t * nb + b];
      if constexpr (!kExact) {
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[t]), _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc[t]);
        acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(summ[t]), _mm256_mul_ps(dmw, _mm256_set1_ps(da)), acc[t]);
      } else {
        // f16 x f32 scale products are exact in double; one rounding in the
        // fmsub.
        const __m256d dad = _mm256_set1_pd(da);
        const __m256d d_lo = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(dw)), dad);
        const __m256d d_hi = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(dw, 1)), dad);
        const __m256d n_lo = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(dmw)), dad);
        const __m256d n_hi = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(dmw, 1)), dad);
        const __m256d mlo = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(summ[t])), n_lo);
        const __m256d mhi = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(summ[t], 1)), n_hi);
        acc_lo[t] =
            _mm256_add_pd(acc_lo[t], _mm256_fmsub_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(sumi[t])), d_lo, mlo));
        acc_hi[t] = _mm256_add_pd(acc_hi[t],
                                  _mm256_fmsub_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(sumi[t], 1)), d_hi, mhi));
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    if constexpr (kExact) {
      _mm256_storeu_pd(y64[t] + 8 * h, acc_lo[t]);
      _mm256_storeu_pd(y64[t] + 8 * h + 4, acc_hi[t]);
    } else {
      _mm256_storeu_ps(y[t] + 8 * h, acc[t]);
    }
  }
}

template <bool kExact>
void tile_nt(int nt, const uint8_t* gw, const ActMetaK& m, const uint8_t* const* act, float* const* y,
             double* const* y64) {
  for (int h = 0; h < 2; ++h) {
    switch (nt) {
      case 1:
        half_tile<1, kExact>(h, gw, m, act, y, y64);
        break;
      case 2:
        half_tile<2, kExact>(h, gw, m, act, y, y64);
        break;
      default:
        half_tile<3, kExact>(h, gw, m, act, y, y64);
        break;
    }
  }
}

void gemm_x16_q4_k(const GemmArgs& g, int64_t r0, int64_t r1) {
  thread_local ActMetaK meta;
  meta.resize(g.n_cols / QK_K);
  x16::drive<kTok>(
      g, r0, r1, [&](int t, const uint8_t* a) { fill_meta(meta, t, a); },
      [&](int nt, bool exact, const uint8_t* gw, const uint8_t* const* act, float* const* y, double* const* y64) {
        if (exact)
          tile_nt<true>(nt, gw, meta, act, y, y64);
        else
          tile_nt<false>(nt, gw, meta, act, y, y64);
      });
}

}  // namespace
}  // namespace parallama::x16q4k_avx2

namespace parallama {
void fill_x16_q4k_avx2_kernels(KernelTable& k) { k.t[SLOT_Q4_K].gemm_x16 = x16q4k_avx2::gemm_x16_q4_k; }
}  // namespace parallama
