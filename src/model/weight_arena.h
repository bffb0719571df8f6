// One anonymous memory region that holds a model's weight matrices after load
// (copied or repacked out of the GGUF mapping), backed by transparent huge pages
// where the kernel allows them.
//
// Why: decode streams every weight once per token. From the file mapping (4 KiB
// page-cache pages) an F16 matrix-vector product read 22-23 GB/s on one Zen 4
// core; from anonymous 4 KiB pages 25-29 GB/s; from 2 MiB pages 31-32 GB/s,
// which is what the core reads at all. Per-tensor buffers would not get huge
// pages (most of a small model's matrices are under 2 MiB), so the matrices of
// one model share one 2 MiB-aligned region, placed one after another.
#pragma once

#include <cstddef>
#include <cstdint>

namespace parallama {

class WeightArena {
 public:
  WeightArena() = default;
  // Reserves `capacity` bytes (rounded up to 2 MiB); throws Error when the
  // memory cannot be mapped.
  explicit WeightArena(size_t capacity);
  ~WeightArena();
  WeightArena(WeightArena&& o) noexcept;
  WeightArena& operator=(WeightArena&& o) noexcept;
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;

  // The next n bytes, 64-byte aligned; throws if the capacity is exceeded.
  uint8_t* take(size_t n);
  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }
  // Bytes of the region the kernel currently backs with huge pages (from
  // /proc/self/smaps; 0 where that is unavailable).
  size_t huge_page_bytes() const;
  // Space take(n) consumes at most, alignment included; sum it to size an arena.
  static size_t footprint(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

 private:
  static constexpr size_t kAlign = 64;
  void release();
  void* map_ = nullptr;     // the whole mapping (2 MiB of slack for alignment)
  size_t map_bytes_ = 0;
  uint8_t* base_ = nullptr;  // 2 MiB-aligned start inside map_
  size_t capacity_ = 0;
  size_t used_ = 0;
};

}  // namespace parallama
