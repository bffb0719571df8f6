#include "runtime/kv_cache.h"

#include <cstring>

#include "core/check.h"

namespace parallama {

BlockAllocator::BlockAllocator(int32_t n_blocks) : n_blocks_(n_blocks), used_(n_blocks, 0) {
  PL_CHECK_MSG(n_blocks > 0, "KV cache needs at least one block, got " << n_blocks);
  free_.reserve(n_blocks);
  // Lowest ids on top of the stack, so allocation order is 0, 1, 2, ...
  for (int32_t b = n_blocks - 1; b >= 0; --b) free_.push_back(b);
}

bool BlockAllocator::reserve(std::vector<int32_t>& table, int32_t n_tokens, int32_t block_size) {
  PL_CHECK(block_size > 0 && n_tokens >= 0);
  const int32_t need = (n_tokens + block_size - 1) / block_size;
  const int32_t have = static_cast<int32_t>(table.size());
  if (need <= have) return true;
  if (need - have > n_free()) return false;
  for (int32_t i = have; i < need; ++i) {
    const int32_t b = free_.back();
    free_.pop_back();
    used_[b] = 1;
    table.push_back(b);
  }
  return true;
}

void BlockAllocator::release(std::vector<int32_t>& table) {
  for (int32_t b : table) {
    PL_CHECK_MSG(b >= 0 && b < n_blocks_ && used_[b], "double free of KV block " << b);
    used_[b] = 0;
    free_.push_back(b);
  }
  table.clear();
}

const char* kv_type_name(KvType t) { return t == KvType::kF16 ? "f16" : "f32"; }

KvType parse_kv_type(const std::string& s) {
  if (s == "f16") return KvType::kF16;
  if (s == "f32") return KvType::kF32;
  PL_THROW("unknown KV cache type '" << s << "' (expected f16 or f32)");
}

KvCache::KvCache(const KvCacheShape& s) : shape_(s), alloc_(s.n_blocks) {
  PL_CHECK(s.n_layers > 0 && s.block_size > 0 && s.n_kv_heads > 0 && s.head_dim > 0);
  const size_t n = static_cast<size_t>(s.n_layers) * s.n_blocks * s.n_kv_heads * s.block_size *
                   s.head_dim * elem_bytes();
  bytes_per_tensor_ = n;
  // Touched now (prefault), so a shortage of memory shows at start-up.
  k_ = HugeRegion(n, "the KV cache (K)", true);
  v_ = HugeRegion(n, "the KV cache (V)", true);
}

void KvCache::store(int32_t layer, int32_t block, int32_t head, int32_t slot, const void* k_row,
                    const void* v_row) {
  PL_CHECK(slot >= 0 && slot < shape_.block_size);
  const size_t eb = elem_bytes(), hd = static_cast<size_t>(shape_.head_dim), bs = static_cast<size_t>(shape_.block_size);
  uint8_t* kb = k(layer, block, head);
  const uint8_t* ks = static_cast<const uint8_t*>(k_row);
  for (size_t d = 0; d < hd; ++d) std::memcpy(kb + (d * bs + slot) * eb, ks + d * eb, eb);
  std::memcpy(v(layer, block, head) + slot * hd * eb, v_row, hd * eb);
}

}  // namespace parallama
