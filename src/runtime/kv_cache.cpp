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

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::kF32: return "f32";
    case KvType::kF16: return "f16";
    case KvType::kQ8_0: return "q8_0";
  }
  return "?";
}

KvType parse_kv_type(const std::string& s) {
  if (s == "f16") return KvType::kF16;
  if (s == "f32") return KvType::kF32;
  if (s == "q8_0") return KvType::kQ8_0;
  PL_THROW("unknown KV cache type '" << s << "' (expected f16, f32 or q8_0)");
}

GgmlType KvCache::row_type() const {
  switch (shape_.type) {
    case KvType::kF32: return GgmlType::F32;
    case KvType::kF16: return GgmlType::F16;
    case KvType::kQ8_0: return GgmlType::Q8_0;
  }
  return GgmlType::F32;
}

KvCache::KvCache(const KvCacheShape& s) : shape_(s) {
  PL_CHECK(s.n_layers > 0 && s.block_size > 0 && s.n_kv_heads > 0 && s.head_dim > 0);
  if (s.type == KvType::kQ8_0 && s.head_dim % 32 != 0)
    PL_THROW("a q8_0 KV cache needs head_dim a multiple of 32 (got " << s.head_dim << "); use --kv-type f16");
  row_bytes_ = row_size(row_type(), s.head_dim);
  const size_t n = static_cast<size_t>(s.n_layers) * s.n_blocks * s.n_kv_heads * block_bytes();
  bytes_per_tensor_ = n;
  // Touched now (prefault), so a shortage of memory shows at start-up.
  k_ = HugeRegion(n, "the KV cache (K)", true);
  v_ = HugeRegion(n, "the KV cache (V)", true);
}

void KvCache::store(int32_t layer, int32_t block, int32_t head, int32_t slot, const void* k_row,
                    const void* v_row) {
  PL_CHECK(slot >= 0 && slot < shape_.block_size);
  const size_t hd = static_cast<size_t>(shape_.head_dim), bs = static_cast<size_t>(shape_.block_size);
  uint8_t* kb = k(layer, block, head);
  const uint8_t* ks = static_cast<const uint8_t*>(k_row);
  if (shape_.type == KvType::kQ8_0) {
    // GGUF Q8_0 row: per 32 values an f16 scale then 32 int8. K: values at
    // [d / 4][slot][d % 4], stored +128 (unsigned, for VNNI's u8 x s8 dot products),
    // then scales [d / 32][slot]; V: values [slot][d], then scales [d / 32][slot].
    const uint8_t* vs = static_cast<const uint8_t*>(v_row);
    uint8_t* vb = v(layer, block, head);
    uint16_t* ksc = reinterpret_cast<uint16_t*>(kb + bs * hd);
    uint16_t* vsc = reinterpret_cast<uint16_t*>(vb + bs * hd);
    for (size_t g = 0; g < hd / 32; ++g) {
      const uint8_t* kq = ks + g * 34;
      const uint8_t* vq = vs + g * 34;
      std::memcpy(ksc + g * bs + slot, kq, 2);
      std::memcpy(vsc + g * bs + slot, vq, 2);
      for (size_t i = 0; i < 32; ++i) {
        const size_t d = g * 32 + i;
        kb[(d / 4 * bs + slot) * 4 + d % 4] = static_cast<uint8_t>(kq[2 + i] ^ 0x80);
        vb[slot * hd + d] = vq[2 + i];
      }
    }
    return;
  }
  const size_t eb = row_bytes_ / hd;  // f32 or f16 value
  for (size_t d = 0; d < hd; ++d) std::memcpy(kb + (d * bs + slot) * eb, ks + d * eb, eb);
  std::memcpy(v(layer, block, head) + slot * hd * eb, v_row, hd * eb);
}

}  // namespace parallama
