// avx2 exact dot products: quant_exact_impl.h compiled with this TU's ISA flags.
#define PL_EXACT_NS exact_avx2
#define PL_EXACT_VNNI 0
#define PL_EXACT_512 0
#include "ops/quant_exact_impl.h"

namespace parallama {
void fill_exact_avx2_kernels(ExactKernelTable& t) { exact_avx2::fill_exact_simd_kernels(t); }
}  // namespace parallama
