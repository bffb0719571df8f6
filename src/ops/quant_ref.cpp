// Scalar reference kernels: the definition of every format's arithmetic.
// SIMD paths are tested against these. Dequantization evaluates in the same
// order as ggml/gguf (d*q + m, (d*sc)*q - dmin*m) so results match bit-exactly.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "core/fp16.h"
#include "ops/quant.h"
#include "ops/quant_blocks.h"
#include "ops/quant_kernels.h"

namespace parallama {
namespace {

inline float h2f(uint16_t h) { return fp16_to_fp32(h); }
inline uint16_t f2h(float f) { return fp32_to_fp16(f); }

// ---- float types ---------------------------------------------------------------

void q_f32(const float* x, void* y, int64_t n) { std::memcpy(y, x, n * sizeof(float)); }
void dq_f32(const void* x, float* y, int64_t n) { std::memcpy(y, x, n * sizeof(float)); }
float dot_f32(int64_t n, const void* w, const void* a) {
  const float* wf = static_cast<const float*>(w);
  const float* af = static_cast<const float*>(a);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += wf[i] * af[i];
  return s;
}

void q_f16(const float* x, void* y, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) h[i] = f2h(x[i]);
}
void dq_f16(const void* x, float* y, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = h2f(h[i]);
}
float dot_f16(int64_t n, const void* w, const void* a) {
  const uint16_t* h = static_cast<const uint16_t*>(w);
  const float* af = static_cast<const float*>(a);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += h2f(h[i]) * af[i];
  return s;
}

void q_bf16(const float* x, void* y, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(x[i]);
}
void dq_bf16(const void* x, float* y, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(h[i]);
}
float dot_bf16(int64_t n, const void* w, const void* a) {
  const uint16_t* h = static_cast<const uint16_t*>(w);
  const float* af = static_cast<const float*>(a);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += bf16_to_fp32(h[i]) * af[i];
  return s;
}

// ---- 32-element block types ------------------------------------------------------

void q_q4_0(const float* x, void* vy, int64_t n) {
  BlockQ4_0* y = static_cast<BlockQ4_0*>(vy);
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    float amax = 0, mx = 0;  // mx: the signed value of largest magnitude
    for (int j = 0; j < QK; ++j) {
      if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); mx = x[j]; }
    }
    const float d = mx / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    for (int j = 0; j < QK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(x[j + QK / 2] * id + 8.5f));
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}
void dq_q4_0(const void* vx, float* y, int64_t n) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(vx);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = h2f(x[b].d);
    for (int j = 0; j < QK / 2; ++j) {
      y[j] = d * static_cast<float>((x[b].qs[j] & 0xF) - 8);
      y[j + QK / 2] = d * static_cast<float>((x[b].qs[j] >> 4) - 8);
    }
  }
}
float dot_q4_0(int64_t n, const void* vw, const void* va) {
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  float s = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int j = 0; j < QK / 2; ++j) {
      isum += ((w[b].qs[j] & 0xF) - 8) * a[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + QK / 2];
    }
    s += h2f(w[b].d) * h2f(a[b].d) * static_cast<float>(isum);
  }
  return s;
}

void q_q4_1(const float* x, void* vy, int64_t n) {
  BlockQ4_1* y = static_cast<BlockQ4_1*>(vy);
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < QK; ++j) { mn = std::min(mn, x[j]); mx = std::max(mx, x[j]); }
    const float d = (mx - mn) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    y[b].m = f2h(mn);
    for (int j = 0; j < QK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>((x[j] - mn) * id + 0.5f));
      const int q1 = std::min(15, static_cast<int>((x[j + QK / 2] - mn) * id + 0.5f));
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}
void dq_q4_1(const void* vx, float* y, int64_t n) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(vx);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = h2f(x[b].d), m = h2f(x[b].m);
    for (int j = 0; j < QK / 2; ++j) {
      y[j] = d * static_cast<float>(x[b].qs[j] & 0xF) + m;
      y[j + QK / 2] = d * static_cast<float>(x[b].qs[j] >> 4) + m;
    }
  }
}
float dot_q4_1(int64_t n, const void* vw, const void* va) {
  const BlockQ4_1* w = static_cast<const BlockQ4_1*>(vw);
  const BlockQ8_1* a = static_cast<const BlockQ8_1*>(va);
  float s = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int j = 0; j < QK / 2; ++j) {
      isum += (w[b].qs[j] & 0xF) * a[b].qs[j];
      isum += (w[b].qs[j] >> 4) * a[b].qs[j + QK / 2];
    }
    s += h2f(w[b].d) * h2f(a[b].d) * static_cast<float>(isum) + h2f(w[b].m) * h2f(a[b].s);
  }
  return s;
}

// Shared by Q8_0/Q8_1: q = roundf(x / d) with d = amax / 127 (as ggml). Returns d.
float quantize_q8_block(const float* x, int8_t* qs, int len) {
  float amax = 0;
  for (int j = 0; j < len; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < len; ++j) qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  return d;
}

void q_q8_0(const float* x, void* vy, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(vy);
  for (int64_t b = 0; b < n / QK; ++b, x += QK) y[b].d = f2h(quantize_q8_block(x, y[b].qs, QK));
}
void dq_q8_0(const void* vx, float* y, int64_t n) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = h2f(x[b].d);
    for (int j = 0; j < QK; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}
float dot_q8_0(int64_t n, const void* vw, const void* va) {
  const BlockQ8_0* w = static_cast<const BlockQ8_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  float s = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int j = 0; j < QK; ++j) isum += w[b].qs[j] * a[b].qs[j];
    s += h2f(w[b].d) * h2f(a[b].d) * static_cast<float>(isum);
  }
  return s;
}

void q_q8_1(const float* x, void* vy, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(vy);
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    const float d = quantize_q8_block(x, y[b].qs, QK);
    int sum = 0;
    for (int j = 0; j < QK; ++j) sum += y[b].qs[j];
    y[b].d = f2h(d);
    y[b].s = f2h(d * static_cast<float>(sum));
  }
}
void dq_q8_1(const void* vx, float* y, int64_t n) {
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(vx);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = h2f(x[b].d);
    for (int j = 0; j < QK; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

// ---- K types -----------------------------------------------------------------------

void q_q8_k(const float* x, void* vy, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(vy);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    y[b].d = quantize_q8_block(x, y[b].qs, QK_K);
    for (int i = 0; i < QK_K / 16; ++i) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += y[b].qs[16 * i + j];
      y[b].bsums[i] = static_cast<int16_t>(s);
    }
  }
}
void dq_q8_k(const void* vx, float* y, int64_t n) {
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(vx);
  for (int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    for (int j = 0; j < QK_K; ++j) y[j] = static_cast<float>(x[b].qs[j]) * x[b].d;
  }
}

inline int nearest(float v) { return static_cast<int>(std::nearbyintf(v)); }

// Simple K quantizer shared by Q4_K (qmax 15) and Q5_K (qmax 31): per sub-block of 32
// value ≈ scale*q - min with min >= 0 (the sub-block minimum, clamped at 0), then the 8
// scales and mins are themselves quantized to 6 bits against d and dmin.
void quantize_k_subblocks(const float* x, int qmax, uint16_t* d_out, uint16_t* dmin_out,
                          uint8_t* scales12, uint8_t* q /* [256] */) {
  float scale[8], minv[8];
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float lo = 0, hi = 0;  // include 0 so min >= 0 after negation
    for (int l = 0; l < 32; ++l) { lo = std::min(lo, xs[l]); hi = std::max(hi, xs[l]); }
    scale[j] = (hi - lo) / qmax;
    minv[j] = -lo;
  }
  const float max_scale = *std::max_element(scale, scale + 8);
  const float max_min = *std::max_element(minv, minv + 8);
  const uint16_t dh = f2h(max_scale / 63), dmh = f2h(max_min / 63);
  const float d = h2f(dh), dmin = h2f(dmh);
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    // Round scales up so the top of the range still fits in qmax.
    sc[j] = d > 0 ? static_cast<uint8_t>(std::min(63, static_cast<int>(std::ceil(scale[j] / d)))) : 0;
    mn[j] = dmin > 0 ? static_cast<uint8_t>(std::min(63, nearest(minv[j] / dmin))) : 0;
  }
  pack_scale_min_k4(sc, mn, scales12);
  *d_out = dh;
  *dmin_out = dmh;
  for (int j = 0; j < 8; ++j) {
    const float ds = d * sc[j], dm = dmin * mn[j];
    for (int l = 0; l < 32; ++l) {
      const int v = ds > 0 ? nearest((x[32 * j + l] + dm) / ds) : 0;
      q[32 * j + l] = static_cast<uint8_t>(std::clamp(v, 0, qmax));
    }
  }
}

void q_q4_k(const float* x, void* vy, int64_t n) {
  BlockQ4_K* y = static_cast<BlockQ4_K*>(vy);
  uint8_t q[QK_K];
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    quantize_k_subblocks(x, 15, &y[b].d, &y[b].dmin, y[b].scales, q);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        y[b].qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  }
}
void dq_q4_k(const void* vx, float* y, int64_t n) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(vx);
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      unpack_scale_min_k4(x[b].scales, j, &sc, &mn);
      const float d1 = d * sc, m1 = dmin * mn;
      const uint8_t* qs = x[b].qs + 32 * (j / 2);
      const int shift = (j & 1) * 4;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((qs[l] >> shift) & 0xF) - m1;
    }
  }
}
float dot_q4_k(int64_t n, const void* vw, const void* va) {
  const BlockQ4_K* w = static_cast<const BlockQ4_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  float s = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      unpack_scale_min_k4(w[b].scales, j, &sc, &mn);
      const uint8_t* qs = w[b].qs + 32 * (j / 2);
      const int shift = (j & 1) * 4;
      int p = 0;
      for (int l = 0; l < 32; ++l) p += ((qs[l] >> shift) & 0xF) * a[b].qs[32 * j + l];
      sumi += sc * p;
      summ += mn * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
    }
    s += h2f(w[b].d) * a[b].d * static_cast<float>(sumi) -
         h2f(w[b].dmin) * a[b].d * static_cast<float>(summ);
  }
  return s;
}

inline int q5k_value(const BlockQ5_K& x, int j, int l) {
  const int lo = (x.qs[32 * (j / 2) + l] >> ((j & 1) * 4)) & 0xF;
  return lo | (((x.qh[l] >> j) & 1) << 4);
}

void q_q5_k(const float* x, void* vy, int64_t n) {
  BlockQ5_K* y = static_cast<BlockQ5_K*>(vy);
  uint8_t q[QK_K];
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    quantize_k_subblocks(x, 31, &y[b].d, &y[b].dmin, y[b].scales, q);
    std::memset(y[b].qh, 0, sizeof(y[b].qh));
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        y[b].qs[32 * c + l] =
            static_cast<uint8_t>((q[64 * c + l] & 0xF) | ((q[64 * c + 32 + l] & 0xF) << 4));
    for (int j = 0; j < 8; ++j)
      for (int l = 0; l < 32; ++l) y[b].qh[l] |= static_cast<uint8_t>((q[32 * j + l] >> 4) << j);
  }
}
void dq_q5_k(const void* vx, float* y, int64_t n) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(vx);
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      unpack_scale_min_k4(x[b].scales, j, &sc, &mn);
      const float d1 = d * sc, m1 = dmin * mn;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q5k_value(x[b], j, l)) - m1;
    }
  }
}
float dot_q5_k(int64_t n, const void* vw, const void* va) {
  const BlockQ5_K* w = static_cast<const BlockQ5_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  float s = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      unpack_scale_min_k4(w[b].scales, j, &sc, &mn);
      int p = 0;
      for (int l = 0; l < 32; ++l) p += q5k_value(w[b], j, l) * a[b].qs[32 * j + l];
      sumi += sc * p;
      summ += mn * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
    }
    s += h2f(w[b].d) * a[b].d * static_cast<float>(sumi) -
         h2f(w[b].dmin) * a[b].d * static_cast<float>(summ);
  }
  return s;
}

// Q6_K element e (0..255) as an unsigned 6-bit value (subtract 32 for the signed one).
inline int q6k_value(const BlockQ6_K& x, int e) {
  const int h = e / 128, g = (e % 128) / 32, l = e % 32;
  const int lo = (x.ql[64 * h + l + 32 * (g & 1)] >> (g >= 2 ? 4 : 0)) & 0xF;
  const int hi = (x.qh[32 * h + l] >> (2 * g)) & 3;
  return lo | (hi << 4);
}

void q_q6_k(const float* x, void* vy, int64_t n) {
  BlockQ6_K* y = static_cast<BlockQ6_K*>(vy);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    float scale[16];
    for (int i = 0; i < 16; ++i) {
      float amax = 0;
      for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * i + l]));
      scale[i] = amax / 31;
    }
    const float max_scale = *std::max_element(scale, scale + 16);
    y[b].d = f2h(max_scale / 127);
    const float d = h2f(y[b].d);
    uint8_t q[QK_K];
    for (int i = 0; i < 16; ++i) {
      const int sc = d > 0 ? std::min(127, static_cast<int>(std::ceil(scale[i] / d))) : 0;
      y[b].scales[i] = static_cast<int8_t>(sc);
      const float ds = d * sc;
      for (int l = 0; l < 16; ++l) {
        const int v = ds > 0 ? nearest(x[16 * i + l] / ds) : 0;
        q[16 * i + l] = static_cast<uint8_t>(std::clamp(v, -32, 31) + 32);
      }
    }
    std::memset(y[b].ql, 0, sizeof(y[b].ql));
    std::memset(y[b].qh, 0, sizeof(y[b].qh));
    for (int e = 0; e < QK_K; ++e) {
      const int h = e / 128, g = (e % 128) / 32, l = e % 32;
      y[b].ql[64 * h + l + 32 * (g & 1)] |= static_cast<uint8_t>((q[e] & 0xF) << (g >= 2 ? 4 : 0));
      y[b].qh[32 * h + l] |= static_cast<uint8_t>((q[e] >> 4) << (2 * g));
    }
  }
}
void dq_q6_k(const void* vx, float* y, int64_t n) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(vx);
  for (int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const float d = h2f(x[b].d);
    for (int e = 0; e < QK_K; ++e)
      y[e] = (d * x[b].scales[e / 16]) * static_cast<float>(q6k_value(x[b], e) - 32);
  }
}
float dot_q6_k(int64_t n, const void* vw, const void* va) {
  const BlockQ6_K* w = static_cast<const BlockQ6_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  float s = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    int sumi = 0;
    for (int i = 0; i < 16; ++i) {
      int p = 0;
      for (int l = 0; l < 16; ++l) p += (q6k_value(w[b], 16 * i + l) - 32) * a[b].qs[16 * i + l];
      sumi += w[b].scales[i] * p;
    }
    s += h2f(w[b].d) * a[b].d * static_cast<float>(sumi);
  }
  return s;
}

}  // namespace

void fill_ref_kernels(KernelTable& k) {
  k.t[SLOT_F32] = {q_f32, dq_f32, dot_f32};
  k.t[SLOT_F16] = {q_f16, dq_f16, dot_f16};
  k.t[SLOT_BF16] = {q_bf16, dq_bf16, dot_bf16};
  k.t[SLOT_Q4_0] = {q_q4_0, dq_q4_0, dot_q4_0};
  k.t[SLOT_Q4_1] = {q_q4_1, dq_q4_1, dot_q4_1};
  k.t[SLOT_Q8_0] = {q_q8_0, dq_q8_0, dot_q8_0};
  k.t[SLOT_Q8_1] = {q_q8_1, dq_q8_1, nullptr};
  k.t[SLOT_Q4_K] = {q_q4_k, dq_q4_k, dot_q4_k};
  k.t[SLOT_Q5_K] = {q_q5_k, dq_q5_k, dot_q5_k};
  k.t[SLOT_Q6_K] = {q_q6_k, dq_q6_k, dot_q6_k};
  k.t[SLOT_Q8_K] = {q_q8_k, dq_q8_k, nullptr};
}

}  // namespace parallama
