#include "ops/nn.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/cpu_isa.h"

namespace parallama {

#define NN_DECLARE(ns)                                                                   \
  namespace ns {                                                                         \
  void rms_norm(const float*, const float*, float*, int64_t, float);                     \
  void silu_mul(const float*, const float*, float*, int64_t);                            \
  void add_inplace(float*, const float*, int64_t);                                       \
  void attend_range(const float*, int32_t, const PagedKv&, int32_t, int32_t, float, float*, float*, float*); \
  }
NN_DECLARE(nn_generic)
NN_DECLARE(nn_avx2)
NN_DECLARE(nn_avx512)
NN_DECLARE(nn_avx512vnni)
#undef NN_DECLARE

namespace {
struct NnTable {
  void (*rms_norm)(const float*, const float*, float*, int64_t, float);
  void (*silu_mul)(const float*, const float*, float*, int64_t);
  void (*add_inplace)(float*, const float*, int64_t);
  void (*attend_range)(const float*, int32_t, const PagedKv&, int32_t, int32_t, float, float*, float*, float*);
};

const NnTable& table() {
  // The VNNI build differs only in the Q8_0-cache attention (integer scores).
  static const NnTable t =
      active_cpu_isa() >= CpuIsa::AVX512_VNNI
          ? NnTable{nn_avx512vnni::rms_norm, nn_avx512vnni::silu_mul, nn_avx512vnni::add_inplace,
                    nn_avx512vnni::attend_range}
      : active_cpu_isa() >= CpuIsa::AVX512
          ? NnTable{nn_avx512::rms_norm, nn_avx512::silu_mul, nn_avx512::add_inplace, nn_avx512::attend_range}
      : active_cpu_isa() >= CpuIsa::AVX2
          ? NnTable{nn_avx2::rms_norm, nn_avx2::silu_mul, nn_avx2::add_inplace, nn_avx2::attend_range}
          : NnTable{nn_generic::rms_norm, nn_generic::silu_mul, nn_generic::add_inplace, nn_generic::attend_range};
  return t;
}
}  // namespace

namespace nn {

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  table().rms_norm(x, w, y, n, eps);
}
void silu_mul(const float* g, const float* u, float* out, int64_t n) { table().silu_mul(g, u, out, n); }
void add_inplace(float* y, const float* x, int64_t n) { table().add_inplace(y, x, n); }
void attend(const float* q, int32_t n_q, const PagedKv& kv, int32_t n_ctx, float scale, float* out) {
  table().attend_range(q, n_q, kv, 0, n_ctx, scale, out, nullptr, nullptr);
}

void attend_partial(const float* q, int32_t n_q, const PagedKv& kv, int32_t p_begin, int32_t p_end, float scale,
                    float* acc, float* mx, float* sum) {
  PL_CHECK_MSG(p_begin >= 0 && p_begin % 64 == 0 && mx && sum,
               "attend_partial: ranges start at multiples of 64 (got " << p_begin << ")");
  table().attend_range(q, n_q, kv, p_begin, std::max(p_begin, p_end), scale, acc, mx, sum);
}

void attend_merge(int32_t n_parts, int32_t n_q, int32_t head_dim, int32_t part_heads, const float* acc,
                  const float* mx, const float* sum, float* out) {
  PL_CHECK_MSG(part_heads >= n_q, "attend_merge: " << part_heads << " heads per part for " << n_q);
  const int64_t stride = static_cast<int64_t>(part_heads) * head_dim;
  for (int32_t h = 0; h < n_q; ++h) {
    float m = -INFINITY;
    for (int32_t i = 0; i < n_parts; ++i) m = std::max(m, mx[i * part_heads + h]);
    float* o = out + static_cast<int64_t>(h) * head_dim;
    std::fill(o, o + head_dim, 0.0f);
    float l = 0.0f;
    for (int32_t i = 0; i < n_parts; ++i) {
      if (sum[i * part_heads + h] == 0.0f) continue;  // an empty range
      const float c = std::exp(mx[i * part_heads + h] - m);
      l += sum[i * part_heads + h] * c;
      const float* a = acc + i * stride + static_cast<int64_t>(h) * head_dim;
      for (int32_t d = 0; d < head_dim; ++d) o[d] += a[d] * c;
    }
    const float inv = 1.0f / l;
    for (int32_t d = 0; d < head_dim; ++d) o[d] *= inv;
  }
}

// The angle for pair i is pos * freq_scale * base^(-2i/n_rot) / freq_factors[i].
void rope_angles(int32_t pos, const RopeParams& p, float* cs, float* sn) {
  const int32_t half = p.n_rot / 2;
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  float theta = static_cast<float>(pos) * p.freq_scale;
  for (int32_t i = 0; i < half; ++i) {
    const float t = p.freq_factors ? theta / p.freq_factors[i] : theta;
    cs[i] = std::cos(t);
    sn[i] = std::sin(t);
    theta *= theta_scale;
  }
}

// Scalar: 2 * n_heads * n_rot / 2 multiply-adds per token and layer.
void rope_apply(float* x, int32_t n_heads, int32_t head_dim, const float* cs, const float* sn,
                const RopeParams& p) {
  const int32_t half = p.n_rot / 2;
  for (int32_t h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int32_t i = 0; i < half; ++i) {
      const int32_t a = p.type == RopeType::NORM ? 2 * i : i;
      const int32_t b = p.type == RopeType::NORM ? 2 * i + 1 : i + half;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * cs[i] - x1 * sn[i];
      v[b] = x0 * sn[i] + x1 * cs[i];
    }
  }
}

void rope(float* x, int32_t n_heads, int32_t head_dim, int32_t pos, const RopeParams& p) {
  PL_CHECK_MSG(p.n_rot > 0 && p.n_rot % 2 == 0 && p.n_rot <= 1024 && p.n_rot <= head_dim,
               "rope: n_rot " << p.n_rot << " invalid for head_dim " << head_dim);
  float cs[512], sn[512];
  rope_angles(pos, p, cs, sn);
  rope_apply(x, n_heads, head_dim, cs, sn, p);
}

}  // namespace nn
}  // namespace parallama
