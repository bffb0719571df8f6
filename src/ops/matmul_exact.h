// y = x · Wᵀ accumulated in double, for row-parallel layers whose per-rank
// partial sums must add up to the single-rank result (see ops/quant_exact.h).
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "ops/matmul.h"

namespace parallama {

// x: [n_tok, W.n_cols] f32; y: [n_tok, W.n_rows] f64 (row stride W.n_rows).
// Activations are quantized to vec_dot_type(W) exactly as matmul() does. Every
// y element is computed the same way whatever n_tok, thread count or row split,
// so a prompt batch and token-by-token decoding agree bit for bit.
void matmul_exact(const WeightView& W, const float* x, int64_t n_tok, double* y, ThreadPool& pool);

}  // namespace parallama
