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
// stored in blocks of block_size positions, f32, f16 or Q8_0. K blocks are
// transposed (element d of the position at slot j is at [d * block_size + j]) so
// that one vector holds one dimension of consecutive positions; V blocks are
// row-major.
//
// Q8_0 blocks (head_dim % 32 == 0) hold per 32 values of a row one f16 scale and
// 32 int8, as GGUF's Q8_0, laid out for VNNI dot products over 16 positions:
//   K: uint8  [head_dim / 4, block_size, 4]  value + 128 (u8 operand of vpdpbusd)
//      f16    [head_dim / 32, block_size]    scales
//   V: int8   [block_size, head_dim]          values
//      f16    [head_dim / 32, block_size]    scales
// The query is quantized to Q8_0 per head, as llama.cpp's flash attention does for
// a Q8_0 K cache: a score is the sum over groups of (d_k * d_q) * (integer dot).
struct PagedKv {
  const void* const* k_blocks;  // [n_blocks] -> K block (layout above)
  const void* const* v_blocks;  // [n_blocks] -> V block
  int32_t block_size;
  int32_t head_dim;
  bool f16 = false;   // f16 blocks (IEEE half, as ggml's F16)
  bool q8_0 = false;  // Q8_0 blocks (takes precedence over f16)
};

namespace nn {

// y[n] = x[n] / rms(x) * w[n]   (x may alias y)
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);
// x: [n_heads, head_dim] rotated in place for position pos.
void rope(float* x, int32_t n_heads, int32_t head_dim, int32_t pos, const RopeParams& p);
// The same in two steps: the angles of one position, cs and sn [n_rot / 2]
// (every layer and head of a token shares them, so a forward pass computes them
// once per token instead of once per layer and tensor), then the rotation.
void rope_angles(int32_t pos, const RopeParams& p, float* cs, float* sn);
void rope_apply(float* x, int32_t n_heads, int32_t head_dim, const float* cs, const float* sn,
                const RopeParams& p);
// out[n] = silu(g[n]) * u[n]
void silu_mul(const float* g, const float* u, float* out, int64_t n);
// y[n] += x[n]
void add_inplace(float* y, const float* x, int64_t n);
// Causal attention of n_q query heads that share one KV head (GQA group) at
// one position: q [n_q, head_dim], out [n_q, head_dim], attending to the first
// n_ctx positions.
void attend(const float* q, int32_t n_q, const PagedKv& kv, int32_t n_ctx, float scale,
            float* out);
// The same over positions [p_begin, p_end) only (p_begin a multiple of 64), left
// unnormalised: acc [n_q, head_dim] and per head the running max mx[n_q] and
// sum[n_q] of exp(score - max). Parts of one context, each on its own thread,
// then merge with attend_merge: a decode step with fewer (token, KV head)
// items than threads still spreads its attention evenly.
void attend_partial(const float* q, int32_t n_q, const PagedKv& kv, int32_t p_begin, int32_t p_end, float scale,
                    float* acc, float* mx, float* sum);
// out [n_q, head_dim] from n_parts partials stored one after another with room
// for part_heads >= n_q heads each (acc [n_parts, part_heads, head_dim], mx and
// sum [n_parts, part_heads]; the first n_q heads of each are used).
void attend_merge(int32_t n_parts, int32_t n_q, int32_t head_dim, int32_t part_heads, const float* acc,
                  const float* mx, const float* sum, float* out);

}  // namespace nn
}  // namespace parallama
