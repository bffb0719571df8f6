// x16 Q4_K kernel with AVX-512 VNNI (vpdpbusd, vpdpwssd).
#define PL_X16K_NS x16q4k_avx512vnni
#define PL_X16K_VNNI 1
#include "ops/gemm_x16_q4k_impl.h"

namespace parallama {
void fill_x16_q4k_avx512vnni_kernels(KernelTable& k) { x16q4k_avx512vnni::fill_x16_q4k_kernels(k); }
}  // namespace parallama
