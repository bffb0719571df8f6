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

struct TypeKernels {
  QuantizeRowFn quantize = nullptr;
  DequantizeRowFn dequantize = nullptr;
  VecDotFn vec_dot = nullptr;
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

}  // namespace parallama
