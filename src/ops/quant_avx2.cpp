// avx2 kernels: the shared SIMD implementation compiled with this TU's ISA flags.
#define PL_SIMD_NS avx2
#define PL_SIMD_VNNI 0
#define PL_SIMD_512 0
#include "ops/quant_simd_impl.h"

namespace parallama {
void fill_avx2_kernels(KernelTable& k) { avx2::fill_simd_kernels(k); }
}  // namespace parallama
