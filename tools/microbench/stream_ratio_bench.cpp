// One decode step's matmuls for the 135M shape (30 layers: fused Q/K/V 960x576,
// output 576x576, gate and up 1536x576, down 576x1536, then the 49152x576 head:
// F16 for F16 layers, Q8_0 otherwise, as in the kernel suite's models),
// x16-repacked into one huge-page arena in execution order as the model places
// them, timed against a plain AVX-512 read of the same bytes, the two
// alternating 40 times. Prints the medians and the median per-pass ratio
// (read time / matmul time: 1.0 means the kernels stream as fast as a plain
// read). The ratio cancels most of the machine's bandwidth drift, which on a
// shared VM moves the absolute figures by 20% within minutes.
//
// Not part of the CMake build. Build against a build dir's libraries, e.g.:
//   g++ -O2 -march=native -std=c++20 -Isrc tools/microbench/stream_ratio_bench.cpp
//       build/release/libpl_model.a build/release/libpl_ops.a build/release/libpl_core.a
//       -lpthread -o /tmp/stream_ratio_bench          (one command line)
//   taskset -c 0 /tmp/stream_ratio_bench [type] [threads] [exact]
// type: ggml type number of the layer weights (2 Q4_0, 3 Q4_1 default, 8 Q8_0, 12 Q4_K, 1 F16);
// exact 1: output and down projections through matmul_exact, as the model runs
// them for quantized weights (RowReduction::kExact).
#include <immintrin.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "core/clock.h"
#include "core/thread_pool.h"
#include "model/weight_arena.h"
#include "ops/matmul.h"
#include "ops/matmul_exact.h"
#include "ops/quant.h"
#include "ops/repack.h"

using namespace parallama;

namespace {

struct Mat {
  GgmlType type;
  int64_t rows, cols;
  size_t offset;
  int64_t packed_rows;
  bool exact;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const GgmlType type = argc > 1 ? static_cast<GgmlType>(std::atoi(argv[1])) : GgmlType::Q4_1;
  const int nth = argc > 2 ? std::atoi(argv[2]) : 1;
  const bool exact = argc > 3 && std::atoi(argv[3]) != 0;
  std::vector<Mat> mats;
  size_t total = 0;
  auto add = [&](GgmlType t, int64_t rows, int64_t cols, bool ex) {
    mats.push_back({t, rows, cols, total, 0, ex});
    total += (row_size(t, cols) * rows + 63) / 64 * 64;
  };
  // Q4_K rows need multiples of 256: the benchmark suite's q4_k shape (n_embd 512,
  // 8 heads of 64, 2 kv heads).
  const bool k_shape = type == GgmlType::Q4_K;
  const int64_t e = k_shape ? 512 : 576, qkv = k_shape ? 768 : 960;
  for (int l = 0; l < 30; ++l) {
    add(type, qkv, e, false);
    add(type, e, e, exact);
    add(type, 1536, e, false);
    add(type, 1536, e, false);
    add(type, e, 1536, exact);
  }
  add(type == GgmlType::F16 ? GgmlType::F16 : GgmlType::Q8_0, 49152, e, false);

  WeightArena arena(total + 4096);
  uint8_t* base = arena.take(total);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (Mat& m : mats) {
    std::vector<float> w(m.rows * m.cols);
    for (float& v : w) v = nd(rng);
    const size_t rs = row_size(m.type, m.cols);
    std::vector<uint8_t> rowwise(rs * m.rows);
    for (int64_t r = 0; r < m.rows; ++r) quantize_row(m.type, w.data() + r * m.cols, rowwise.data() + r * rs, m.cols);
    if (m.type == GgmlType::F16 || m.type == GgmlType::F32) {
      std::memcpy(base + m.offset, rowwise.data(), rowwise.size());
    } else {
      m.packed_rows = repack_x16(m.type, rowwise.data(), m.rows, m.cols, base + m.offset);
    }
  }
  std::fprintf(stderr, "%.1f MB of weights, %zu MiB in huge pages, %d thread(s)%s\n", total / 1e6,
               arena.huge_page_bytes() >> 20, nth, exact ? ", exact output/down" : "");

  std::vector<float> x(1536), y(49152);
  std::vector<double> y64(49152);
  for (float& v : x) v = nd(rng);
  ThreadPool pool(nth);
  std::vector<long long> part(nth * 8);
  std::vector<double> t_mm, t_read, ratio;
  long long sink = 0;
  for (int rep = 0; rep < 42; ++rep) {
    const double t0 = now_seconds();
    for (const Mat& m : mats) {
      WeightView W{base + m.offset, m.type, m.rows, m.cols};
      W.packed_rows = m.packed_rows;
      if (m.exact) matmul_exact(W, x.data(), 1, y64.data(), pool);
      else matmul(W, x.data(), 1, y.data(), pool);
    }
    const double t1 = now_seconds();
    pool.run([&](int ith, int n) {  // each thread reads a contiguous slice, as the kernels do
      const size_t lines = total / 64;
      const size_t b0 = lines * ith / n / 4 * 4, b1 = ith == n - 1 ? lines / 4 * 4 : lines * (ith + 1) / n / 4 * 4;
#if defined(__AVX512F__)
      const __m512i* p = reinterpret_cast<const __m512i*>(base);
      __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t i = b0; i < b1; i += 4) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 1));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 2));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 3));
      }
      part[ith * 8] = _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
#else  // AVX2: two 32-byte loads per line
      const __m256i* p = reinterpret_cast<const __m256i*>(base);
      __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t i = 2 * b0; i < 2 * b1; i += 4) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(p + i));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(p + i + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(p + i + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(p + i + 3));
      }
      const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
      long long v[4];
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(v), s);
      part[ith * 8] = v[0] + v[1] + v[2] + v[3];
#endif
    });
    const double t2 = now_seconds();
    sink += part[0];
    if (rep < 2) continue;  // warm-up
    t_mm.push_back(t1 - t0);
    t_read.push_back(t2 - t1);
    ratio.push_back((t2 - t1) / (t1 - t0));
  }
  const double mm = median(t_mm), rd = median(t_read);
  std::printf("matmuls %.3f ms (%.1f GB/s)  plain read %.3f ms (%.1f GB/s)  median ratio %.3f%s\n", mm * 1e3,
              total / 1e9 / mm, rd * 1e3, total / 1e9 / rd, median(ratio), sink == 42 ? " " : "");
}
