// Runtime CPU feature detection and ISA choice for kernel dispatch.
// PARALLAMA_ISA=scalar|avx2|avx512|avx512vnni caps the choice (for tests and benchmarks).
#pragma once

namespace parallama {

enum class CpuIsa { SCALAR = 0, AVX2 = 1, AVX512 = 2, AVX512_VNNI = 3 };

CpuIsa detected_cpu_isa();  // best the CPU supports
CpuIsa active_cpu_isa();    // min(detected, PARALLAMA_ISA cap); cached
const char* cpu_isa_name(CpuIsa isa);

}  // namespace parallama
