// avx512 kernels: the shared SIMD implementation compiled with this TU's ISA flags.
#define PL_SIMD_NS avx512
#define PL_SIMD_VNNI 0
#define PL_SIMD_512 1
#include "ops/quant_simd_impl.h"

namespace parallama {
void fill_avx512_kernels(KernelTable& k) { avx512::fill_simd_kernels(k); }
}  // namespace parallama
