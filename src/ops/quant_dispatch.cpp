// Front end of quant.h: one kernel table per ISA, built once; calls are a table lookup.
#include <algorithm>
#include <array>
#include <mutex>

#include "core/check.h"
#include "ops/quant.h"
#include "ops/quant_kernels.h"
#include "ops/repack_q4k.h"

namespace parallama {

GgmlType vec_dot_type(GgmlType w) {
  switch (w) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16: return GgmlType::F32;
    case GgmlType::Q4_0:
    case GgmlType::Q8_0: return GgmlType::Q8_0;
    case GgmlType::Q4_1: return GgmlType::Q8_1;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return GgmlType::Q8_K;
    default: PL_THROW("no matmul support for weight type " << type_name(w));
  }
}

int quant_slot(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return SLOT_F32;
    case GgmlType::F16: return SLOT_F16;
    case GgmlType::BF16: return SLOT_BF16;
    case GgmlType::Q4_0: return SLOT_Q4_0;
    case GgmlType::Q4_1: return SLOT_Q4_1;
    case GgmlType::Q8_0: return SLOT_Q8_0;
    case GgmlType::Q8_1: return SLOT_Q8_1;
    case GgmlType::Q4_K: return SLOT_Q4_K;
    case GgmlType::Q5_K: return SLOT_Q5_K;
    case GgmlType::Q6_K: return SLOT_Q6_K;
    case GgmlType::Q8_K: return SLOT_Q8_K;
    default: return -1;
  }
}

const KernelTable& kernel_table(CpuIsa isa) {
  static const std::array<KernelTable, 4> tables = [] {
    std::array<KernelTable, 4> t{};
    const int best = static_cast<int>(detected_cpu_isa());
    for (int i = 0; i < 4; ++i) {
      fill_ref_kernels(t[i]);
      if (i >= 1 && best >= 1) fill_avx2_kernels(t[i]), fill_x16_avx2_kernels(t[i]), fill_x16_q4k_avx2_kernels(t[i]);
      if (i >= 2 && best >= 2) fill_avx512_kernels(t[i]), fill_x16_avx512_kernels(t[i]);
      if (i >= 3 && best >= 3)
        fill_avx512vnni_kernels(t[i]), fill_x16_avx512vnni_kernels(t[i]), fill_x16_q4k_avx512vnni_kernels(t[i]);
    }
    return t;
  }();
  int i = static_cast<int>(isa);
  i = std::min(std::max(i, 0), static_cast<int>(detected_cpu_isa()));
  return tables[i];
}

const KernelTable& active_kernel_table() {
  static const KernelTable& t = kernel_table(active_cpu_isa());
  return t;
}

namespace {
int checked_slot(GgmlType t, int64_t n) {
  const int s = quant_slot(t);
  if (s < 0) PL_THROW("unsupported tensor type " << type_name(t));
  const int64_t bs = type_traits(t).block_size;
  PL_CHECK_MSG(n >= 0 && n % bs == 0,
               "row of " << n << " elements is not a multiple of " << bs << " for " << type_name(t));
  return s;
}
}  // namespace

const TypeKernels& type_kernels(GgmlType t) {
  const int s = quant_slot(t);
  if (s < 0) PL_THROW("unsupported tensor type " << type_name(t));
  return active_kernel_table().t[s];
}

void quantize_row(GgmlType t, const float* x, void* y, int64_t n) {
  active_kernel_table().t[checked_slot(t, n)].quantize(x, y, n);
}
void dequantize_row(GgmlType t, const void* x, float* y, int64_t n) {
  active_kernel_table().t[checked_slot(t, n)].dequantize(x, y, n);
}
float vec_dot(GgmlType w, int64_t n, const void* w_row, const void* act_row) {
  const VecDotFn f = active_kernel_table().t[checked_slot(w, n)].vec_dot;
  if (!f) PL_THROW(type_name(w) << " is not a weight type");
  return f(n, w_row, act_row);
}

namespace ref {
void quantize_row(GgmlType t, const float* x, void* y, int64_t n) {
  kernel_table(CpuIsa::SCALAR).t[checked_slot(t, n)].quantize(x, y, n);
}
void dequantize_row(GgmlType t, const void* x, float* y, int64_t n) {
  kernel_table(CpuIsa::SCALAR).t[checked_slot(t, n)].dequantize(x, y, n);
}
float vec_dot(GgmlType w, int64_t n, const void* w_row, const void* act_row) {
  const VecDotFn f = kernel_table(CpuIsa::SCALAR).t[checked_slot(w, n)].vec_dot;
  if (!f) PL_THROW(type_name(w) << " is not a weight type");
  return f(n, w_row, act_row);
}
}  // namespace ref

}  // namespace parallama
