#include "cli/read_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <utility>

#include "core/check.h"
#include "core/clock.h"

namespace parallama::cli {

namespace {

// Several independent accumulators each, so the adds never limit the load rate.
__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_set1_epi64(0), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
  }
  alignas(64) uint64_t l[8];
  _mm512_store_si512(l, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
  uint64_t s = 0;
  for (uint64_t v : l) s += v;
  return s;
}

__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_set1_epi64x(0), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) uint64_t l[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(l),
                     _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  return l[0] + l[1] + l[2] + l[3];
}

// Baseline build: the compiler vectorises this with 16-byte SSE2 loads.
uint64_t sum_sse2(const uint8_t* p, size_t n) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i < n / 8; i += 4) {
    s0 += q[i];
    s1 += q[i + 1];
    s2 += q[i + 2];
    s3 += q[i + 3];
  }
  return s0 + s1 + s2 + s3;
}

}  // namespace

std::vector<LoadWidth> load_widths(CpuIsa isa) {
  std::vector<LoadWidth> r = {{"sse2", sum_sse2}};
  if (isa >= CpuIsa::AVX2) r.push_back({"avx2", sum_avx2});
  if (isa >= CpuIsa::AVX512) r.push_back({"avx512", sum_avx512});
  return r;
}

double median_of(std::vector<double> v) {
  PL_CHECK(!v.empty());
  std::sort(v.begin(), v.end());
  const size_t m = v.size();
  return m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
}

ReadBandwidth::ReadBandwidth(int n_threads, int size_mib)
    : ReadBandwidth(Runner(), n_threads, size_mib) {}

ReadBandwidth::ReadBandwidth(Runner run, int n_threads, int size_mib)
    : bytes_(static_cast<size_t>(std::max(size_mib, 1)) << 20),
      region_(bytes_, "the read-bandwidth buffer"),
      run_(std::move(run)),
      begin_(std::max(n_threads, 1) + 1),
      partial_(std::max(n_threads, 1)) {
  PL_CHECK_MSG(n_threads >= 1 && size_mib >= 1, "read bandwidth: bad threads or size");
  if (!run_) {
    own_pool_ = std::make_unique<ThreadPool>(n_threads);
    run_ = [p = own_pool_.get()](const std::function<void(int, int)>& fn) { p->run(fn); };
  }
  // Contiguous per-thread slices, each a multiple of the page size (and so of 256 bytes).
  constexpr size_t kPage = 4096;
  const size_t pages = bytes_ / kPage;
  for (int t = 0; t <= n_threads; ++t) begin_[t] = pages * t / n_threads * kPage;
  uint8_t* const buf = region_.data();
  run_([&](int ith, int) {
    uint8_t* p = buf + begin_[ith];
    const size_t n = begin_[ith + 1] - begin_[ith];
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(i * 131 + 7);
  });
}

double ReadBandwidth::pass(const LoadWidth& w) {
  const uint8_t* const buf = region_.data();
  const double t0 = now_seconds();
  run_([&](int ith, int) { partial_[ith] = w.fn(buf + begin_[ith], begin_[ith + 1] - begin_[ith]); });
  const double dt = now_seconds() - t0;
  for (uint64_t v : partial_) checksum_ += v;
  return static_cast<double>(bytes_) / dt / 1e9;
}

}  // namespace parallama::cli
