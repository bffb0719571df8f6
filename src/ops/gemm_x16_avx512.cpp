// x16 kernels for AVX-512 without VNNI (vpmaddubsw path; 4-bit types only).
#define PL_X16_NS x16_avx512
#define PL_X16_VNNI 0
#include "ops/gemm_x16_impl.h"

namespace parallama {
void fill_x16_avx512_kernels(KernelTable& k) { x16_avx512::fill_x16_kernels(k); }
}  // namespace parallama
