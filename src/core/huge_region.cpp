#include "core/huge_region.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

#include "core/check.h"

namespace parallama {

namespace {
size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }
}  // namespace

HugeRegion::HugeRegion(size_t bytes, const char* what, bool prefault) {
  size_ = round_up(bytes == 0 ? 1 : bytes, kHugePage);
  map_bytes_ = size_ + kHugePage;
  map_ = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    size_ = 0;
    PL_THROW("cannot reserve " << (bytes >> 20) << " MiB for " << what << ": " << std::strerror(errno));
  }
  base_ = reinterpret_cast<uint8_t*>(round_up(reinterpret_cast<uintptr_t>(map_), kHugePage));
#ifdef MADV_HUGEPAGE
  // Advice only: without transparent huge pages the region stays in 4 KiB pages.
  madvise(base_, size_, MADV_HUGEPAGE);
#endif
  if (prefault) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    for (size_t o = 0; o < size_; o += page) base_[o] = 0;
  }
}

HugeRegion::~HugeRegion() { release(); }

HugeRegion::HugeRegion(HugeRegion&& o) noexcept { *this = std::move(o); }

HugeRegion& HugeRegion::operator=(HugeRegion&& o) noexcept {
  if (this != &o) {
    release();
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void HugeRegion::release() {
  if (map_) munmap(map_, map_bytes_);
  map_ = nullptr;
  base_ = nullptr;
  size_ = 0;
}

size_t HugeRegion::huge_page_bytes() const {
  if (!base_) return 0;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  size_t total = 0;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(base_), hi = lo + size_;
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
