// SIMD exact (double-accumulated) dot products, see quant_exact.h. Included once
// per ISA translation unit with:
//   PL_EXACT_NS    namespace of this copy (avx2, avx512, avx512vnni)
//   PL_EXACT_VNNI  1: vpdpbusd, 0: vpmaddubsw + vpmaddwd
//   PL_EXACT_512   1: 512-bit registers (two 32-element blocks per integer dot,
//                  8 doubles per accumulator)
// Integer block dots are exact; each lane's int32 partial times the block's
// (exact) scale product is exact in double, so results differ from the scalar
// reference only by double rounding of the sums (order), ~1e-16 relative.
// Every row is computed the same way whether a call covers one row or many.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "ops/quant_blocks.h"
#include "ops/quant_exact.h"
#include "ops/scratch.h"
#if PL_EXACT_512
#include "ops/simd512_loads.h"
#endif

namespace parallama::PL_EXACT_NS {
namespace {

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
inline __m256i ld256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}
inline double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// acc + 4-wise sums of u8 x s8 products. Without VNNI the int16 pair step
// saturates past 32767: callers keep 2 * |u| * |s| below that.
inline __m256i dot_us(__m256i acc, __m256i u, __m256i s) {
#if PL_EXACT_VNNI
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}
// Signed x signed as |x| * sign(y, x): x may hold -128 (|x| read as u8 128), y not.
inline __m256i dot_ss(__m256i acc, __m256i x, __m256i y) {
  return dot_us(acc, _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}
// 16 bytes of nibbles -> 32 values, low nibbles first (element order of Q4_0/Q4_1).
inline __m256i nibbles32(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

#if PL_EXACT_512
inline __m512i dot_us512(__m512i acc, __m512i u, __m512i s) {
#if PL_EXACT_VNNI
  return _mm512_dpbusd_epi32(acc, u, s);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}
// Signed x signed as |x| * sign(y, x): x may hold -128, y not.
inline __m512i dot_ss512(__m512i x, __m512i y) {
  const __mmask64 neg = _mm512_movepi8_mask(x);
  return dot_us512(_mm512_setzero_si512(), _mm512_abs_epi8(x), _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y));
}
using simd512::load2x32;
using simd512::nibbles64;
#endif

// ---- the 32-element block types ------------------------------------------------------

// Integer dot of one block as 8 int32 lanes, per weight type.
struct Q40 {
  using W = BlockQ4_0;
  using A = BlockQ8_0;
  static constexpr bool kMin = false;
  static __m256i dot(const W& w, const A& a) {
    return dot_ss(_mm256_setzero_si256(), _mm256_sub_epi8(nibbles32(w.qs), _mm256_set1_epi8(8)), ld256(a.qs));
  }
#if PL_EXACT_512
  // Weights of blocks w[0], w[1] as 64 bytes; their dot with two activation blocks.
  static __m512i w2(const W* w) { return _mm512_sub_epi8(nibbles64(w[0].qs, w[1].qs), _mm512_set1_epi8(8)); }
  static __m512i dot2(__m512i wv, __m512i av) { return dot_ss512(wv, av); }
#endif
};
struct Q41 {
  using W = BlockQ4_1;
  using A = BlockQ8_1;
  static constexpr bool kMin = true;  // + m_w * s_a per block
  static __m256i dot(const W& w, const A& a) { return dot_us(_mm256_setzero_si256(), nibbles32(w.qs), ld256(a.qs)); }
#if PL_EXACT_512
  static __m512i w2(const W* w) { return nibbles64(w[0].qs, w[1].qs); }
  static __m512i dot2(__m512i wv, __m512i av) { return dot_us512(_mm512_setzero_si512(), wv, av); }
#endif
};
struct Q80 {
  using W = BlockQ8_0;
  using A = BlockQ8_0;
  static constexpr bool kMin = false;
  static __m256i dot(const W& w, const A& a) { return dot_ss(_mm256_setzero_si256(), ld256(w.qs), ld256(a.qs)); }
#if PL_EXACT_512
  static __m512i w2(const W* w) { return load2x32(w[0].qs, w[1].qs); }
  static __m512i dot2(__m512i wv, __m512i av) { return dot_ss512(wv, av); }
#endif
};

// Activation scales of a row as f32 (d, and s for Q8_1), expanded once per call.
template <class A>
void act_scales(const A* a, int64_t nb, float* ad, float* as) {
  for (int64_t b = 0; b < nb; ++b) ad[b] = h2f(a[b].d);
  if constexpr (std::is_same_v<A, BlockQ8_1>)
    for (int64_t b = 0; b < nb; ++b) as[b] = h2f(a[b].s);
}

constexpr int64_t kChunk = 16;  // blocks whose scales are prepared together

float* scale_scratch(size_t n) {
  thread_local ScratchBuf v;
  return v.f32(n);
}

#if PL_EXACT_512
// NR weight rows x NT tokens. Per (row, token): two double accumulators, block
// 2i of each pair into acc0 and 2i+1 into acc1 (lanes: the int32 partials of the
// block times its exact scale product), the m*s terms of a chunk added to them
// at the chunk start. The sequence of operations on one (row, token) does not
// depend on NR or NT, so a row's result is the same in any tile.
template <class T, int NR, int NT>
void tile(const uint8_t* const* wr, const typename T::A* const* a, const float* const* ad,
          const float* const* as, int64_t nb, double* const* y) {
  using W = typename T::W;
  alignas(64) double s[NR][NT][kChunk];
  __m512d acc0[NR][NT], acc1[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) acc0[r][t] = acc1[r][t] = _mm512_setzero_pd();
  for (int64_t c = 0; c < nb; c += kChunk) {
    const int64_t cnt = std::min(kChunk, nb - c);
    const __mmask16 k = static_cast<__mmask16>((1u << cnt) - 1);
    __m512 wd[NR], wm[NR];
    for (int r = 0; r < NR; ++r) {
      const __m512i h = simd512::load_head_u32x16(wr[r] + c * sizeof(W), sizeof(W), cnt);
      wd[r] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h));
      if constexpr (T::kMin) wm[r] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(h, 16)));
    }
    for (int t = 0; t < NT; ++t) {
      const __m512 adv = _mm512_maskz_loadu_ps(k, ad[t] + c);
      [[maybe_unused]] __m512 asv;
      if constexpr (T::kMin) asv = _mm512_maskz_loadu_ps(k, as[t] + c);
      for (int r = 0; r < NR; ++r) {
        const __m512 sc = _mm512_mul_ps(wd[r], adv);  // exact: 11 x 11 bits
        _mm512_store_pd(s[r][t], _mm512_cvtps_pd(_mm512_castps512_ps256(sc)));
        _mm512_store_pd(s[r][t] + 8, _mm512_cvtps_pd(_mm512_extractf32x8_ps(sc, 1)));
        if constexpr (T::kMin) {
          const __m512 ms = _mm512_mul_ps(wm[r], asv);
          acc0[r][t] = _mm512_add_pd(acc0[r][t], _mm512_cvtps_pd(_mm512_castps512_ps256(ms)));
          acc1[r][t] = _mm512_add_pd(acc1[r][t], _mm512_cvtps_pd(_mm512_extractf32x8_ps(ms, 1)));
        }
      }
    }
    int64_t i = 0;
    for (; i + 2 <= cnt; i += 2) {
      __m512i wv[NR];
      for (int r = 0; r < NR; ++r) wv[r] = T::w2(reinterpret_cast<const W*>(wr[r]) + c + i);
      for (int t = 0; t < NT; ++t) {
        const __m512i av = load2x32(a[t][c + i].qs, a[t][c + i + 1].qs);
        for (int r = 0; r < NR; ++r) {
          const __m512i p = T::dot2(wv[r], av);
          acc0[r][t] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(p)), _mm512_set1_pd(s[r][t][i]), acc0[r][t]);
          acc1[r][t] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(p, 1)), _mm512_set1_pd(s[r][t][i + 1]),
                                       acc1[r][t]);
        }
      }
    }
    if (i < cnt) {  // odd last block
      for (int t = 0; t < NT; ++t)
        for (int r = 0; r < NR; ++r) {
          const __m256i p = T::dot(reinterpret_cast<const W*>(wr[r])[c + i], a[t][c + i]);
          acc0[r][t] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(p), _mm512_set1_pd(s[r][t][i]), acc0[r][t]);
        }
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < NR; ++r) y[t][r] = _mm512_reduce_add_pd(_mm512_add_pd(acc0[r][t], acc1[r][t]));
}

template <class T, int NT>
void tile_nr(int nr, const uint8_t* const* wr, const typename T::A* const* a, const float* const* ad,
             const float* const* as, int64_t nb, double* const* y) {
  switch (nr) {
    case 1: tile<T, 1, NT>(wr, a, ad, as, nb, y); break;
    case 2: tile<T, 2, NT>(wr, a, ad, as, nb, y); break;
    case 3: tile<T, 3, NT>(wr, a, ad, as, nb, y); break;
    default: tile<T, 4, NT>(wr, a, ad, as, nb, y); break;
  }
}

// Tiles of 4 rows x 2 tokens over rows [0, n_rows) and all tokens.
template <class T>
void gemm_blk(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act, size_t act_stride,
              int64_t n_tok, double* y, int64_t y_stride) {
  using A = typename T::A;
  const int64_t nb = n / QK;
  float* buf = scale_scratch(static_cast<size_t>(2 * nb * n_tok));
  for (int64_t t = 0; t < n_tok; ++t)
    act_scales(reinterpret_cast<const A*>(act + t * act_stride), nb, buf + 2 * nb * t, buf + 2 * nb * t + nb);
  // One token (decode): a row at a time measured faster than 4-row tiles.
  const int64_t row_tile = n_tok == 1 ? 1 : 4;
  for (int64_t r0 = 0; r0 < n_rows; r0 += row_tile) {
    const int nr = static_cast<int>(std::min<int64_t>(row_tile, n_rows - r0));
    const uint8_t* wr[4];
    for (int r = 0; r < nr; ++r) wr[r] = w + (r0 + r) * w_stride;
    for (int64_t t0 = 0; t0 < n_tok; t0 += 2) {
      const int nt = static_cast<int>(std::min<int64_t>(2, n_tok - t0));
      const A* a[2];
      const float *ad[2], *as[2];
      double* yt[2];
      for (int t = 0; t < nt; ++t) {
        a[t] = reinterpret_cast<const A*>(act + (t0 + t) * act_stride);
        ad[t] = buf + 2 * nb * (t0 + t);
        as[t] = ad[t] + nb;
        yt[t] = y + (t0 + t) * y_stride + r0;
      }
      if (nt == 2) tile_nr<T, 2>(nr, wr, a, ad, as, nb, yt);
      else tile_nr<T, 1>(nr, wr, a, ad, as, nb, yt);
    }
  }
}

template <class T>
void rows_blk(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const void* act, double* y) {
  gemm_blk<T>(n, w, w_stride, n_rows, static_cast<const uint8_t*>(act), 0, 1, y, 0);
}
#else
// One row: sum over blocks of (d_w*d_a) * isum (+ m_w*s_a), in double.
template <class T>
double row_exact(const typename T::W* w, const typename T::A* a, int64_t nb, const float* ad, const float* as) {
  alignas(32) double s[kChunk];  // d_w * d_a per block of the chunk, exact
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd(), accm = _mm256_setzero_pd();
  for (int64_t c = 0; c < nb; c += kChunk) {
    const int64_t cnt = std::min(kChunk, nb - c);
    for (int64_t i = 0; i < cnt; ++i) s[i] = static_cast<double>(h2f(w[c + i].d) * ad[c + i]);
    if constexpr (T::kMin) {
      for (int64_t i = 0; i < cnt; i += 4) {
        double m[4] = {0, 0, 0, 0};
        for (int64_t j = i; j < std::min(cnt, i + 4); ++j) m[j - i] = static_cast<double>(h2f(w[c + j].m) * as[c + j]);
        accm = _mm256_add_pd(accm, _mm256_loadu_pd(m));
      }
    }
    for (int64_t i = 0; i < cnt; ++i) {
      const __m256i p = T::dot(w[c + i], a[c + i]);
      const __m256d sv = _mm256_set1_pd(s[i]);
      acc0 = _mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(p)), sv, acc0);
      acc1 = _mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(p, 1)), sv, acc1);
    }
  }
  return hsum_pd(_mm256_add_pd(_mm256_add_pd(acc0, acc1), accm));
}

template <class T>
void rows_blk(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const void* act, double* y) {
  using A = typename T::A;
  const int64_t nb = n / QK;
  float* buf = scale_scratch(static_cast<size_t>(2 * nb));
  const A* a = static_cast<const A*>(act);
  act_scales(a, nb, buf, buf + nb);
  for (int64_t r = 0; r < n_rows; ++r)
    y[r] = row_exact<T>(reinterpret_cast<const typename T::W*>(w + r * w_stride), a, nb, buf, buf + nb);
}
#endif

// ---- float weights: every product exact in double ----------------------------------------

// 8 weights as f32 from element i of a row of type F.
template <int F>  // 0 f32, 1 f16, 2 bf16
inline __m256 load8(const void* w, int64_t i) {
  if constexpr (F == 0) return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
  if constexpr (F == 1) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
template <int F>
inline float load1(const void* w, int64_t i) {
  if constexpr (F == 0) return static_cast<const float*>(w)[i];
  const uint16_t h = static_cast<const uint16_t*>(w)[i];
  if constexpr (F == 1) return h2f(h);
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

#if !PL_EXACT_512
template <int F>
double dot_float(int64_t n, const void* w, const void* va) {
  const float* a = static_cast<const float*>(va);
  int64_t i = 0;
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  for (; i + 8 <= n; i += 8) {
    const __m256 wv = load8<F>(w, i), av = _mm256_loadu_ps(a + i);
    s0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(wv)), _mm256_cvtps_pd(_mm256_castps256_ps128(av)), s0);
    s1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(wv, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(av, 1)), s1);
  }
  double s = hsum_pd(_mm256_add_pd(s0, s1));
  for (; i < n; ++i) s += static_cast<double>(load1<F>(w, i)) * a[i];
  return s;
}
#endif

#if PL_EXACT_512
// NR rows x NT tokens, per (row, token) every product exact in double: elements
// [i, i+8) into s0 and [i+8, i+16) into s1, the tail scalar. Each weight vector is
// widened once for NT tokens and each activation vector once for NR rows.
template <int F, int NR, int NT>
void ftile_exact(const uint8_t* const* w, const float* const* a, int64_t n, double* const* y) {
  __m512d s0[NR][NT], s1[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) s0[r][t] = s1[r][t] = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512d wl[NR], wh[NR];
    for (int r = 0; r < NR; ++r) {
      wl[r] = _mm512_cvtps_pd(load8<F>(w[r], i));
      wh[r] = _mm512_cvtps_pd(load8<F>(w[r], i + 8));
    }
    for (int t = 0; t < NT; ++t) {
      const __m512d al = _mm512_cvtps_pd(_mm256_loadu_ps(a[t] + i));
      const __m512d ah = _mm512_cvtps_pd(_mm256_loadu_ps(a[t] + i + 8));
      for (int r = 0; r < NR; ++r) {
        s0[r][t] = _mm512_fmadd_pd(wl[r], al, s0[r][t]);
        s1[r][t] = _mm512_fmadd_pd(wh[r], ah, s1[r][t]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) {
      double s = _mm512_reduce_add_pd(_mm512_add_pd(s0[r][t], s1[r][t]));
      for (int64_t j = i; j < n; ++j) s += static_cast<double>(load1<F>(w[r], j)) * a[t][j];
      y[t][r] = s;
    }
}

template <int F, int NT>
void ftile_exact_nr(int nr, const uint8_t* const* w, const float* const* a, int64_t n, double* const* y) {
  switch (nr) {
    case 1: ftile_exact<F, 1, NT>(w, a, n, y); break;
    case 2: ftile_exact<F, 2, NT>(w, a, n, y); break;
    case 3: ftile_exact<F, 3, NT>(w, a, n, y); break;
    default: ftile_exact<F, 4, NT>(w, a, n, y); break;
  }
}

// One token: a row at a time (interleaved row streams defeat the hardware
// prefetcher). Several: tiles of 4 rows x 2 tokens (16 double accumulators plus 8
// widened weight vectors fit the 32 registers), token pairs outer so that a pair's
// activations stay in L1 while the rows of the call (a few KiB each, in L2) pass.
template <int F>
void gemm_float(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act, size_t act_stride,
                int64_t n_tok, double* y, int64_t y_stride) {
  const int64_t row_tile = n_tok == 1 ? 1 : 4;
  for (int64_t t0 = 0; t0 < n_tok; t0 += 2) {
    const int nt = static_cast<int>(std::min<int64_t>(2, n_tok - t0));
    const float* a[2];
    for (int t = 0; t < nt; ++t) a[t] = reinterpret_cast<const float*>(act + (t0 + t) * act_stride);
    for (int64_t r0 = 0; r0 < n_rows; r0 += row_tile) {
      const int nr = static_cast<int>(std::min<int64_t>(row_tile, n_rows - r0));
      const uint8_t* wr[4];
      for (int r = 0; r < nr; ++r) wr[r] = w + (r0 + r) * w_stride;
      double* yt[2];
      for (int t = 0; t < nt; ++t) yt[t] = y + (t0 + t) * y_stride + r0;
      if (nt == 2) ftile_exact_nr<F, 2>(nr, wr, a, n, yt);
      else ftile_exact_nr<F, 1>(nr, wr, a, n, yt);
    }
  }
}

template <int F>
void rows_float(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const void* act, double* y) {
  gemm_float<F>(n, w, w_stride, n_rows, static_cast<const uint8_t*>(act), 0, 1, y, 0);
}
#else
template <int F>
void rows_float(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const void* act, double* y) {
  for (int64_t r = 0; r < n_rows; ++r) y[r] = dot_float<F>(n, w + r * w_stride, act);
}
#endif

// ---- K types: integer sums per super-block, then one double term ------------------------

// Sum of 32-element u8 x s8 dots, each 16-element half times its own int scale.
inline __m256i dot_us_scaled(__m256i u, __m256i s, int s_lo, int s_hi) {
#if PL_EXACT_VNNI
  const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
  return _mm256_mullo_epi32(p, _mm256_set_m128i(_mm_set1_epi32(s_hi), _mm_set1_epi32(s_lo)));
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(s_hi)),
                                                                          _mm_set1_epi16(static_cast<short>(s_lo))));
#endif
}
inline void unpack_k4_all(const uint8_t* scales, uint8_t* sc, uint8_t* mn) {
  for (int j = 0; j < 8; ++j) unpack_scale_min_k4(scales, j, &sc[j], &mn[j]);
}
inline int k_min_sum(const int16_t* bsums, const uint8_t* mn) {
  int s = 0;
  for (int j = 0; j < 8; ++j) s += mn[j] * (bsums[2 * j] + bsums[2 * j + 1]);
  return s;
}

template <bool kQ5>
double dot_k4(int64_t n, const void* vw, const void* va) {
  using W = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
  const W* w = static_cast<const W*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  double s = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    uint8_t sc[8], mn[8];
    unpack_k4_all(w[b].scales, sc, mn);
    __m256i sumi = _mm256_setzero_si256();
    [[maybe_unused]] __m256i qh;
    if constexpr (kQ5) qh = ld256(w[b].qh);
    for (int c = 0; c < 4; ++c) {
      const __m256i q = ld256(w[b].qs + 32 * c);
      __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kQ5) {
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
      }
      sumi = _mm256_add_epi32(sumi, dot_us_scaled(lo, ld256(a[b].qs + 64 * c), sc[2 * c], sc[2 * c]));
      sumi = _mm256_add_epi32(sumi, dot_us_scaled(hi, ld256(a[b].qs + 64 * c + 32), sc[2 * c + 1], sc[2 * c + 1]));
    }
    const double da = a[b].d;
    s += static_cast<double>(h2f(w[b].d)) * da * static_cast<double>(hsum_i32(sumi));
    s -= static_cast<double>(h2f(w[b].dmin)) * da * static_cast<double>(k_min_sum(a[b].bsums, mn));
  }
  return s;
}

// Group g (0..3) of half h of a Q6_K block: 32 unsigned 6-bit values.
inline __m256i q6k_group(__m256i ql0, __m256i ql1, __m256i qh, int g) {
  const __m256i ql = (g & 1) ? ql1 : ql0;
  const __m256i lo = _mm256_and_si256(g >= 2 ? _mm256_srli_epi16(ql, 4) : ql, _mm256_set1_epi8(0x0F));
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), _mm256_set1_epi8(3));
  return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
}

double dot_q6_k(int64_t n, const void* vw, const void* va) {
  const BlockQ6_K* w = static_cast<const BlockQ6_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  double s = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const int8_t* sc = w[b].scales;
    // Values are stored +32: subtract 32 * sum_i sc[i] * bsums[i].
    int corr = 0;
    for (int i = 0; i < 16; ++i) corr += sc[i] * a[b].bsums[i];
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = ld256(w[b].ql + 64 * h), ql1 = ld256(w[b].ql + 64 * h + 32), qh = ld256(w[b].qh + 32 * h);
      for (int g = 0; g < 4; ++g) {
        const int is = 8 * h + 2 * g;
        sumi = _mm256_add_epi32(sumi, dot_us_scaled(q6k_group(ql0, ql1, qh, g), ld256(a[b].qs + 128 * h + 32 * g),
                                                    sc[is], sc[is + 1]));
      }
    }
    const int64_t total = static_cast<int64_t>(hsum_i32(sumi)) - 32 * static_cast<int64_t>(corr);
    s += static_cast<double>(h2f(w[b].d)) * static_cast<double>(a[b].d) * static_cast<double>(total);
  }
  return s;
}

template <ExactDotFn F>
void rows_of(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const void* act, double* y) {
  for (int64_t r = 0; r < n_rows; ++r) y[r] = F(n, w + r * w_stride, act);
}

// A one-row call of the rows kernel: the same arithmetic as a batch of rows.
template <ExactRowsFn R, size_t kStride>
double dot_of(int64_t n, const void* w, const void* act) {
  double y;
  R(n, static_cast<const uint8_t*>(w), kStride, 1, act, &y);
  return y;
}

}  // namespace

inline void fill_exact_simd_kernels(ExactKernelTable& t) {
#if PL_EXACT_512
  t.k[0] = {dot_of<rows_float<0>, 0>, rows_float<0>, gemm_float<0>};
  t.k[1] = {dot_of<rows_float<1>, 0>, rows_float<1>, gemm_float<1>};
  t.k[2] = {dot_of<rows_float<2>, 0>, rows_float<2>, gemm_float<2>};
#else
  t.k[0] = {dot_float<0>, rows_float<0>, nullptr};
  t.k[1] = {dot_float<1>, rows_float<1>, nullptr};
  t.k[2] = {dot_float<2>, rows_float<2>, nullptr};
#endif
  t.k[3] = {dot_of<rows_blk<Q40>, 0>, rows_blk<Q40>, nullptr};
  t.k[4] = {dot_of<rows_blk<Q41>, 0>, rows_blk<Q41>, nullptr};
  t.k[5] = {dot_of<rows_blk<Q80>, 0>, rows_blk<Q80>, nullptr};
#if PL_EXACT_512
  t.k[3].gemm = gemm_blk<Q40>;
  t.k[4].gemm = gemm_blk<Q41>;
  t.k[5].gemm = gemm_blk<Q80>;
#endif
  t.k[6] = {dot_k4<false>, rows_of<dot_k4<false>>, nullptr};
  t.k[7] = {dot_k4<true>, rows_of<dot_k4<true>>, nullptr};
  t.k[8] = {dot_q6_k, rows_of<dot_q6_k>, nullptr};
}

}  // namespace parallama::PL_EXACT_NS
