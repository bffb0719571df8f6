// Paged KV cache: fixed-size blocks from one pool, shared by all sequences.
// A sequence has a block table (list of block ids); token at position p lives
// in block table[p / block_size] at slot p % block_size. KvCache is the tensor
// storage only: it writes and reads whatever blocks a table names. Which ids a
// sequence holds is decided elsewhere: by the serving engine's BlockPool
// (runtime/block_pool.h: refcounts, prefix caching) on world rank 0, or, in
// tests that drive the forward pass directly, by a BlockAllocator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/ggml_type.h"
#include "core/huge_region.h"

namespace parallama {

// Free-list allocator of block ids for tests and tools that drive the forward
// pass by hand; pure bookkeeping, no tensor memory, no sharing.
class BlockAllocator {
 public:
  explicit BlockAllocator(int32_t n_blocks);
  int32_t n_blocks() const { return n_blocks_; }
  int32_t n_free() const { return static_cast<int32_t>(free_.size()); }
  // Grows `table` to cover n_tokens; returns false (leaving it unchanged) if the pool is short.
  bool reserve(std::vector<int32_t>& table, int32_t n_tokens, int32_t block_size);
  void release(std::vector<int32_t>& table);  // returns all blocks, clears the table

 private:
  int32_t n_blocks_;
  std::vector<int32_t> free_;  // stack of free ids
  std::vector<uint8_t> used_;  // [n_blocks] guards against double free
};

// Element type of cached K and V. F16 (llama.cpp's default) halves the bytes a
// decode step reads per cached position; attention converts to f32 on load.
// Q8_0 (llama.cpp's -ctk/-ctv q8_0) quantizes each 32 values of a K or V row to
// int8 with one f16 scale, as GGUF's Q8_0 does: about half the bytes of F16, and
// the scores become integer dot products (needs head_dim % 32 == 0).
enum class KvType { kF32, kF16, kQ8_0 };
const char* kv_type_name(KvType t);
// "f32", "f16" or "q8_0"; throws Error naming the accepted values otherwise.
KvType parse_kv_type(const std::string& s);

struct KvCacheShape {
  int32_t n_layers = 0;
  int32_t n_blocks = 0;
  int32_t block_size = 16;
  int32_t n_kv_heads = 0;  // heads held by this rank
  int32_t head_dim = 0;
  KvType type = KvType::kF16;
};

// Tensor storage for K and V of every layer.
class KvCache {
 public:
  explicit KvCache(const KvCacheShape& shape);
  const KvCacheShape& shape() const { return shape_; }
  int32_t block_size() const { return shape_.block_size; }

  KvType type() const { return shape_.type; }
  // The GGUF type of a K or V row as store() takes it: F32, F16 or Q8_0.
  GgmlType row_type() const;
  // Bytes of one such row of head_dim values (Q8_0: 34 bytes per 32 values).
  size_t row_bytes() const { return row_bytes_; }
  // Bytes of one block of one head, K or V: block_size rows' worth in every type
  // (block layouts: PagedKv in ops/nn.h).
  size_t block_bytes() const { return row_bytes_ * static_cast<size_t>(shape_.block_size); }

  // Writes position `slot` of a block for one head: k_row and v_row hold head_dim
  // values already in type() (row_bytes() each), laid out into the block as
  // PagedKv describes: f32/f16 K transposed ([head_dim, block_size]), V row-major;
  // Q8_0 in its own blocked layouts.
  void store(int32_t layer, int32_t block, int32_t head, int32_t slot, const void* k_row, const void* v_row);

  // Per layer: [n_kv_heads, n_blocks, block of block_size * head_dim] of type(). Head-major: a
  // sequence's blocks, allocated in order, then form one contiguous run per head
  // that the hardware prefetcher streams; with blocks outermost every block was a
  // separate 4 KiB run and decode attention read it at ~12 GB/s instead of ~30
  // (Zen 4, 640 positions, 30 layers). The storage is a huge-page region
  // (core/huge_region.h): fewer TLB misses on that stream. Returns the block's
  // first byte.
  uint8_t* k(int32_t layer, int32_t block, int32_t head) {
    return k_.data() + offset(layer, block, head);
  }
  uint8_t* v(int32_t layer, int32_t block, int32_t head) {
    return v_.data() + offset(layer, block, head);
  }
  size_t bytes() const { return 2 * bytes_per_tensor_; }

 private:
  size_t offset(int32_t layer, int32_t block, int32_t head) const {
    const size_t per_block = block_bytes();
    const size_t per_head = per_block * shape_.n_blocks;
    const size_t per_layer = per_head * shape_.n_kv_heads;
    return layer * per_layer + head * per_head + block * per_block;
  }
  KvCacheShape shape_;
  size_t bytes_per_tensor_ = 0;
  size_t row_bytes_ = 0;  // row_size(row_type(), head_dim), read per block pointer
  HugeRegion k_;  // [n_layers, n_kv_heads, n_blocks, block_size * head_dim] of type(), zeroed
  HugeRegion v_;  // same
};

}  // namespace parallama
