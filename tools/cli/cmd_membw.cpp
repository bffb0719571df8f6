// parallama membw: measured read bandwidth of main memory, the bound that decode speed
// is compared against (decode reads every weight once per token).
//
// A buffer (by default far larger than the caches; the size of a model's weights when
// the question is how much of that footprint the caches serve) is first-touched by
// the threads that will read it (filled with non-zero data, so no page stays mapped
// to the shared zero page), then each thread streams its contiguous slice with
// vector loads whose sum is kept, so the reads cannot be optimised away. Several
// timed passes per load width; the median of the fastest width is the result (its
// best pass is reported too).
#include <immintrin.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "core/check.h"
#include "core/clock.h"
#include "core/cpu_isa.h"
#include "core/huge_region.h"
#include "core/thread_pool.h"

namespace parallama::cli {

namespace {

struct MembwArgs {
  int threads = 0;
  int size_mib = 1024;
  int reps = 10;
  bool json = false;
};

// Each reader sums 64-bit lanes of [p, p + n) (n a multiple of 256 bytes) into several
// independent accumulators, so the adds never limit the load rate. Every load width the
// CPU has is measured: which one streams fastest differs between cores (on Zen 4, one
// thread reads measurably faster with 16- or 32-byte loads than with 64-byte ones), and
// the bound is what the machine can reach, whatever the width.
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

struct Reader {
  const char* name;
  uint64_t (*fn)(const uint8_t*, size_t);
};

std::vector<Reader> readers(CpuIsa isa) {
  std::vector<Reader> r = {{"sse2", sum_sse2}};
  if (isa >= CpuIsa::AVX2) r.push_back({"avx2", sum_avx2});
  if (isa >= CpuIsa::AVX512) r.push_back({"avx512", sum_avx512});
  return r;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size();
  return m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
}

int run_membw(const MembwArgs& a) {
  if (a.size_mib < 1 || a.size_mib > (1 << 20)) PL_THROW("--size-mib must be in [1, 1048576]");
  if (a.reps < 1 || a.reps > 10000) PL_THROW("--reps must be in [1, 10000]");
  if (a.threads < 0 || a.threads > 1024) PL_THROW("--threads must be in [0, 1024]");
  const int n_threads =
      a.threads > 0 ? a.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  constexpr size_t kAlign = 4096;  // slices start on page boundaries
  const size_t bytes = static_cast<size_t>(a.size_mib) << 20;
  // Contiguous per-thread slices, each a multiple of the page size (and so of 256 bytes).
  const size_t pages = bytes / kAlign;
  std::vector<size_t> begin(n_threads + 1);
  for (int t = 0; t <= n_threads; ++t) begin[t] = pages * t / n_threads * kAlign;

  // Huge pages, as the weight arena and the KV cache use (core/huge_region.h): with
  // 4 KiB pages this read 2-6% less, a bound the kernels do not face.
  HugeRegion region(bytes, "the membw buffer");
  uint8_t* const buf = region.data();
  const CpuIsa isa = active_cpu_isa();
  ThreadPool pool(n_threads);
  std::fprintf(stderr, "membw: first-touching %d MiB with %d thread(s), then %d passes per load width\n",
               a.size_mib, n_threads, a.reps);

  pool.run([&](int ith, int) {
    uint8_t* p = buf + begin[ith];
    const size_t n = begin[ith + 1] - begin[ith];
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(i * 131 + 7);
  });

  std::vector<uint64_t> partial(n_threads);
  uint64_t checksum = 0;
  auto pass = [&](const Reader& rd) {
    pool.run([&](int ith, int) {
      partial[ith] = rd.fn(buf + begin[ith], begin[ith + 1] - begin[ith]);
    });
    for (uint64_t v : partial) checksum += v;
  };
  const std::vector<Reader> rds = readers(isa);
  for (const Reader& rd : rds) pass(rd);  // discarded: TLB and page-table warm-up

  // Passes of the load widths interleave, so drift (background load) hits all alike.
  std::vector<std::vector<double>> gbs(rds.size());
  for (int r = 0; r < a.reps; ++r) {
    for (size_t k = 0; k < rds.size(); ++k) {
      const double t0 = now_seconds();
      pass(rds[k]);
      gbs[k].push_back(static_cast<double>(bytes) / (now_seconds() - t0) / 1e9);
    }
  }
  size_t best_k = 0;
  std::vector<double> med(rds.size());
  for (size_t k = 0; k < rds.size(); ++k) {
    med[k] = median_of(gbs[k]);
    if (med[k] > med[best_k]) best_k = k;
  }
  const double median = med[best_k];
  const double best = *std::max_element(gbs[best_k].begin(), gbs[best_k].end());

  if (a.json) {
    nlohmann::json widths = nlohmann::json::object();
    for (size_t k = 0; k < rds.size(); ++k)
      widths[rds[k].name] = {{"median_gb_s", med[k]}, {"gb_s", gbs[k]}};
    nlohmann::json out = {{"threads", n_threads},       {"size_mib", a.size_mib},
                          {"reps", a.reps},             {"isa", cpu_isa_name(isa)},
                          {"loads", rds[best_k].name},  {"median_gb_s", median},
                          {"best_gb_s", best},          {"by_load_width", widths},
                          {"checksum", checksum}};
    std::cout << out.dump() << "\n";
  } else {
    std::printf("read bandwidth: median %.2f GB/s, best %.2f GB/s (%d threads, %d MiB, %d passes, "
                "fastest loads: %s)\n",
                median, best, n_threads, a.size_mib, a.reps, rds[best_k].name);
    for (size_t k = 0; k < rds.size(); ++k)
      std::printf("  %-7s loads: median %.2f GB/s\n", rds[k].name, med[k]);
    std::printf("  (checksum %016llx)\n", static_cast<unsigned long long>(checksum));
  }
  return 0;
}

}  // namespace

void add_membw(CLI::App& app, std::function<int()>& run) {
  auto a = std::make_shared<MembwArgs>();
  CLI::App* c = app.add_subcommand("membw", "Measure main-memory read bandwidth (GB/s)");
  c->add_option("-t,--threads", a->threads, "Reader threads (default: all cores)");
  c->add_option("--size-mib", a->size_mib, "Buffer size; well beyond the caches")
      ->capture_default_str();
  c->add_option("--reps", a->reps, "Timed passes (median and best reported)")
      ->capture_default_str();
  c->add_flag("--json", a->json, "One JSON object");
  c->callback([a, &run] { run = [a] { return run_membw(*a); }; });
}

}  // namespace parallama::cli
