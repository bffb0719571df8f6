// Element-wise and attention ops of the transformer block (CPU). The front end
// dispatches at run time to a build of the same kernels for the best ISA
// (nn_kernels.inc compiled once per ISA, as CTranslate2 does).
#pragma once

#include <cstdint>

namespace parallama {

enum class RopeType { NORM, NEOX };  // NORM rotates (x[2i], x[2i+1]); NEOX (x[i], x[i + n_rot/2])

struct RopeParams {
  RopeType type = RopeType::NORM;
  int32_t n_rot = 0;             // rotated dims per head (<= head_dim)
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;       // 1 / linear scaling factor
  const float* freq_factors = nullptr;  // [n_rot/2] optional divisors (llama3 rope_freqs)
};

// One attention problem: a query row against n_ctx cached positions of one KV head,
// stored in blocks of block_size positions, f32 or f16. K blocks are transposed
// (element d of the position at slot j is at [d * block_size + j]) so that one
// vector holds one dimension of consecutive positions; V blocks are row-major.
struct PagedKv {
  const void* const* k_blocks;  // [n_blocks] -> [head_dim, block_size] f32 or f16
  const void* const* v_blocks;  // [n_blocks] -> [block_size, head_dim] f32 or f16
  int32_t block_size;
  int32_t head_dim;
  bool f16 = false;  // element type of the blocks (f16: IEEE half, as ggml's F16)
};

namespace nn {

// y[n] = x[n] / rms(x) * w[n]   (x may alias y)
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);
// x: [n_heads, head_dim] rotated in place for position pos.
void rope(float* x, int32_t n_heads, int32_t head_dim, int32_t pos, const RopeParams& p);
// out[n] = silu(g[n]) * u[n]
void silu_mul(const float* g, const float* u, float* out, int64_t n);
// y[n] += x[n]
void add_inplace(float* y, const float* x, int64_t n);
// Causal attention of n_q query heads that share one KV head (GQA group) at
// one position: q [n_q, head_dim], out [n_q, head_dim], attending to the first
// n_ctx positions.
void attend(const float* q, int32_t n_q, const PagedKv& kv, int32_t n_ctx, float scale,
            float* out);

}  // namespace nn
}  // namespace parallama
