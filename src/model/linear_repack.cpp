// Load-time placement of linear layers into the model's weight arena, repacked
// into the x16 kernel layout (ops/repack.h) where the type has one.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "model/linear.h"
#include "ops/repack.h"

namespace parallama {

void release_mapped_pages(const void* p, size_t n) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

namespace {
size_t matrix_bytes(const WeightView& w) {
  return w.n_rows == 0 ? 0 : row_size(w.type, w.n_cols) * static_cast<size_t>(w.n_rows);
}

// Copies (x16-repacking where possible) w into the arena and points w at the copy.
void place_weight(WeightView& w, WeightArena& arena) {
  const size_t n = matrix_bytes(w);
  if (n == 0 || w.packed_rows > 0) return;
  uint8_t* dst = arena.take(n);
  if (w.n_rows >= kRepackRows && can_repack(w.type))
    w.packed_rows = repack_x16(w.type, w.data, w.n_rows, w.n_cols, dst);
  else
    std::memcpy(dst, w.data, n);
  w.data = dst;
}
}  // namespace

size_t Linear::arena_bytes() const { return matrix_bytes(w_); }

void Linear::place(WeightArena& arena) {
  const void* mapped = w_.data;
  place_weight(w_, arena);
  if (w_.data != mapped) release_mapped_pages(mapped, matrix_bytes(w_));
}

void RowParallelLinear::place(WeightArena& arena) {
  // The slice is already a private copy unless this rank holds every column.
  const void* mapped = storage_.empty() ? w_.data : nullptr;
  const void* before = w_.data;
  place_weight(w_, arena);
  if (w_.data == before) return;
  if (mapped) release_mapped_pages(mapped, matrix_bytes(w_));
  std::vector<uint8_t>().swap(storage_);
}

}  // namespace parallama
