// One anonymous memory region that holds a model's weight matrices after load
// (copied or repacked out of the GGUF mapping), backed by transparent huge pages
// where the kernel allows them (core/huge_region.h says why that matters).
// Per-tensor buffers would not get huge pages (most of a small model's matrices
// are under 2 MiB), so the matrices of one model share one region, placed one
// after another in the order the forward pass reads them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "core/huge_region.h"

namespace parallama {

class WeightArena {
 public:
  WeightArena() = default;
  // Reserves `capacity` bytes (rounded up to 2 MiB); throws Error when the
  // memory cannot be mapped.
  explicit WeightArena(size_t capacity) : region_(capacity, "the model weights") {}

  // The next n bytes, 64-byte aligned; throws if the capacity is exceeded.
  uint8_t* take(size_t n);
  size_t capacity() const { return region_.size(); }
  size_t used() const { return used_; }
  size_t huge_page_bytes() const { return region_.huge_page_bytes(); }
  // Space take(n) consumes at most, alignment included; sum it to size an arena.
  static size_t footprint(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

  WeightArena(WeightArena&& o) noexcept : region_(std::move(o.region_)), used_(o.used_) { o.used_ = 0; }
  WeightArena& operator=(WeightArena&& o) noexcept {
    if (this != &o) {
      region_ = std::move(o.region_);
      used_ = o.used_;
      o.used_ = 0;
    }
    return *this;
  }

 private:
  static constexpr size_t kAlign = 64;
  HugeRegion region_;
  size_t used_ = 0;
};

}  // namespace parallama
