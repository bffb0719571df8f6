// x16 kernels with AVX-512 VNNI (vpdpbusd).
#define PL_X16_NS x16_avx512vnni
#define PL_X16_VNNI 1
#include "ops/gemm_x16_impl.h"

namespace parallama {
void fill_x16_avx512vnni_kernels(KernelTable& k) { x16_avx512vnni::fill_x16_kernels(k); }
}  // namespace parallama
