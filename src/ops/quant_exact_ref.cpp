// Scalar reference of the exact (double-accumulated) dot products, and the
// dispatch front end of quant_exact.h. Block terms are summed in block order.
#include <algorithm>
#include <array>

#include "core/check.h"
#include "core/fp16.h"
#include "ops/quant_blocks.h"
#include "ops/quant_exact.h"

namespace parallama {
namespace {

inline double h2d(uint16_t h) { return static_cast<double>(fp16_to_fp32(h)); }

double dot_f32(int64_t n, const void* vw, const void* va) {
  const float* w = static_cast<const float*>(vw);
  const float* a = static_cast<const float*>(va);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(w[i]) * a[i];
  return s;
}
double dot_f16(int64_t n, const void* vw, const void* va) {
  const uint16_t* w = static_cast<const uint16_t*>(vw);
  const float* a = static_cast<const float*>(va);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += h2d(w[i]) * a[i];
  return s;
}
double dot_bf16(int64_t n, const void* vw, const void* va) {
  const uint16_t* w = static_cast<const uint16_t*>(vw);
  const float* a = static_cast<const float*>(va);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(bf16_to_fp32(w[i])) * a[i];
  return s;
}

double dot_q4_0(int64_t n, const void* vw, const void* va) {
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  double s = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int j = 0; j < QK / 2; ++j) {
      isum += ((w[b].qs[j] & 0xF) - 8) * a[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + QK / 2];
    }
    s += h2d(w[b].d) * h2d(a[b].d) * isum;  // exact: 11 + 11 + 16 bits
  }
  return s;
}

double dot_q4_1(int64_t n, const void* vw, const void* va) {
  const BlockQ4_1* w = static_cast<const BlockQ4_1*>(vw);
  const BlockQ8_1* a = static_cast<const BlockQ8_1*>(va);
  double s = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int j = 0; j < QK / 2; ++j) {
      isum += (w[b].qs[j] & 0xF) * a[b].qs[j];
      isum += (w[b].qs[j] >> 4) * a[b].qs[j + QK / 2];
    }
    s += h2d(w[b].d) * h2d(a[b].d) * isum;
    s += h2d(w[b].m) * h2d(a[b].s);
  }
  return s;
}

double dot_q8_0(int64_t n, const void* vw, const void* va) {
  const BlockQ8_0* w = static_cast<const BlockQ8_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  double s = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int j = 0; j < QK; ++j) isum += w[b].qs[j] * a[b].qs[j];
    s += h2d(w[b].d) * h2d(a[b].d) * isum;
  }
  return s;
}

// Q4_K / Q5_K: term = d*da*sumi - dmin*da*summ, both integer sums exact.
template <class Block, class Value>
double dot_k4(int64_t n, const void* vw, const void* va, Value value) {
  const Block* w = static_cast<const Block*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  double s = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    int64_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      unpack_scale_min_k4(w[b].scales, j, &sc, &mn);
      int p = 0;
      for (int l = 0; l < 32; ++l) p += value(w[b], j, l) * a[b].qs[32 * j + l];
      sumi += sc * p;
      summ += mn * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
    }
    const double da = a[b].d;
    s += h2d(w[b].d) * da * static_cast<double>(sumi);
    s -= h2d(w[b].dmin) * da * static_cast<double>(summ);
  }
  return s;
}

double dot_q4_k(int64_t n, const void* vw, const void* va) {
  return dot_k4<BlockQ4_K>(n, vw, va, [](const BlockQ4_K& x, int j, int l) {
    return (x.qs[32 * (j / 2) + l] >> ((j & 1) * 4)) & 0xF;
  });
}
double dot_q5_k(int64_t n, const void* vw, const void* va) {
  return dot_k4<BlockQ5_K>(n, vw, va, [](const BlockQ5_K& x, int j, int l) {
    const int lo = (x.qs[32 * (j / 2) + l] >> ((j & 1) * 4)) & 0xF;
    return lo | (((x.qh[l] >> j) & 1) << 4);
  });
}

double dot_q6_k(int64_t n, const void* vw, const void* va) {
  const BlockQ6_K* w = static_cast<const BlockQ6_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  double s = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    int64_t sumi = 0;
    for (int i = 0; i < 16; ++i) {
      int p = 0;
      for (int l = 0; l < 16; ++l) {
        const int e = 16 * i + l, h = e / 128, g = (e % 128) / 32, k = e % 32;
        const int lo = (w[b].ql[64 * h + k + 32 * (g & 1)] >> (g >= 2 ? 4 : 0)) & 0xF;
        const int hi = (w[b].qh[32 * h + k] >> (2 * g)) & 3;
        p += ((lo | (hi << 4)) - 32) * a[b].qs[e];
      }
      sumi += w[b].scales[i] * p;
    }
    s += h2d(w[b].d) * static_cast<double>(a[b].d) * static_cast<double>(sumi);
  }
  return s;
}

template <ExactDotFn F>
void rows_of(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const void* act,
             double* y) {
  for (int64_t r = 0; r < n_rows; ++r) y[r] = F(n, w + r * w_stride, act);
}

int checked_slot(GgmlType w, int64_t n) {
  const int s = exact_slot(w);
  if (s < 0) PL_THROW("no exact dot product for weight type " << type_name(w));
  const int64_t bs = type_traits(w).block_size;
  PL_CHECK_MSG(n >= 0 && n % bs == 0,
               "row of " << n << " elements is not a multiple of " << bs << " for " << type_name(w));
  return s;
}

}  // namespace

int exact_slot(GgmlType w) {
  switch (w) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::BF16: return 2;
    case GgmlType::Q4_0: return 3;
    case GgmlType::Q4_1: return 4;
    case GgmlType::Q8_0: return 5;
    case GgmlType::Q4_K: return 6;
    case GgmlType::Q5_K: return 7;
    case GgmlType::Q6_K: return 8;
    default: return -1;
  }
}

void fill_exact_ref_kernels(ExactKernelTable& t) {
  t.k[0] = {dot_f32, rows_of<dot_f32>, nullptr};
  t.k[1] = {dot_f16, rows_of<dot_f16>, nullptr};
  t.k[2] = {dot_bf16, rows_of<dot_bf16>, nullptr};
  t.k[3] = {dot_q4_0, rows_of<dot_q4_0>, nullptr};
  t.k[4] = {dot_q4_1, rows_of<dot_q4_1>, nullptr};
  t.k[5] = {dot_q8_0, rows_of<dot_q8_0>, nullptr};
  t.k[6] = {dot_q4_k, rows_of<dot_q4_k>, nullptr};
  t.k[7] = {dot_q5_k, rows_of<dot_q5_k>, nullptr};
  t.k[8] = {dot_q6_k, rows_of<dot_q6_k>, nullptr};
}

const ExactKernels& exact_kernels(GgmlType w, CpuIsa isa) {
  static const std::array<ExactKernelTable, 4> tables = [] {
    std::array<ExactKernelTable, 4> t{};
    const int best = static_cast<int>(detected_cpu_isa());
    for (int i = 0; i < 4; ++i) {
      fill_exact_ref_kernels(t[i]);
      if (i >= 1 && best >= 1) fill_exact_avx2_kernels(t[i]);
      if (i >= 2 && best >= 2) fill_exact_avx512_kernels(t[i]);
      if (i >= 3 && best >= 3) fill_exact_avx512vnni_kernels(t[i]);
    }
    return t;
  }();
  const int s = exact_slot(w);
  if (s < 0) PL_THROW("no exact dot product for weight type " << type_name(w));
  const int i = std::clamp(static_cast<int>(isa), 0, static_cast<int>(detected_cpu_isa()));
  return tables[i].k[s];
}

const ExactKernels& exact_kernels(GgmlType w) { return exact_kernels(w, active_cpu_isa()); }

double vec_dot_exact(GgmlType w, int64_t n, const void* w_row, const void* act_row) {
  checked_slot(w, n);
  return exact_kernels(w).dot(n, w_row, act_row);
}

namespace ref {
double vec_dot_exact(GgmlType w, int64_t n, const void* w_row, const void* act_row) {
  checked_slot(w, n);
  return exact_kernels(w, CpuIsa::SCALAR).dot(n, w_row, act_row);
}
}  // namespace ref

}  // namespace parallama
