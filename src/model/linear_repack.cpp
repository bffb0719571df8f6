// Load-time repacking of linear layers into the x16 kernel layout (ops/repack.h).
#include <sys/mman.h>
#include <unistd.h>

#include "model/linear.h"
#include "ops/repack.h"

namespace parallama {

void release_mapped_pages(const void* p, size_t n) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

// Repacks w into a new buffer that replaces storage; false when w's type has no x16
// kernels or it has fewer than 16 rows.
bool repack_weight(WeightView& w, std::vector<uint8_t>& storage) {
  if (w.packed_rows > 0 || w.n_rows < kRepackRows || !can_repack(w.type)) return false;
  std::vector<uint8_t> packed(row_size(w.type, w.n_cols) * static_cast<size_t>(w.n_rows));
  w.packed_rows = repack_x16(w.type, w.data, w.n_rows, w.n_cols, packed.data());
  storage.swap(packed);
  w.data = storage.data();
  return true;
}

void Linear::repack() {
  const void* mapped = w_.data;
  if (repack_weight(w_, storage_)) release_mapped_pages(mapped, storage_.size());
}

void RowParallelLinear::repack() {
  // The slice is already a private copy unless this rank holds every column.
  const void* mapped = storage_.empty() ? w_.data : nullptr;
  if (repack_weight(w_, storage_) && mapped) release_mapped_pages(mapped, storage_.size());
}

}  // namespace parallama
