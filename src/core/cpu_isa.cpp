// CPU feature detection via cpuid + xgetbv (the OS must save the wide registers).
#include "core/cpu_isa.h"

#include <cpuid.h>

#include <cstdint>

#include <cstdlib>
#include <cstring>

namespace parallama {
namespace {

uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuIsa detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return CpuIsa::SCALAR;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12),
             f16c = c & (1u << 29);
  if (!osxsave || !avx) return CpuIsa::SCALAR;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_os) return CpuIsa::SCALAR;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return CpuIsa::SCALAR;
  const bool avx2 = b & (1u << 5);
  if (!(avx2 && fma && f16c)) return CpuIsa::SCALAR;
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  const bool vnni = c & (1u << 11);
  if (!(zmm_os && f && dq && bw && vl)) return CpuIsa::AVX2;
  return vnni ? CpuIsa::AVX512_VNNI : CpuIsa::AVX512;
}

}  // namespace

CpuIsa detected_cpu_isa() {
  static const CpuIsa isa = detect();
  return isa;
}

CpuIsa active_cpu_isa() {
  static const CpuIsa isa = [] {
    CpuIsa best = detected_cpu_isa();
    const char* e = std::getenv("PARALLAMA_ISA");
    if (!e || !*e) return best;
    CpuIsa cap = best;
    if (!std::strcmp(e, "scalar")) cap = CpuIsa::SCALAR;
    else if (!std::strcmp(e, "avx2")) cap = CpuIsa::AVX2;
    else if (!std::strcmp(e, "avx512")) cap = CpuIsa::AVX512;
    else if (!std::strcmp(e, "avx512vnni")) cap = CpuIsa::AVX512_VNNI;
    return static_cast<int>(cap) < static_cast<int>(best) ? cap : best;
  }();
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::SCALAR: return "scalar";
    case CpuIsa::AVX2: return "avx2";
    case CpuIsa::AVX512: return "avx512";
    case CpuIsa::AVX512_VNNI: return "avx512vnni";
  }
  return "unknown";
}

}  // namespace parallama
