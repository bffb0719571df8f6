// SIMD kernels shared by the AVX2, AVX-512 and AVX-512-VNNI translation units.
// Included once per ISA TU with:
//   PL_SIMD_NS    namespace for this copy (avx2, avx512, avx512vnni)
//   PL_SIMD_VNNI  1: int8 dot products with vpdpbusd, 0: vpmaddubsw + vpmaddwd
//   PL_SIMD_512   1: use 512-bit registers where a kernel has a wide variant
// Integer sums are exact; float results differ from the reference only in
// summation order. Dequantization is bit-exact with the reference (PL_NOFUSE
// keeps the compiler from fusing mul+add into an FMA, which would round differently).
// GCC 12 warns falsely inside its own AVX-512 intrinsic headers (_mm512_undefined_*).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "ops/quant_blocks.h"
#include "ops/quant_kernels.h"
#include "ops/scratch.h"
#if PL_SIMD_512
#include "ops/simd512_loads.h"
#endif

namespace parallama::PL_SIMD_NS {
namespace {

#if defined(__AVX512F__)
#define PL_NOFUSE(v) __asm__("" : "+v"(v))
#else
#define PL_NOFUSE(v) __asm__("" : "+x"(v))
#endif

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}
inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// acc + 4-wise sums of u8 x s8 products (int32 x 8). Without VNNI the pairwise int16
// step saturates past 32767: callers keep |u| * |s| * 2 below that.
inline __m256i dot_us(__m256i acc, __m256i u, __m256i s) {
#if PL_SIMD_VNNI
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}
// Signed x signed via |x| and sign(y, x); assumes no -128 in x (quantizers give [-127, 127]).
inline __m256i dot_ss(__m256i acc, __m256i x, __m256i y) {
  return dot_us(acc, _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}
// Sum over 32-element sub-blocks of u8 x s8 products, each 16-element half times its
// own int scale (s_lo for elements 0-15, s_hi for 16-31), as int32 x 8.
inline __m256i dot_us_scaled(__m256i u, __m256i s, int s_lo, int s_hi) {
#if PL_SIMD_VNNI
  const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
  return _mm256_mullo_epi32(p, _mm256_set_m128i(_mm_set1_epi32(s_hi), _mm_set1_epi32(s_lo)));
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s),
                           _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(s_hi)),
                                            _mm_set1_epi16(static_cast<short>(s_lo))));
#endif
}

// 16 bytes of packed nibbles -> 32 values: low nibbles (elements 0-15) then high ones.
inline __m256i nibbles32(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

// ---- float weights ----------------------------------------------------------------

#if PL_SIMD_512
inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

float dot_f32(int64_t n, const void* vw, const void* va) {
  const float* w = static_cast<const float*>(vw);
  const float* a = static_cast<const float*>(va);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(a + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(a + i + 16), s1);
  }
  if (i < n) {  // masked tail, up to 31 elements
    const int64_t r = n - i;
    const __mmask16 m0 = r >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << r) - 1);
    const __mmask16 m1 = r > 16 ? static_cast<__mmask16>((1u << (r - 16)) - 1) : 0;
    s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, w + i), _mm512_maskz_loadu_ps(m0, a + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, w + i + 16), _mm512_maskz_loadu_ps(m1, a + i + 16), s1);
  }
  return hsum512(_mm512_add_ps(s0, s1));
}
float dot_f16(int64_t n, const void* vw, const void* va) {
  const uint16_t* w = static_cast<const uint16_t*>(vw);
  const float* a = static_cast<const float*>(va);
  __m512 s0 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    s0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i))),
                         _mm512_loadu_ps(a + i), s0);
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    s0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + i)), _mm512_maskz_loadu_ps(m, a + i), s0);
  }
  return hsum512(s0);
}
float dot_bf16(int64_t n, const void* vw, const void* va) {
  const uint16_t* w = static_cast<const uint16_t*>(vw);
  const float* a = static_cast<const float*>(va);
  __m512 s0 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i)));
    s0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(h, 16)), _mm512_loadu_ps(a + i), s0);
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w + i));
    s0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(h, 16)), _mm512_maskz_loadu_ps(m, a + i), s0);
  }
  return hsum512(s0);
}

// ---- float-weight GEMM: tiles of 4 weight rows x 4 tokens, 16 accumulators, so each
// weight vector (converted once) serves 4 tokens and each activation vector 4 rows.
// Every (row, token) sum runs over k in the same order whatever the tile size, so a
// single token (decode) gets the same bits as inside a prompt batch.
enum FloatW { kWF32, kWF16, kWBF16 };

template <int WT>
inline __m512 load_w16(const void* p, int64_t i, __mmask16 m) {
  if constexpr (WT == kWF32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
  } else if constexpr (WT == kWF16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
  } else {
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
  }
}

template <int WT>
inline __m512 load_w16u(const void* p, int64_t i) {
  if constexpr (WT == kWF32) {
    return _mm512_loadu_ps(static_cast<const float*>(p) + i);
  } else if constexpr (WT == kWF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i)));
  } else {
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
  }
}

template <int WT, int NR, int NT>
void ftile(const uint8_t* const* w, const float* const* x, int64_t n, float* const* y) {
  __m512 acc[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
  // Full vectors unmasked, then one masked tail.
  auto step = [&](int64_t i, auto load_w, auto load_x) {
    __m512 wv[NR];
    for (int r = 0; r < NR; ++r) wv[r] = load_w(w[r], i);
    for (int t = 0; t < NT; ++t) {
      const __m512 xv = load_x(x[t] + i);
      for (int r = 0; r < NR; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    step(i, [](const void* p, int64_t k) { return load_w16u<WT>(p, k); }, [](const float* p) { return _mm512_loadu_ps(p); });
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    step(i, [m](const void* p, int64_t k) { return load_w16<WT>(p, k, m); },
         [m](const float* p) { return _mm512_maskz_loadu_ps(m, p); });
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) y[t][r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <int WT, int NR>
void ftile_nt(int nt, const uint8_t* const* w, const float* const* x, int64_t n, float* const* y) {
  switch (nt) {
    case 1: ftile<WT, NR, 1>(w, x, n, y); break;
    case 2: ftile<WT, NR, 2>(w, x, n, y); break;
    case 3: ftile<WT, NR, 3>(w, x, n, y); break;
    default: ftile<WT, NR, 4>(w, x, n, y); break;
  }
}

template <int WT>
void gemm_float(const GemmArgs& g, int64_t r0, int64_t r1) {
  // Rows in spans of about 32 KiB of weights, so a span stays in L1/L2 while every
  // token tile passes over it.
  const int64_t span = g.n_tok <= 4 ? r1 - r0 : std::max<int64_t>(4, (32 << 10) / static_cast<int64_t>(g.w_stride) / 4 * 4);
  // Up to 4 tokens: one row at a time. Interleaving the streams of 4 rows measured
  // 2.5x slower out of cache on Zen 4 (the hardware prefetcher loses them; software
  // prefetch did not help); a prompt batch reuses each span from cache enough to
  // prefer the 4-row tiles (1536 x 576 F16, 1 thread: 4 tokens 160 vs 430 us
  // with 4-row tiles; 64 tokens 2.0 ms with single rows, 1.3 ms with 4-row tiles).
  const int64_t row_tile = g.n_tok <= 4 ? 1 : 4;
  for (int64_t s0 = r0; s0 < r1; s0 += span) {
    const int64_t s1 = std::min(r1, s0 + span);
    for (int64_t t0 = 0; t0 < g.n_tok; t0 += 4) {
      const int nt = static_cast<int>(std::min<int64_t>(4, g.n_tok - t0));
      const float* x[4];
      for (int t = 0; t < nt; ++t) x[t] = reinterpret_cast<const float*>(g.act + (t0 + t) * g.act_stride);
      for (int64_t r = s0; r < s1; r += row_tile) {
        const int nr = static_cast<int>(std::min<int64_t>(row_tile, s1 - r));
        const uint8_t* w[4];
        float* y[4];
        for (int i = 0; i < nr; ++i) w[i] = g.w + (r + i) * g.w_stride;
        for (int t = 0; t < nt; ++t) y[t] = g.y + (t0 + t) * g.y_stride + r;
        switch (nr) {
          case 1: ftile_nt<WT, 1>(nt, w, x, g.n_cols, y); break;
          case 2: ftile_nt<WT, 2>(nt, w, x, g.n_cols, y); break;
          case 3: ftile_nt<WT, 3>(nt, w, x, g.n_cols, y); break;
          default: ftile_nt<WT, 4>(nt, w, x, g.n_cols, y); break;
        }
      }
    }
  }
}
#else
// ---- float-weight GEMM in 8 lanes: tiles of up to 2 weight rows x 2 tokens. Each
// (row, token) sum has two accumulators (even and odd 8-element vectors), in the
// same order whatever the tile, so a single token (decode) gets the bits it gets
// inside a prompt batch; two chains per row also hide the FMA latency that one
// chain per row would be bound by in decode.
enum FloatW { kWF32, kWF16, kWBF16 };

template <int WT>
inline __m256 load_w8(const void* p, int64_t i) {
  if constexpr (WT == kWF32) {
    return _mm256_loadu_ps(static_cast<const float*>(p) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (WT == kWF16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

template <int WT>
inline float w_at(const void* p, int64_t j) {
  if constexpr (WT == kWF32) {
    return static_cast<const float*>(p)[j];
  } else if constexpr (WT == kWF16) {
    return h2f(static_cast<const uint16_t*>(p)[j]);
  } else {
    const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(p)[j]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
}

template <int WT, int NR, int NT>
void ftile8(const uint8_t* const* w, const float* const* x, int64_t n, float* const* y) {
  __m256 a0[NR][NT], a1[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) a0[r][t] = a1[r][t] = _mm256_setzero_ps();
  int64_t i = 0;
  // One-row tiles are decode, streaming the weights from memory: a software prefetch
  // 1 KiB ahead (into the next rows past a row's end) took F16 from 0.75 to 0.82-0.86
  // of a plain read on Zen 3 (tools/microbench/stream_ratio_bench.cpp 1, 1-2 threads).
  constexpr int64_t kEs = WT == kWF32 ? 4 : 2, kPfBytes = 1024;
  for (; i + 16 <= n; i += 16) {
    __m256 w0[NR], w1[NR];
    if (NR == 1 && NT == 1 && (i * kEs) % 64 == 0)
      _mm_prefetch(reinterpret_cast<const char*>(w[0]) + i * kEs + kPfBytes, _MM_HINT_T0);
    for (int r = 0; r < NR; ++r) w0[r] = load_w8<WT>(w[r], i), w1[r] = load_w8<WT>(w[r], i + 8);
    for (int t = 0; t < NT; ++t) {
      const __m256 x0 = _mm256_loadu_ps(x[t] + i), x1 = _mm256_loadu_ps(x[t] + i + 8);
      for (int r = 0; r < NR; ++r) {
        a0[r][t] = _mm256_fmadd_ps(w0[r], x0, a0[r][t]);
        a1[r][t] = _mm256_fmadd_ps(w1[r], x1, a1[r][t]);
      }
    }
  }
  if (i + 8 <= n) {
    for (int r = 0; r < NR; ++r)
      for (int t = 0; t < NT; ++t)
        a0[r][t] = _mm256_fmadd_ps(load_w8<WT>(w[r], i), _mm256_loadu_ps(x[t] + i), a0[r][t]);
    i += 8;
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) {
      float s = hsum(_mm256_add_ps(a0[r][t], a1[r][t]));
      for (int64_t j = i; j < n; ++j) s += w_at<WT>(w[r], j) * x[t][j];  // fewer than 8 left
      y[t][r] = s;
    }
}

// The prompt tile: 4 rows x 3 tokens, the same sums as ftile8 bit for bit. Both
// chains of all 12 (row, token) sums would need 24 registers, so the chunks of the
// even chain (a0 in ftile8) are summed in a first pass over the row and those of the
// odd chain in a second, each pass holding 12 accumulators, 3 token vectors and one
// converted weight vector: 7 loads per 12 FMAs, against 12 per 8 in the 2x2 tile.
template <int WT>
void ftile8_4x3(const uint8_t* const* w, const float* const* x, int64_t n, float* const* y) {
  constexpr int R = 4, T = 3;
  __m256 even[R][T];
  for (int pass = 0; pass < 2; ++pass) {
    __m256 a[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) a[r][t] = _mm256_setzero_ps();
    for (int64_t i = 8 * pass; i + 8 <= n; i += 16) {
      const __m256 x0 = _mm256_loadu_ps(x[0] + i), x1 = _mm256_loadu_ps(x[1] + i), x2 = _mm256_loadu_ps(x[2] + i);
      for (int r = 0; r < R; ++r) {
        const __m256 wv = load_w8<WT>(w[r], i);
        a[r][0] = _mm256_fmadd_ps(wv, x0, a[r][0]);
        a[r][1] = _mm256_fmadd_ps(wv, x1, a[r][1]);
        a[r][2] = _mm256_fmadd_ps(wv, x2, a[r][2]);
      }
    }
    if (pass == 0) {
      for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) even[r][t] = a[r][t];
      continue;
    }
    const int64_t tail = n / 8 * 8;
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) {
        float s = hsum(_mm256_add_ps(even[r][t], a[r][t]));
        for (int64_t j = tail; j < n; ++j) s += w_at<WT>(w[r], j) * x[t][j];
        y[t][r] = s;
      }
  }
}

// Rows [r0, r1) x tokens [ta, tb) in tiles of up to max_rows (1 or 2) rows x 2 tokens.
template <int WT>
void gemm_float_pairs(const GemmArgs& g, int64_t r0, int64_t r1, int64_t ta, int64_t tb, int64_t span,
                      int max_rows) {
  for (int64_t s0 = r0; s0 < r1; s0 += span) {
    const int64_t s1 = std::min(r1, s0 + span);
    for (int64_t t0 = ta; t0 < tb; t0 += 2) {
      const int nt = static_cast<int>(std::min<int64_t>(2, tb - t0));
      const float* x[2];
      for (int t = 0; t < nt; ++t) x[t] = reinterpret_cast<const float*>(g.act + (t0 + t) * g.act_stride);
      for (int64_t r = s0; r < s1; r += max_rows) {
        const int nr = static_cast<int>(std::min<int64_t>(max_rows, s1 - r));
        const uint8_t* w[2] = {g.w + r * g.w_stride, g.w + (r + nr - 1) * g.w_stride};
        float* y[2];
        for (int t = 0; t < nt; ++t) y[t] = g.y + (t0 + t) * g.y_stride + r;
        if (nr == 2 && nt == 2) ftile8<WT, 2, 2>(w, x, g.n_cols, y);
        else if (nr == 2) ftile8<WT, 2, 1>(w, x, g.n_cols, y);
        else if (nt == 2) ftile8<WT, 1, 2>(w, x, g.n_cols, y);
        else ftile8<WT, 1, 1>(w, x, g.n_cols, y);
      }
    }
  }
}

template <int WT>
void gemm_float(const GemmArgs& g, int64_t r0, int64_t r1) {
  // Rows in spans of about 64 KiB of weights that stay in L2 while every token
  // tile passes over them (F16 pp512, 1 thread, Zen 3: 16 KiB 245, 32 KiB 255,
  // 64-256 KiB 263-270 tok/s; converting a span to f32 once, to skip the per-tile
  // conversions, was 12% slower: the tiles are bound by loads, not conversions);
  // decode-sized batches take all rows as one span.
  const int64_t span = g.n_tok <= 2 ? r1 - r0 : std::max<int64_t>(4, (64 << 10) / static_cast<int64_t>(g.w_stride) / 4 * 4);
  int64_t t_done = 0;
  if (g.n_tok >= 3) {
    // Prompt batches: 4x3 tiles over whole token triples and row quads; the edges
    // below take the 2x2 tiles, whose sums are the same bits.
    t_done = g.n_tok / 3 * 3;
    const int64_t r_quads = r0 + (r1 - r0) / 4 * 4;
    for (int64_t s0 = r0; s0 < r_quads; s0 += span) {
      const int64_t s1 = std::min(r_quads, s0 + span);
      for (int64_t t0 = 0; t0 < t_done; t0 += 3) {
        const float* x[3];
        float* y[3];
        for (int t = 0; t < 3; ++t) x[t] = reinterpret_cast<const float*>(g.act + (t0 + t) * g.act_stride);
        for (int64_t r = s0; r < s1; r += 4) {
          const uint8_t* w[4];
          for (int i = 0; i < 4; ++i) w[i] = g.w + (r + i) * g.w_stride;
          for (int t = 0; t < 3; ++t) y[t] = g.y + (t0 + t) * g.y_stride + r;
          ftile8_4x3<WT>(w, x, g.n_cols, y);
        }
      }
    }
    if (r_quads < r1) {  // leftover rows, all tokens
      gemm_float_pairs<WT>(g, r_quads, r1, 0, g.n_tok, span, 2);
    }
    if (r_quads > r0) gemm_float_pairs<WT>(g, r0, r_quads, t_done, g.n_tok, span, 2);
    return;
  }
  // Decode streams the weights from memory one row at a time: two rows at once are
  // two streams 1 row apart, and on Zen 3 (one thread, tools/microbench/
  // stream_ratio_bench.cpp 1, F16) they streamed at 0.53-0.57 of a plain read
  // against 0.74 for one row. The sums are the same bits either way.
  gemm_float_pairs<WT>(g, r0, r1, 0, g.n_tok, span, 1);
}

float dot_f32(int64_t n, const void* vw, const void* va) {
  const float* w = static_cast<const float*>(vw);
  const float* a = static_cast<const float*>(va);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(a + i + 8), s1);
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += w[i] * a[i];
  return s;
}
float dot_f16(int64_t n, const void* vw, const void* va) {
  const uint16_t* w = static_cast<const uint16_t*>(vw);
  const float* a = static_cast<const float*>(va);
  __m256 s0 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))),
                         _mm256_loadu_ps(a + i), s0);
  float s = hsum(s0);
  for (; i < n; ++i) s += h2f(w[i]) * a[i];
  return s;
}
float dot_bf16(int64_t n, const void* vw, const void* va) {
  const uint16_t* w = static_cast<const uint16_t*>(vw);
  const float* a = static_cast<const float*>(va);
  __m256 s0 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
    s0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h, 16)), _mm256_loadu_ps(a + i), s0);
  }
  float s = hsum(s0);
  for (; i < n; ++i) {
    uint32_t bits = static_cast<uint32_t>(w[i]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    s += f * a[i];
  }
  return s;
}
#endif

// Round-to-nearest-even, as the scalar fp32_to_fp16 (F16C; KV cache stores).
void q_f16(const float* x, void* vy, int64_t n) {
  uint16_t* y = static_cast<uint16_t*>(vy);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
void dq_f16(const void* vx, float* y, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(vx);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; ++i) y[i] = h2f(x[i]);
}
void dq_bf16(const void* vx, float* y, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(vx);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm256_slli_epi32(h, 16));
  }
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(x[i]) << 16;
    std::memcpy(y + i, &bits, 4);
  }
}

// ---- activation quantization ----------------------------------------------------------

// C roundf (half away from zero), exactly: floor(|v|) + floor(2 * frac) with v's sign.
inline __m256 roundf_exact(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 a = _mm256_andnot_ps(sign, v);
  const __m256 f = _mm256_floor_ps(a);
  const __m256 b = _mm256_add_ps(f, _mm256_floor_ps(_mm256_mul_ps(_mm256_sub_ps(a, f), _mm256_set1_ps(2.0f))));
  return _mm256_or_ps(b, _mm256_and_ps(v, sign));
}

// Quantizes len (multiple of 32) floats with one scale d = amax/127 (as the reference).
// Writes per-16 sums of the int8 values to sums16 when non-null. Returns d.
inline float quantize_q8_span(const float* x, int8_t* qs, int len, int* sums16) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 mx = _mm256_setzero_ps();
  for (int i = 0; i < len; i += 8) mx = _mm256_max_ps(mx, _mm256_and_ps(abs_mask, _mm256_loadu_ps(x + i)));
  const float amax = hmax(mx);
  const float d = amax / 127;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  const __m256 vid = _mm256_set1_ps(id);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int i = 0; i < len; i += 32) {
    __m256i q[4];
    for (int k = 0; k < 4; ++k)
      q[k] = _mm256_cvtps_epi32(roundf_exact(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vid)));
    if (sums16) {
      sums16[i / 16] = hsum_i32(_mm256_add_epi32(q[0], q[1]));
      sums16[i / 16 + 1] = hsum_i32(_mm256_add_epi32(q[2], q[3]));
    }
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + i), _mm256_permutevar8x32_epi32(p, perm));
  }
  return d;
}

void q_q8_0(const float* x, void* vy, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(vy);
  for (int64_t b = 0; b < n / QK; ++b)
    y[b].d = _cvtss_sh(quantize_q8_span(x + b * QK, y[b].qs, QK, nullptr), _MM_FROUND_TO_NEAREST_INT);
}
void q_q8_1(const float* x, void* vy, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(vy);
  int s[2];
  for (int64_t b = 0; b < n / QK; ++b) {
    const float d = quantize_q8_span(x + b * QK, y[b].qs, QK, s);
    y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    y[b].s = _cvtss_sh(d * static_cast<float>(s[0] + s[1]), _MM_FROUND_TO_NEAREST_INT);
  }
}
void q_q8_k(const float* x, void* vy, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(vy);
  int s[16];
  for (int64_t b = 0; b < n / QK_K; ++b) {
    y[b].d = quantize_q8_span(x + b * QK_K, y[b].qs, QK_K, s);
    for (int i = 0; i < 16; ++i) y[b].bsums[i] = static_cast<int16_t>(s[i]);
  }
}

// ---- dequantization -----------------------------------------------------------------

// 32 int8 values -> 4 x 8 floats, scaled by d (q * d, as the reference).
inline void store_scaled_i8(__m256i q, __m256 d, float* y) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
  _mm256_storeu_ps(y + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
  _mm256_storeu_ps(y + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
  _mm256_storeu_ps(y + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
}
// 32 int8 values -> d*q - m (or + m when add), unfused.
template <bool kAdd>
inline void store_affine_i8(__m256i q, __m256 d, __m256 m, float* y) {
  const __m128i half[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 2; ++k) {
      __m256 t = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(k ? _mm_srli_si128(half[h], 8) : half[h])));
      PL_NOFUSE(t);
      _mm256_storeu_ps(y + 16 * h + 8 * k, kAdd ? _mm256_add_ps(t, m) : _mm256_sub_ps(t, m));
    }
  }
}

void dq_q4_0(const void* vx, float* y, int64_t n) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(vx);
  for (int64_t b = 0; b < n / QK; ++b, y += QK)
    store_scaled_i8(_mm256_sub_epi8(nibbles32(x[b].qs), _mm256_set1_epi8(8)), _mm256_set1_ps(h2f(x[b].d)), y);
}
void dq_q4_1(const void* vx, float* y, int64_t n) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(vx);
  for (int64_t b = 0; b < n / QK; ++b, y += QK)
    store_affine_i8<true>(nibbles32(x[b].qs), _mm256_set1_ps(h2f(x[b].d)), _mm256_set1_ps(h2f(x[b].m)), y);
}
void dq_q8_0(const void* vx, float* y, int64_t n) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) store_scaled_i8(loadu256(x[b].qs), _mm256_set1_ps(h2f(x[b].d)), y);
}
void dq_q8_1(const void* vx, float* y, int64_t n) {
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(vx);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) store_scaled_i8(loadu256(x[b].qs), _mm256_set1_ps(h2f(x[b].d)), y);
}
void dq_q8_k(const void* vx, float* y, int64_t n) {
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(vx);
  for (int64_t b = 0; b < n / QK_K; ++b)
    for (int j = 0; j < 8; ++j, y += 32) store_scaled_i8(loadu256(x[b].qs + 32 * j), _mm256_set1_ps(x[b].d), y);
}

inline void unpack_k4_all(const uint8_t* scales, uint8_t* sc, uint8_t* mn) {
  for (int j = 0; j < 8; ++j) unpack_scale_min_k4(scales, j, &sc[j], &mn[j]);
}

void dq_q4_k(const void* vx, float* y, int64_t n) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(vx);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < n / QK_K; ++b) {
    uint8_t sc[8], mn[8];
    unpack_k4_all(x[b].scales, sc, mn);
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    for (int c = 0; c < 4; ++c) {
      const __m256i q = loadu256(x[b].qs + 32 * c);
      for (int h = 0; h < 2; ++h, y += 32) {
        const int j = 2 * c + h;
        const __m256i v = _mm256_and_si256(h ? _mm256_srli_epi16(q, 4) : q, m4);
        store_affine_i8<false>(v, _mm256_set1_ps(d * sc[j]), _mm256_set1_ps(dmin * mn[j]), y);
      }
    }
  }
}

// Sub-block j (0..7) of a Q5_K block as 32 bytes of 5-bit values.
inline __m256i q5k_sub(const BlockQ5_K& x, __m256i qs_pair, __m256i qh, int j) {
  const __m256i lo = _mm256_and_si256((j & 1) ? _mm256_srli_epi16(qs_pair, 4) : qs_pair, _mm256_set1_epi8(0x0F));
  const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, j), _mm256_set1_epi8(1));
  return _mm256_or_si256(lo, _mm256_slli_epi16(hb, 4));
}

void dq_q5_k(const void* vx, float* y, int64_t n) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(vx);
  for (int64_t b = 0; b < n / QK_K; ++b) {
    uint8_t sc[8], mn[8];
    unpack_k4_all(x[b].scales, sc, mn);
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    const __m256i qh = loadu256(x[b].qh);
    for (int j = 0; j < 8; ++j, y += 32) {
      const __m256i v = q5k_sub(x[b], loadu256(x[b].qs + 32 * (j / 2)), qh, j);
      store_affine_i8<false>(v, _mm256_set1_ps(d * sc[j]), _mm256_set1_ps(dmin * mn[j]), y);
    }
  }
}

// Group g (0..3) of half h of a Q6_K block: 32 unsigned 6-bit values (elements 128h+32g+l).
inline __m256i q6k_group(__m256i ql0, __m256i ql1, __m256i qh, int g) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  const __m256i ql = (g & 1) ? ql1 : ql0;
  const __m256i lo = _mm256_and_si256(g >= 2 ? _mm256_srli_epi16(ql, 4) : ql, m4);
  __m256i hi;
  switch (g) {
    case 0: hi = _mm256_slli_epi16(qh, 4); break;
    case 1: hi = _mm256_slli_epi16(qh, 2); break;
    case 2: hi = qh; break;
    default: hi = _mm256_srli_epi16(qh, 2); break;
  }
  return _mm256_or_si256(lo, _mm256_and_si256(hi, m30));
}

void dq_q6_k(const void* vx, float* y, int64_t n) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(vx);
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = h2f(x[b].d);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = loadu256(x[b].ql + 64 * h), ql1 = loadu256(x[b].ql + 64 * h + 32);
      const __m256i qh = loadu256(x[b].qh + 32 * h);
      for (int g = 0; g < 4; ++g, y += 32) {
        const __m256i q = _mm256_sub_epi8(q6k_group(ql0, ql1, qh, g), _mm256_set1_epi8(32));
        const int is = 8 * h + 2 * g;
        // Each 16-element half has its own scale.
        const __m256 d0 = _mm256_set1_ps(d * x[b].scales[is]), d1 = _mm256_set1_ps(d * x[b].scales[is + 1]);
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        _mm256_storeu_ps(y, _mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
        _mm256_storeu_ps(y + 8, _mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
        _mm256_storeu_ps(y + 16, _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
        _mm256_storeu_ps(y + 24, _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
      }
    }
  }
}

// ---- dot products ---------------------------------------------------------------------

float dot_q4_0_256(int64_t n, const void* vw, const void* va) {
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  const int64_t nb = n / QK;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const __m256i eight = _mm256_set1_epi8(8);
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m256i p0 = dot_ss(_mm256_setzero_si256(), _mm256_sub_epi8(nibbles32(w[b].qs), eight), loadu256(a[b].qs));
    const __m256i p1 = dot_ss(_mm256_setzero_si256(), _mm256_sub_epi8(nibbles32(w[b + 1].qs), eight), loadu256(a[b + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b + 1].d) * h2f(a[b + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; b < nb; ++b) {
    const __m256i p = dot_ss(_mm256_setzero_si256(), _mm256_sub_epi8(nibbles32(w[b].qs), eight), loadu256(a[b].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p), acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

float dot_q4_1_256(int64_t n, const void* vw, const void* va) {
  const BlockQ4_1* w = static_cast<const BlockQ4_1*>(vw);
  const BlockQ8_1* a = static_cast<const BlockQ8_1*>(va);
  const int64_t nb = n / QK;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float summ = 0;
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m256i p0 = dot_us(_mm256_setzero_si256(), nibbles32(w[b].qs), loadu256(a[b].qs));
    const __m256i p1 = dot_us(_mm256_setzero_si256(), nibbles32(w[b + 1].qs), loadu256(a[b + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b + 1].d) * h2f(a[b + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    summ += h2f(w[b].m) * h2f(a[b].s) + h2f(w[b + 1].m) * h2f(a[b + 1].s);
  }
  for (; b < nb; ++b) {
    const __m256i p = dot_us(_mm256_setzero_si256(), nibbles32(w[b].qs), loadu256(a[b].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p), acc0);
    summ += h2f(w[b].m) * h2f(a[b].s);
  }
  return hsum(_mm256_add_ps(acc0, acc1)) + summ;
}

float dot_q8_0_256(int64_t n, const void* vw, const void* va) {
  const BlockQ8_0* w = static_cast<const BlockQ8_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  const int64_t nb = n / QK;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m256i p0 = dot_ss(_mm256_setzero_si256(), loadu256(w[b].qs), loadu256(a[b].qs));
    const __m256i p1 = dot_ss(_mm256_setzero_si256(), loadu256(w[b + 1].qs), loadu256(a[b + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b + 1].d) * h2f(a[b + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; b < nb; ++b) {
    const __m256i p = dot_ss(_mm256_setzero_si256(), loadu256(w[b].qs), loadu256(a[b].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p), acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

#if PL_SIMD_512
// ---- 512-bit kernels for the 32-element block types: 2 blocks per register, the
// f16 scales of 4 blocks converted together. Leftover blocks go to the 256-bit code.

inline __m512i dot_us512(__m512i acc, __m512i u, __m512i s) {
#if PL_SIMD_VNNI
  return _mm512_dpbusd_epi32(acc, u, s);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}
// Signed x signed; as dot_ss, x must not hold -128.
inline __m512i dot_ss512(__m512i acc, __m512i x, __m512i y) {
  const __mmask64 neg = _mm512_movepi8_mask(x);
  return dot_us512(acc, _mm512_abs_epi8(x), _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y));
}
using simd512::load2x32;
using simd512::load_head_u32x16;
using simd512::load_u32;
using simd512::nibbles64;
// The first 4 bytes of 4 consecutive blocks (stride bytes apart) as 8 floats: two f16 each.
inline __m256 f16x2_of_4_blocks(const uint8_t* p, size_t stride) {
  __m128i v = _mm_cvtsi32_si128(static_cast<int>(load_u32(p)));
  v = _mm_insert_epi32(v, static_cast<int>(load_u32(p + stride)), 1);
  v = _mm_insert_epi32(v, static_cast<int>(load_u32(p + 2 * stride)), 2);
  v = _mm_insert_epi32(v, static_cast<int>(load_u32(p + 3 * stride)), 3);
  return _mm256_cvtph_ps(v);
}
// Broadcasts lanes 0 and 2 (lo) / 4 and 6 (hi) of v to the two halves of a zmm each.
inline __m512 bcast_pair(__m256 v, bool hi) {
  const __m512i idx = hi ? _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6)
                         : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
  return _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(v));
}

float dot_q4_1(int64_t n, const void* vw, const void* va) {
  const BlockQ4_1* w = static_cast<const BlockQ4_1*>(vw);
  const BlockQ8_1* a = static_cast<const BlockQ8_1*>(va);
  const int64_t nb = n / QK;
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  __m256 accm = _mm256_setzero_ps();  // odd lanes: m * s
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    // [d*d', m*s] for 4 blocks.
    const __m256 ds = _mm256_mul_ps(f16x2_of_4_blocks(reinterpret_cast<const uint8_t*>(w + b), sizeof(BlockQ4_1)),
                                    f16x2_of_4_blocks(reinterpret_cast<const uint8_t*>(a + b), sizeof(BlockQ8_1)));
    accm = _mm256_add_ps(accm, ds);
    const __m512i p01 = dot_us512(_mm512_setzero_si512(), nibbles64(w[b].qs, w[b + 1].qs), load2x32(a[b].qs, a[b + 1].qs));
    const __m512i p23 = dot_us512(_mm512_setzero_si512(), nibbles64(w[b + 2].qs, w[b + 3].qs), load2x32(a[b + 2].qs, a[b + 3].qs));
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p01), bcast_pair(ds, false), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p23), bcast_pair(ds, true), acc1);
  }
  const __m256 odd = _mm256_castsi256_ps(_mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1));
  float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + hsum(_mm256_and_ps(accm, odd));
  if (b < nb) s += dot_q4_1_256((nb - b) * QK, w + b, a + b);
  return s;
}

// Blocks whose f16 scale is their first field: 4 scales x 4 scales -> products in even lanes.
template <class BW, class BA>
inline __m256 scale_products(const BW* w, const BA* a) {
  return _mm256_mul_ps(f16x2_of_4_blocks(reinterpret_cast<const uint8_t*>(w), sizeof(BW)),
                       f16x2_of_4_blocks(reinterpret_cast<const uint8_t*>(a), sizeof(BA)));
}

float dot_q4_0(int64_t n, const void* vw, const void* va) {
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  const int64_t nb = n / QK;
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  const __m512i eight = _mm512_set1_epi8(8);
  int64_t b = 0;
  // The 4-byte scale loads of the last block reach 2 bytes into qs: always in bounds.
  for (; b + 4 <= nb; b += 4) {
    const __m256 d = scale_products(w + b, a + b);
    const __m512i p01 = dot_ss512(_mm512_setzero_si512(), _mm512_sub_epi8(nibbles64(w[b].qs, w[b + 1].qs), eight),
                                  load2x32(a[b].qs, a[b + 1].qs));
    const __m512i p23 = dot_ss512(_mm512_setzero_si512(), _mm512_sub_epi8(nibbles64(w[b + 2].qs, w[b + 3].qs), eight),
                                  load2x32(a[b + 2].qs, a[b + 3].qs));
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p01), bcast_pair(d, false), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p23), bcast_pair(d, true), acc1);
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  if (b < nb) s += dot_q4_0_256((nb - b) * QK, w + b, a + b);
  return s;
}

float dot_q8_0(int64_t n, const void* vw, const void* va) {
  const BlockQ8_0* w = static_cast<const BlockQ8_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  const int64_t nb = n / QK;
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    const __m256 d = scale_products(w + b, a + b);
    const __m512i p01 = dot_ss512(_mm512_setzero_si512(), load2x32(w[b].qs, w[b + 1].qs), load2x32(a[b].qs, a[b + 1].qs));
    const __m512i p23 = dot_ss512(_mm512_setzero_si512(), load2x32(w[b + 2].qs, w[b + 3].qs),
                                  load2x32(a[b + 2].qs, a[b + 3].qs));
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p01), bcast_pair(d, false), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p23), bcast_pair(d, true), acc1);
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  if (b < nb) s += dot_q8_0_256((nb - b) * QK, w + b, a + b);
  return s;
}
// ---- Q4_1 x Q8_1 GEMM for prompt batches: tiles of up to 4 weight rows x 4 tokens.
// The f16 block scales of each weight row and each activation row are expanded once
// into f32 (dx: 8 copies of d per block, so block pair j fills one zmm with block 2j
// in lanes 0-7 and 2j+1 in lanes 8-15; zero-padded to whole pairs). The inner loop
// is then dpbusd, convert, multiply, FMA per (row, token) and block pair, and each
// loaded weight register serves every token of the tile. The m*s terms are a plain
// dot of the per-block m and s arrays, folded into the accumulators at the end.

// Blocks that start with two f16 fields (Q4_1: d, m; Q8_1: d, s), `words` 4-byte
// words apart: dx gets 8 copies of each d (zero-padded to a whole pair), sec the
// second fields. Gathers 16 blocks at a time.
inline void expand_scales(const void* blocks, size_t stride, int64_t nb, float* dx, float* sec) {
  const uint8_t* base = static_cast<const uint8_t*>(blocks);
  const __m512i lo_of_pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  for (int64_t b = 0; b < nb; b += 16) {
    const __mmask16 k = nb - b >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (nb - b)) - 1);
    const __m512i v = load_head_u32x16(base + b * stride, stride, nb - b);
    const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
    _mm512_mask_storeu_ps(sec + b, k, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16))));
    // Masked-off lanes are zero, so the pad after an odd count is written as zero.
    const int64_t n_pairs = (std::min<int64_t>(16, nb - b) + 1) / 2;
    for (int64_t j = 0; j < n_pairs; ++j)
      _mm512_storeu_ps(dx + 8 * b + 16 * j,
                       _mm512_permutexvar_ps(_mm512_add_epi32(lo_of_pair, _mm512_set1_epi32(static_cast<int>(2 * j))), d));
  }
}

struct Q41Tile {
  const BlockQ4_1* w[4];
  const float* wdx[4];
  const float* wm[4];
  const BlockQ8_1* a[4];
  const float* adx[4];
  const float* as[4];
  float* y[4];  // y[t] + r: output of row r, token t
};

template <int NR, int NT>
void tile_q4_1(const Q41Tile& T, int64_t nb) {
  __m512 acc[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b += 2) {
    // An odd last block pairs with itself; its upper half has zero scales.
    const int64_t b1 = b + 1 < nb ? b + 1 : b;
    __m512i wv[NR];
    for (int r = 0; r < NR; ++r) wv[r] = nibbles64(T.w[r][b].qs, T.w[r][b1].qs);
    for (int t = 0; t < NT; ++t) {
      const __m512i av = load2x32(T.a[t][b].qs, T.a[t][b1].qs);
      const __m512 ad = _mm512_loadu_ps(T.adx[t] + 8 * b);
      for (int r = 0; r < NR; ++r) {
        const __m512i p = dot_us512(_mm512_setzero_si512(), wv[r], av);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(_mm512_loadu_ps(T.wdx[r] + 8 * b), ad),
                                    acc[r][t]);
      }
    }
  }
  for (int64_t b = 0; b < nb; b += 16) {
    const __mmask16 k = nb - b >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (nb - b)) - 1);
    for (int r = 0; r < NR; ++r) {
      const __m512 m = _mm512_maskz_loadu_ps(k, T.wm[r] + b);
      for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_fmadd_ps(m, _mm512_maskz_loadu_ps(k, T.as[t] + b), acc[r][t]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) T.y[t][r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <int NR>
void tile_q4_1_nt(const Q41Tile& T, int64_t nb, int nt) {
  switch (nt) {
    case 1: tile_q4_1<NR, 1>(T, nb); break;
    case 2: tile_q4_1<NR, 2>(T, nb); break;
    case 3: tile_q4_1<NR, 3>(T, nb); break;
    default: tile_q4_1<NR, 4>(T, nb); break;
  }
}

// One token against NR rows, the same arithmetic in the same order as
// tile_q4_1<NR, 1> (so decode matches a prompt batch bit for bit), but the weight
// scales are gathered into registers per 16 blocks instead of expanded in memory.
// m: scratch for NR * nb floats.
template <int NR>
void gemv_q4_1(int64_t nb, const uint8_t* const* w, const BlockQ8_1* a, const float* adx, const float* as,
               float* m, float* y) {
  const __m512i lo_of_pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  __m512 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t c = 0; c < nb; c += 16) {
    const __mmask16 k = nb - c >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (nb - c)) - 1);
    __m512 d[NR];
    for (int r = 0; r < NR; ++r) {
      const __m512i v = load_head_u32x16(w[r] + c * sizeof(BlockQ4_1), sizeof(BlockQ4_1), nb - c);
      d[r] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
      _mm512_mask_storeu_ps(m + r * nb + c, k, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16))));
    }
    const int64_t ce = std::min<int64_t>(nb, c + 16);
    for (int64_t b = c; b < ce; b += 2) {
      const int64_t b1 = b + 1 < nb ? b + 1 : b;
      const __m512i av = load2x32(a[b].qs, a[b1].qs);
      const __m512 ad = _mm512_loadu_ps(adx + 8 * b);
      const __m512i pi = _mm512_add_epi32(lo_of_pair, _mm512_set1_epi32(static_cast<int>(b - c)));
      for (int r = 0; r < NR; ++r) {
        const BlockQ4_1* wr = reinterpret_cast<const BlockQ4_1*>(w[r]);
        const __m512i p = dot_us512(_mm512_setzero_si512(), nibbles64(wr[b].qs, wr[b1].qs), av);
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(_mm512_permutexvar_ps(pi, d[r]), ad), acc[r]);
      }
    }
  }
  for (int64_t b = 0; b < nb; b += 16) {
    const __mmask16 k = nb - b >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (nb - b)) - 1);
    const __m512 sv = _mm512_maskz_loadu_ps(k, as + b);
    for (int r = 0; r < NR; ++r) acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, m + r * nb + b), sv, acc[r]);
  }
  for (int r = 0; r < NR; ++r) y[r] = _mm512_reduce_add_ps(acc[r]);
}

constexpr int kPfGroups = 2;
void gemv_rows_q4_1(const GemmArgs& g, int64_t r0, int64_t r1) {
  const int64_t nb = g.n_cols / QK;
  const int64_t ndx = (nb + 1) / 2 * 16;
  thread_local ScratchBuf buf;
  float* adx = buf.f32(static_cast<size_t>(ndx + 5 * nb));
  float* as = adx + ndx;
  float* m = as + nb;
  const BlockQ8_1* a = reinterpret_cast<const BlockQ8_1*>(g.act);
  expand_scales(a, sizeof(BlockQ8_1), nb, adx, as);
  // Rows are streamed 4 at a time, i.e. 4 short interleaved streams that the hardware
  // prefetcher follows poorly: prefetch the group kPfGroups ahead explicitly.
  const char* pf_end = reinterpret_cast<const char*>(g.w + r1 * g.w_stride);
  const size_t group_bytes = 4 * g.w_stride;
  for (int64_t r = r0; r < r1; r += 4) {
    const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
    const uint8_t* w[4];
    for (int i = 0; i < nr; ++i) w[i] = g.w + (r + i) * g.w_stride;
    const char* pf = reinterpret_cast<const char*>(w[0]) + kPfGroups * group_bytes;
    for (size_t o = 0; o < group_bytes && pf + o < pf_end; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0);
    switch (nr) {
      case 1: gemv_q4_1<1>(nb, w, a, adx, as, m, g.y + r); break;
      case 2: gemv_q4_1<2>(nb, w, a, adx, as, m, g.y + r); break;
      case 3: gemv_q4_1<3>(nb, w, a, adx, as, m, g.y + r); break;
      default: gemv_q4_1<4>(nb, w, a, adx, as, m, g.y + r); break;
    }
  }
}

void gemm_q4_1(const GemmArgs& g, int64_t r0, int64_t r1) {
  if (g.n_tok == 1) {
    gemv_rows_q4_1(g, r0, r1);
    return;
  }
  const int64_t nb = g.n_cols / QK;
  const int64_t ndx = (nb + 1) / 2 * 16;  // expanded floats per row
  const int64_t n_rows = r1 - r0;
  thread_local ScratchBuf buf;
  float* wdx = buf.f32(static_cast<size_t>((n_rows + 4) * (ndx + nb)));
  float* wm = wdx + n_rows * ndx;
  float* adx = wm + n_rows * nb;
  float* as = adx + 4 * ndx;
  for (int64_t r = 0; r < n_rows; ++r)
    expand_scales(g.w + (r0 + r) * g.w_stride, sizeof(BlockQ4_1), nb, wdx + r * ndx, wm + r * nb);
  Q41Tile T;
  for (int64_t t0 = 0; t0 < g.n_tok; t0 += 4) {
    const int nt = static_cast<int>(std::min<int64_t>(4, g.n_tok - t0));
    for (int t = 0; t < nt; ++t) {
      T.a[t] = reinterpret_cast<const BlockQ8_1*>(g.act + (t0 + t) * g.act_stride);
      T.adx[t] = adx + t * ndx;
      T.as[t] = as + t * nb;
      expand_scales(T.a[t], sizeof(BlockQ8_1), nb, adx + t * ndx, as + t * nb);
    }
    for (int64_t rt = 0; rt < n_rows; rt += 4) {
      const int nr = static_cast<int>(std::min<int64_t>(4, n_rows - rt));
      for (int r = 0; r < nr; ++r) {
        T.w[r] = reinterpret_cast<const BlockQ4_1*>(g.w + (r0 + rt + r) * g.w_stride);
        T.wdx[r] = wdx + (rt + r) * ndx;
        T.wm[r] = wm + (rt + r) * nb;
      }
      for (int t = 0; t < nt; ++t) T.y[t] = g.y + (t0 + t) * g.y_stride + r0 + rt;
      switch (nr) {
        case 1: tile_q4_1_nt<1>(T, nb, nt); break;
        case 2: tile_q4_1_nt<2>(T, nb, nt); break;
        case 3: tile_q4_1_nt<3>(T, nb, nt); break;
        default: tile_q4_1_nt<4>(T, nb, nt); break;
      }
    }
  }
}
#else
float dot_q4_0(int64_t n, const void* vw, const void* va) { return dot_q4_0_256(n, vw, va); }
float dot_q4_1(int64_t n, const void* vw, const void* va) { return dot_q4_1_256(n, vw, va); }
float dot_q8_0(int64_t n, const void* vw, const void* va) { return dot_q8_0_256(n, vw, va); }
#endif

// sum_j mn[j] * (bsums[2j] + bsums[2j+1]) for the K-type minimum correction.
inline int k_min_sum(const int16_t* bsums, const uint8_t* mn) {
  const __m256i pairs = _mm256_madd_epi16(loadu256(bsums), _mm256_set1_epi16(1));
  const __m256i m = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn)));
  return hsum_i32(_mm256_mullo_epi32(pairs, m));
}

float dot_q4_k(int64_t n, const void* vw, const void* va) {
  const BlockQ4_K* w = static_cast<const BlockQ4_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float accm = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    uint8_t sc[8], mn[8];
    unpack_k4_all(w[b].scales, sc, mn);
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = loadu256(w[b].qs + 32 * c);
      const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      sumi = _mm256_add_epi32(sumi, dot_us_scaled(lo, loadu256(a[b].qs + 64 * c), sc[2 * c], sc[2 * c]));
      sumi = _mm256_add_epi32(sumi, dot_us_scaled(hi, loadu256(a[b].qs + 64 * c + 32), sc[2 * c + 1], sc[2 * c + 1]));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * a[b].d), _mm256_cvtepi32_ps(sumi), acc);
    accm += h2f(w[b].dmin) * a[b].d * static_cast<float>(k_min_sum(a[b].bsums, mn));
  }
  return hsum(acc) - accm;
}

float dot_q5_k(int64_t n, const void* vw, const void* va) {
  const BlockQ5_K* w = static_cast<const BlockQ5_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  __m256 acc = _mm256_setzero_ps();
  float accm = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    uint8_t sc[8], mn[8];
    unpack_k4_all(w[b].scales, sc, mn);
    const __m256i qh = loadu256(w[b].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = loadu256(w[b].qs + 32 * c);
      const __m256i v0 = q5k_sub(w[b], q, qh, 2 * c), v1 = q5k_sub(w[b], q, qh, 2 * c + 1);
      sumi = _mm256_add_epi32(sumi, dot_us_scaled(v0, loadu256(a[b].qs + 64 * c), sc[2 * c], sc[2 * c]));
      sumi = _mm256_add_epi32(sumi, dot_us_scaled(v1, loadu256(a[b].qs + 64 * c + 32), sc[2 * c + 1], sc[2 * c + 1]));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * a[b].d), _mm256_cvtepi32_ps(sumi), acc);
    accm += h2f(w[b].dmin) * a[b].d * static_cast<float>(k_min_sum(a[b].bsums, mn));
  }
  return hsum(acc) - accm;
}

float dot_q6_k(int64_t n, const void* vw, const void* va) {
  const BlockQ6_K* w = static_cast<const BlockQ6_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const int8_t* sc = w[b].scales;
    // The values are stored +32: subtract 32 * sum_i sc[i] * bsums[i] once per block.
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(),
                                    _mm256_slli_epi32(_mm256_madd_epi16(loadu256(a[b].bsums), sc16), 5));
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = loadu256(w[b].ql + 64 * h), ql1 = loadu256(w[b].ql + 64 * h + 32);
      const __m256i qh = loadu256(w[b].qh + 32 * h);
      for (int g = 0; g < 4; ++g) {
        const int is = 8 * h + 2 * g;
        sumi = _mm256_add_epi32(sumi, dot_us_scaled(q6k_group(ql0, ql1, qh, g),
                                                    loadu256(a[b].qs + 128 * h + 32 * g), sc[is], sc[is + 1]));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * a[b].d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(acc);
}

}  // namespace

inline void fill_simd_kernels(KernelTable& k) {
  k.t[SLOT_F32].vec_dot = dot_f32;
  k.t[SLOT_F16] = {q_f16, dq_f16, dot_f16};
  k.t[SLOT_BF16] = {k.t[SLOT_BF16].quantize, dq_bf16, dot_bf16};
  k.t[SLOT_Q4_0] = {k.t[SLOT_Q4_0].quantize, dq_q4_0, dot_q4_0};
  k.t[SLOT_Q4_1] = {k.t[SLOT_Q4_1].quantize, dq_q4_1, dot_q4_1};
  k.t[SLOT_Q8_0] = {q_q8_0, dq_q8_0, dot_q8_0};
  k.t[SLOT_Q8_1] = {q_q8_1, dq_q8_1, nullptr};
  k.t[SLOT_Q4_K] = {k.t[SLOT_Q4_K].quantize, dq_q4_k, dot_q4_k};
  k.t[SLOT_Q5_K] = {k.t[SLOT_Q5_K].quantize, dq_q5_k, dot_q5_k};
  k.t[SLOT_Q6_K] = {k.t[SLOT_Q6_K].quantize, dq_q6_k, dot_q6_k};
  k.t[SLOT_Q8_K] = {q_q8_k, dq_q8_k, nullptr};
#if PL_SIMD_512
  k.t[SLOT_Q4_1].gemm_rows = gemm_q4_1;
#endif
  k.t[SLOT_F32].gemm_rows = gemm_float<kWF32>;
  k.t[SLOT_F16].gemm_rows = gemm_float<kWF16>;
  k.t[SLOT_BF16].gemm_rows = gemm_float<kWBF16>;
}

}  // namespace parallama::PL_SIMD_NS

#undef PL_NOFUSE
