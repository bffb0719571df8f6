// Shard-invariant dot products for row-parallel layers (attn_output, ffn_down).
//
// A row-parallel layer splits the input columns over TP ranks and sums the
// per-rank partial results. With float accumulation that sum rounds differently
// from the single-rank dot product, and the next layer's 8-bit activation
// quantization can turn a last-bit difference into a whole quantization step.
// These kernels instead accumulate in double:
//   - quantized weights: per block the term d_w*d_a*isum (+ m_w*s_a for Q4_1,
//     - dmin*d_a*summ for Q4_K/Q5_K) with the integer dot exact. For Q4_0, Q4_1
//     and Q8_0 the two f16 scales multiply exactly in f32 and the product times
//     isum is exact in double, so each block term is exact; K types compute it
//     the same deterministic way whatever the shard.
//   - float weights (F32/F16/BF16): every w*a product is exact in double.
// The result is a double that depends on the summation order only at the 1e-16
// level, so a split at block boundaries into partial doubles, summed (all-reduce
// in double) and rounded to float once, gives the single-rank float in all but
// vanishingly rare cases. Callers must round the final sum, not the partials.
//
// Activations are quantized exactly as matmul() does (vec_dot_type, quant.h),
// which is per block and so identical for a shard's columns and the whole row.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/cpu_isa.h"
#include "core/ggml_type.h"

namespace parallama {

// One weight row (type w, n elements) with one activation row of vec_dot_type(w).
using ExactDotFn = double (*)(int64_t n, const void* w_row, const void* act_row);
// n_rows weight rows (w_stride bytes apart) with one activation row:
// y[r] = exact dot of row r, each row with the same arithmetic as ExactDotFn's
// own ISA (so results do not depend on how rows are grouped into calls).
using ExactRowsFn = void (*)(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows,
                             const void* act_row, double* y);

// Optional batch form: n_rows rows x n_tok activation rows (act_stride bytes
// apart), y[t * y_stride + r]; the same arithmetic per element as rows.
using ExactGemmFn = void (*)(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows,
                             const uint8_t* act, size_t act_stride, int64_t n_tok, double* y,
                             int64_t y_stride);

struct ExactKernels {
  ExactDotFn dot = nullptr;
  ExactRowsFn rows = nullptr;
  ExactGemmFn gemm = nullptr;  // null: loop rows per token
};

// Kernels of weight type w for an ISA (clamped to the CPU); throws Error for
// types without an exact path.
const ExactKernels& exact_kernels(GgmlType w, CpuIsa isa);
// The same for active_cpu_isa().
const ExactKernels& exact_kernels(GgmlType w);

// Checked front ends (n must be a multiple of w's block size).
double vec_dot_exact(GgmlType w, int64_t n, const void* w_row, const void* act_row);
namespace ref {
double vec_dot_exact(GgmlType w, int64_t n, const void* w_row, const void* act_row);
}  // namespace ref

// ---- kernel tables (internal; filled per ISA translation unit) --------------------

constexpr int kExactSlots = 9;  // F32 F16 BF16 Q4_0 Q4_1 Q8_0 Q4_K Q5_K Q6_K
int exact_slot(GgmlType w);     // -1 when unsupported

struct ExactKernelTable {
  ExactKernels k[kExactSlots];
};
void fill_exact_ref_kernels(ExactKernelTable& t);
void fill_exact_avx2_kernels(ExactKernelTable& t);
void fill_exact_avx512_kernels(ExactKernelTable& t);
void fill_exact_avx512vnni_kernels(ExactKernelTable& t);

}  // namespace parallama
