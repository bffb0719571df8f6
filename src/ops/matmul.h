// y = x · Wᵀ for a weight matrix stored row-major in any supported type.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/ggml_type.h"
#include "core/thread_pool.h"

namespace parallama {

// A view of a 2-D weight: n_rows rows of n_cols elements, row stride row_size(type, n_cols).
struct WeightView {
  const void* data = nullptr;  // [n_rows, n_cols] in `type`
  GgmlType type = GgmlType::F32;
  int64_t n_rows = 0;  // output features
  int64_t n_cols = 0;  // input features
  // Rows [0, packed_rows) are in the x16 layout (repack.h), the rest in GGUF order.
  int64_t packed_rows = 0;
};

// x: [n_tok, W.n_cols] f32 (row stride W.n_cols); y: [n_tok, W.n_rows] f32 (row stride W.n_rows).
// Activations are quantized once per row; work is split over rows of W so each
// thread streams a contiguous slice of the weights.
void matmul(const WeightView& W, const float* x, int64_t n_tok, float* y, ThreadPool& pool);

// Several weights that read the same x (Q/K/V, gate/up): y[i] = x · W[i]ᵀ with x
// quantized once and the rows of all weights in one set of tasks (one hand-off to
// the thread pool instead of n). Each y[i] gets exactly what matmul() gives. At
// most 4 weights; ones with different n_cols or activation types run one by one.
void matmul_many(const WeightView* const* W, float* const* y, int n, const float* x, int64_t n_tok,
                 ThreadPool& pool);

// Rows per task when n_rows are split over nth threads for n_tok tokens, each chunk
// at least min_rows and a multiple of align (x16 groups need 16); all rows in one
// chunk for one thread. Decode-sized batches (n_tok <= 4) stream each weight once
// and are bound by memory: one contiguous slice per thread keeps each thread's
// stream long for the hardware prefetcher (135M Q4_0 model, 2 threads: decode
// 247 -> 271-282 tok/s against 8 chunks per thread). Larger batches reuse the
// weights from cache and take ~8 chunks per thread, so a thread the OS delays
// does not hold the others up.
int64_t row_chunk(int64_t n_rows, int64_t nth, int64_t n_tok, int64_t min_rows, int64_t align);

// The activation rows a kernel for weight type w reads: x itself for float weights,
// else each row of x [n_tok, n_cols] quantized once to vec_dot_type(w) into a
// per-thread buffer (valid until this thread's next call). *stride: bytes per row.
const uint8_t* prepare_activations(GgmlType w, const float* x, int64_t n_tok, int64_t n_cols, size_t* stride,
                                   ThreadPool& pool);

}  // namespace parallama
