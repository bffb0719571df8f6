#include "model/weight_arena.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "core/check.h"

namespace parallama {

namespace {
constexpr size_t kHuge = size_t(2) << 20;
size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }
}  // namespace

WeightArena::WeightArena(size_t capacity) {
  capacity_ = round_up(capacity == 0 ? 1 : capacity, kHuge);
  map_bytes_ = capacity_ + kHuge;
  map_ = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    PL_THROW("cannot reserve " << capacity_ / (1 << 20) << " MiB for the model weights: "
                               << std::strerror(errno));
  }
  base_ = reinterpret_cast<uint8_t*>(round_up(reinterpret_cast<uintptr_t>(map_), kHuge));
#ifdef MADV_HUGEPAGE
  // Advice only: without transparent huge pages the region stays in 4 KiB pages.
  madvise(base_, capacity_, MADV_HUGEPAGE);
#endif
}

WeightArena::~WeightArena() { release(); }

WeightArena::WeightArena(WeightArena&& o) noexcept { *this = std::move(o); }

WeightArena& WeightArena::operator=(WeightArena&& o) noexcept {
  if (this != &o) {
    release();
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    base_ = std::exchange(o.base_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
    used_ = std::exchange(o.used_, 0);
  }
  return *this;
}

void WeightArena::release() {
  if (map_) munmap(map_, map_bytes_);
  map_ = nullptr;
  base_ = nullptr;
}

uint8_t* WeightArena::take(size_t n) {
  const size_t need = footprint(n);
  PL_CHECK_MSG(base_ && need <= capacity_ - used_,
               "weight arena: " << need << " bytes requested, " << capacity_ - used_ << " left");
  uint8_t* p = base_ + used_;
  used_ += need;
  return p;
}

size_t WeightArena::huge_page_bytes() const {
  if (!base_) return 0;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  size_t total = 0;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(base_), hi = lo + capacity_;
  while (std::getline(smaps, line)) {
    unsigned long a = 0, b = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &a, &b) == 2) {  // header: "start-end perms ..."
      inside = a < hi && b > lo;
      continue;
    }
    size_t kb = 0;
    if (inside && std::sscanf(line.c_str(), "AnonHugePages: %zu kB", &kb) == 1) total += kb << 10;
  }
  return total;
}

}  // namespace parallama
