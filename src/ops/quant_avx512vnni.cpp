// avx512vnni kernels: the shared SIMD implementation compiled with this TU's ISA flags.
#define PL_SIMD_NS avx512vnni
#define PL_SIMD_VNNI 1
#define PL_SIMD_512 1
#include "ops/quant_simd_impl.h"

namespace parallama {
void fill_avx512vnni_kernels(KernelTable& k) { avx512vnni::fill_simd_kernels(k); }
}  // namespace parallama
