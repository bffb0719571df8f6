// avx512vnni exact dot products: quant_exact_impl.h compiled with this TU's ISA flags.
#define PL_EXACT_NS exact_avx512vnni
#define PL_EXACT_VNNI 1
#define PL_EXACT_512 1
#include "ops/quant_exact_impl.h"

namespace parallama {
void fill_exact_avx512vnni_kernels(ExactKernelTable& t) { exact_avx512vnni::fill_exact_simd_kernels(t); }
}  // namespace parallama
