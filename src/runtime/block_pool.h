// KV block bookkeeping for the serving engine: which block ids are in use, by
// how many sequences, and which full blocks hold a known token prefix (prefix
// caching). Pure bookkeeping: the tensors live in KvCache, which writes and
// reads whatever blocks a table names. Only world rank 0 owns a BlockPool; the
// other ranks receive block ids in the step plan, so no two ranks can disagree.
//
// A block's refcount is the number of sequences whose table holds it. A full
// block may carry a hash of its tokens chained to its parent block's hash
// (xxHash64), so a new sequence whose leading blocks are cached shares them
// read-only. A block whose refcount falls to zero stays cached: it sits in the
// free list, which is in eviction order (uncached blocks first, then cached
// ones least recently used first), and loses its hash only when it is
// allocated again.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace parallama {

struct PrefixCacheStats {
  int64_t queries = 0;  // prompt tokens looked up (full blocks only)
  int64_t hits = 0;     // of those, tokens found cached
};

class BlockPool {
 public:
  BlockPool(int32_t n_blocks, int32_t block_size, bool prefix_caching);

  int32_t n_blocks() const { return n_blocks_; }
  int32_t block_size() const { return block_size_; }
  bool prefix_caching() const { return prefix_caching_; }
  // Blocks with refcount 0, cached ones included (they are evictable).
  int32_t n_free() const { return n_free_; }
  // Fraction of blocks held by at least one sequence.
  double usage() const { return 1.0 - static_cast<double>(n_free_) / n_blocks_; }
  int32_t refcount(int32_t block) const { return ref_[check(block)]; }
  bool is_cached(int32_t block) const { return hashed_[check(block)] != 0; }
  int32_t blocks_for(int64_t n_tokens) const {
    return static_cast<int32_t>((n_tokens + block_size_ - 1) / block_size_);
  }

  // Appends n fresh blocks (refcount 1) to `out`, evicting cached ones in
  // eviction order; returns false, changing nothing, if fewer than n are free.
  bool allocate(int32_t n, std::vector<int32_t>& out);
  // Drops one reference to each block of `blocks`; the last ones are released
  // first, so a sequence's tail is evicted before its (more shared) head.
  void release(std::span<const int32_t> blocks);

  // The hash of a full block: its tokens chained to the parent block's hash
  // (0 for the first block).
  static uint64_t chain_hash(uint64_t parent, std::span<const int32_t> tokens);
  // Cached blocks for the leading full blocks of `tokens`, at most max_blocks,
  // stopping at the first miss: block ids (no reference taken) and their
  // hashes. Counts queries and hits when `count` is set.
  void match_prefix(std::span<const int32_t> tokens, int32_t max_blocks, std::vector<int32_t>& blocks,
                    std::vector<uint64_t>& hashes, bool count);
  // Takes one reference to each (matched) block, removing free ones from the free list.
  void share(std::span<const int32_t> blocks);
  // Registers a full block that holds `tokens` (block_size of them) under hash.
  // A hash already registered to another block keeps that block.
  void cache_block(int32_t block, uint64_t hash, std::span<const int32_t> tokens);

  const PrefixCacheStats& prefix_stats() const { return stats_; }
  // Drops every cached hash (blocks in use keep their contents).
  void reset_prefix_cache();

 private:
  int32_t check(int32_t block) const;
  void unlink(int32_t b);       // from the free list
  void push_back(int32_t b);    // most recently freed end
  void push_front(int32_t b);   // evicted first
  void uncache(int32_t b);

  int32_t n_blocks_, block_size_;
  bool prefix_caching_;
  std::vector<int32_t> ref_;       // [n_blocks]
  std::vector<uint8_t> hashed_;    // [n_blocks] 1 when hash_[b] is registered
  std::vector<uint64_t> hash_;     // [n_blocks]
  std::vector<int32_t> tokens_;    // [n_blocks, block_size] tokens of cached blocks (collision guard)
  std::vector<int32_t> prev_, next_;  // free list links, -1 at the ends
  int32_t head_ = -1, tail_ = -1, n_free_ = 0;
  std::unordered_map<uint64_t, int32_t> by_hash_;
  PrefixCacheStats stats_;
};

}  // namespace parallama
