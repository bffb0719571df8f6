// Main-memory read bandwidth: a huge-page buffer streamed by a pool of threads,
// each reading its own contiguous slice with vector loads whose sum is kept (so
// the reads cannot be optimised away). Used by `parallama membw` (a reading on its
// own) and by `parallama bench --paired-reads` (readings taken between groups of
// decode steps, so that a step's speed is compared with the bandwidth of the same
// moment: on a shared VM the bandwidth moves by 2x within minutes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/cpu_isa.h"
#include "core/huge_region.h"
#include "core/thread_pool.h"

namespace parallama::cli {

// Sums 64-bit lanes of [p, p + n); n a multiple of 256 bytes.
struct LoadWidth {
  const char* name;
  uint64_t (*fn)(const uint8_t* p, size_t n);
};

// The load widths this CPU has (sse2, avx2, avx512). Which one streams fastest
// differs between cores (on Zen 4 one thread reads measurably faster with 16- or
// 32-byte loads than with 64-byte ones), and the bound is what the machine can
// reach, whatever the width.
std::vector<LoadWidth> load_widths(CpuIsa isa);

class ReadBandwidth {
 public:
  // Runs fn(ith, nth) once for each ith in [0, nth), nth = the n_threads given below,
  // on the runner's threads (as ThreadPool::run), then returns.
  using Runner = std::function<void(const std::function<void(int ith, int nth)>& fn)>;

  // Maps size_mib MiB (huge pages, as the weight arena and KV cache use: 4 KiB pages
  // read 2-6% less, a bound the kernels do not face) and
  // first-touches each thread's slice from that thread with non-zero data. The
  // reads run on a pool of n_threads of its own, or on `run`'s n_threads threads
  // (an engine's, so that the reads use the cores and pinning its kernels use).
  ReadBandwidth(int n_threads, int size_mib);
  ReadBandwidth(Runner run, int n_threads, int size_mib);

  size_t bytes() const { return bytes_; }
  int threads() const { return static_cast<int>(partial_.size()); }
  // One timed pass over the whole buffer with loads `w`, in GB/s.
  double pass(const LoadWidth& w);
  uint64_t checksum() const { return checksum_; }

 private:
  size_t bytes_ = 0;
  HugeRegion region_;
  std::unique_ptr<ThreadPool> own_pool_;  // when no runner is given
  Runner run_;
  std::vector<size_t> begin_;      // [threads + 1] slice starts, page multiples
  std::vector<uint64_t> partial_;  // [threads] per-thread sums of the last pass
  uint64_t checksum_ = 0;
};

double median_of(std::vector<double> v);

}  // namespace parallama::cli
