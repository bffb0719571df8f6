// Matmul throughput (GB/s of weights streamed) for decode-shaped GEMV and small batches.
// Not part of the CMake build. Build against a build dir's libraries, e.g.:
//   g++ -O3 -std=c++20 -Isrc tools/microbench/matmul_bench.cpp build/ops/libpl_ops.a \
//       build/ops/libpl_core.a -lpthread -o /tmp/matmul_bench && /tmp/matmul_bench
// PARALLAMA_ISA caps the kernel ISA as usual.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "core/cpu_isa.h"
#include "core/thread_pool.h"
#include "ops/matmul.h"
#include "ops/quant.h"

using namespace parallama;

static double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Returns GB/s by wall clock; *per_cpu gets GB per CPU-second of the whole process
// (robust when other jobs share the cores; includes spinning for nth > 1).
static double bench(GgmlType t, int64_t rows, int64_t cols, int64_t n_tok, int nth, double* per_cpu) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> wf(rows * cols), x(n_tok * cols), y(n_tok * rows);
  for (auto& v : wf) v = nd(rng) * 0.05f;
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> w(row_size(t, cols) * rows);
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, wf.data() + r * cols, w.data() + r * row_size(t, cols), cols);
  ThreadPool pool(nth);
  WeightView W{w.data(), t, rows, cols};
  // Enough repetitions for ~0.3 s; weights larger than L3 are streamed from DRAM.
  matmul(W, x.data(), n_tok, y.data(), pool);
  int reps = 1;
  double secs = 0;
  double cpu = 0;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_now();
    for (int i = 0; i < reps; ++i) matmul(W, x.data(), n_tok, y.data(), pool);
    cpu = cpu_now() - c0;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (secs > 0.3) break;
    reps *= 2;
  }
  *per_cpu = static_cast<double>(w.size()) * reps / cpu / 1e9;
  return static_cast<double>(w.size()) * reps / secs / 1e9;
}

int main() {
  std::printf("isa: %s\n", cpu_isa_name(active_cpu_isa()));
  struct S { GgmlType t; int64_t rows, cols; };
  const S shapes[] = {
      {GgmlType::Q4_1, 1536, 576}, {GgmlType::Q4_1, 576, 1536}, {GgmlType::Q8_0, 49152, 576},
      {GgmlType::Q4_0, 1536, 576}, {GgmlType::Q8_0, 1536, 576}, {GgmlType::Q4_K, 1536, 768},
      {GgmlType::Q6_K, 1536, 768}, {GgmlType::Q6_K, 49152, 768}, {GgmlType::F16, 1536, 576},
  };
  for (const S& s : shapes) {
    for (int64_t n_tok : {1, 8}) {
      std::printf("%-5s %6lld x %5lld  tok %lld :", type_name(s.t).c_str(), (long long)s.rows, (long long)s.cols,
                  (long long)n_tok);
      for (int nth : {1, 2}) {
        double per_cpu = 0;
        const double gbs = bench(s.t, s.rows, s.cols, n_tok, nth, &per_cpu);
        std::printf("  %dT %6.2f GB/s (%6.2f per cpu-s)", nth, gbs, per_cpu);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
}
