#include "runtime/block_pool.h"

#include <xxhash.h>

#include <algorithm>

#include "core/check.h"

namespace parallama {

BlockPool::BlockPool(int32_t n_blocks, int32_t block_size, bool prefix_caching)
    : n_blocks_(n_blocks), block_size_(block_size), prefix_caching_(prefix_caching) {
  PL_CHECK_MSG(n_blocks > 0 && block_size > 0,
               "KV pool needs blocks and a block size, got " << n_blocks << " x " << block_size);
  ref_.assign(n_blocks, 0);
  hashed_.assign(n_blocks, 0);
  hash_.assign(n_blocks, 0);
  if (prefix_caching) tokens_.assign(static_cast<size_t>(n_blocks) * block_size, 0);
  prev_.assign(n_blocks, -1);
  next_.assign(n_blocks, -1);
  for (int32_t b = 0; b < n_blocks; ++b) push_back(b);  // ids handed out in order 0, 1, 2, ...
}

int32_t BlockPool::check(int32_t b) const {
  PL_CHECK_MSG(b >= 0 && b < n_blocks_, "KV block id " << b << " outside [0, " << n_blocks_ << ")");
  return b;
}

void BlockPool::unlink(int32_t b) {
  if (prev_[b] >= 0) next_[prev_[b]] = next_[b];
  else head_ = next_[b];
  if (next_[b] >= 0) prev_[next_[b]] = prev_[b];
  else tail_ = prev_[b];
  prev_[b] = next_[b] = -1;
  --n_free_;
}

void BlockPool::push_back(int32_t b) {
  prev_[b] = tail_;
  next_[b] = -1;
  if (tail_ >= 0) next_[tail_] = b;
  else head_ = b;
  tail_ = b;
  ++n_free_;
}

void BlockPool::push_front(int32_t b) {
  next_[b] = head_;
  prev_[b] = -1;
  if (head_ >= 0) prev_[head_] = b;
  else tail_ = b;
  head_ = b;
  ++n_free_;
}

void BlockPool::uncache(int32_t b) {
  if (!hashed_[b]) return;
  auto it = by_hash_.find(hash_[b]);
  if (it != by_hash_.end() && it->second == b) by_hash_.erase(it);
  hashed_[b] = 0;
}

bool BlockPool::allocate(int32_t n, std::vector<int32_t>& out) {
  PL_CHECK(n >= 0);
  if (n > n_free_) return false;
  for (int32_t i = 0; i < n; ++i) {
    const int32_t b = head_;
    unlink(b);
    uncache(b);  // evicted: its old contents are about to be overwritten
    ref_[b] = 1;
    out.push_back(b);
  }
  return true;
}

void BlockPool::release(std::span<const int32_t> blocks) {
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    const int32_t b = check(*it);
    PL_CHECK_MSG(ref_[b] > 0, "release of free KV block " << b);
    if (--ref_[b] > 0) continue;
    if (hashed_[b]) push_back(b);  // keeps its contents until evicted
    else push_front(b);
  }
}

uint64_t BlockPool::chain_hash(uint64_t parent, std::span<const int32_t> tokens) {
  return XXH64(tokens.data(), tokens.size_bytes(), parent);
}

void BlockPool::match_prefix(std::span<const int32_t> tokens, int32_t max_blocks, std::vector<int32_t>& blocks,
                             std::vector<uint64_t>& hashes, bool count) {
  blocks.clear();
  hashes.clear();
  if (!prefix_caching_) return;
  const int32_t full = std::min<int32_t>(max_blocks, static_cast<int32_t>(tokens.size() / block_size_));
  uint64_t parent = 0;
  for (int32_t i = 0; i < full; ++i) {
    const auto blk = tokens.subspan(static_cast<size_t>(i) * block_size_, block_size_);
    const uint64_t h = chain_hash(parent, blk);
    auto it = by_hash_.find(h);
    // The tokens are compared too: a 64-bit collision must not serve another prefix.
    if (it == by_hash_.end() ||
        !std::equal(blk.begin(), blk.end(), tokens_.begin() + static_cast<int64_t>(it->second) * block_size_))
      break;
    blocks.push_back(it->second);
    hashes.push_back(h);
    parent = h;
  }
  if (count) {
    stats_.queries += static_cast<int64_t>(full) * block_size_;
    stats_.hits += static_cast<int64_t>(blocks.size()) * block_size_;
  }
}

void BlockPool::share(std::span<const int32_t> blocks) {
  for (int32_t b : blocks) {
    check(b);
    if (ref_[b]++ == 0) unlink(b);
  }
}

void BlockPool::cache_block(int32_t block, uint64_t hash, std::span<const int32_t> tokens) {
  check(block);
  PL_CHECK(static_cast<int32_t>(tokens.size()) == block_size_ && ref_[block] > 0);
  if (!prefix_caching_ || hashed_[block]) return;
  if (by_hash_.count(hash)) return;  // the same tokens are already cached in another block
  by_hash_.emplace(hash, block);
  hashed_[block] = 1;
  hash_[block] = hash;
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + static_cast<int64_t>(block) * block_size_);
}

void BlockPool::reset_prefix_cache() {
  for (int32_t b = 0; b < n_blocks_; ++b) hashed_[b] = 0;
  by_hash_.clear();
}

}  // namespace parallama
