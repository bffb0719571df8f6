// Quantized tensor formats: front end over per-ISA kernels.
//
// Weights of type W are multiplied with activations first quantized to
// vec_dot_type(W) (Q8_0 for Q4_0/Q8_0, Q8_1 for Q4_1, Q8_K for the K types,
// F32 for F32/F16/BF16), then reduced with integer dot products.
// Every function dispatches on active_cpu_isa(); the `ref` namespace holds the
// scalar reference the SIMD paths are tested against.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/ggml_type.h"

namespace parallama {

GgmlType vec_dot_type(GgmlType weight_type);

// x[n] f32 -> y in type t (t: any supported weight type, or Q8_0/Q8_1/Q8_K). n % block == 0.
void quantize_row(GgmlType t, const float* x, void* y, int64_t n);
// x in type t -> y[n] f32.
void dequantize_row(GgmlType t, const void* x, float* y, int64_t n);
// Dot product of one weight row (type w) with one activation row of type vec_dot_type(w).
float vec_dot(GgmlType w, int64_t n, const void* w_row, const void* act_row);

namespace ref {
void quantize_row(GgmlType t, const float* x, void* y, int64_t n);
void dequantize_row(GgmlType t, const void* x, float* y, int64_t n);
float vec_dot(GgmlType w, int64_t n, const void* w_row, const void* act_row);
}  // namespace ref

}  // namespace parallama
