// Per-ISA kernel tables behind quant.h. Each ISA translation unit fills the
// entries it accelerates; the rest keep the scalar reference.
#pragma once

#include <cstdint>

#include "core/cpu_isa.h"
#include "core/ggml_type.h"

namespace parallama {

using QuantizeRowFn = void (*)(const float* x, void* y, int64_t n);
using DequantizeRowFn = void (*)(const void* x, float* y, int64_t n);
using VecDotFn = float (*)(int64_t n, const void* w_row, const void* act_row);

// A batch product y = act · Wᵀ restricted to weight rows [r0, r1), for every token.
struct GemmArgs {
  const uint8_t* w = nullptr;  // [n_rows, n_cols] in the weight type, rows w_stride bytes apart
  size_t w_stride = 0;
  int64_t n_cols = 0;
  const uint8_t* act = nullptr;  // [n_tok, n_cols] in vec_dot_type, rows act_stride bytes apart
  size_t act_stride = 0;
  int64_t n_tok = 0;
  float* y = nullptr;  // [n_tok, y_stride] f32: y[t * y_stride + r]
  int64_t y_stride = 0;
  // When set (kernels that support it: gemm_x16), sums are accumulated in double
  // and written here instead of y, same indexing: [n_tok, y_stride] f64.
  double* y64 = nullptr;
};
using GemmRowsFn = void (*)(const GemmArgs& g, int64_t r0, int64_t r1);

struct TypeKernels {
  QuantizeRowFn quantize = nullptr;
  DequantizeRowFn dequantize = nullptr;
  VecDotFn vec_dot = nullptr;
  // Optional multi-token kernel (weights reused across a tile of tokens); when null,
  // matmul loops vec_dot. Results equal vec_dot's up to float summation order.
  GemmRowsFn gemm_rows = nullptr;
  // Kernel for weights repacked into the x16 layout (repack.h); r0, r1 multiples of 16.
  GemmRowsFn gemm_x16 = nullptr;
};

// Dense index of every type we handle (weights and activation-only types).
enum QuantSlot : int { SLOT_F32, SLOT_F16, SLOT_BF16, SLOT_Q4_0, SLOT_Q4_1, SLOT_Q8_0, SLOT_Q8_1,
                       SLOT_Q4_K, SLOT_Q5_K, SLOT_Q6_K, SLOT_Q8_K, N_SLOTS };

struct KernelTable {
  TypeKernels t[N_SLOTS];
};

// Slot of t, or -1 if unsupported.
int quant_slot(GgmlType t);

// The table for an ISA (clamped to what the CPU supports); built once.
const KernelTable& kernel_table(CpuIsa isa);
// The table for active_cpu_isa().
const KernelTable& active_kernel_table();
// Kernels of type t in the active table; throws Error for unsupported types.
const TypeKernels& type_kernels(GgmlType t);

void fill_ref_kernels(KernelTable& k);
void fill_avx2_kernels(KernelTable& k);
void fill_avx512_kernels(KernelTable& k);
void fill_avx512vnni_kernels(KernelTable& k);
void fill_x16_avx2_kernels(KernelTable& k);
void fill_x16_avx512_kernels(KernelTable& k);
void fill_x16_avx512vnni_kernels(KernelTable& k);

}  // namespace parallama
