// BlockPool: refcounts, eviction order, prefix hashes, counters.
#include "runtime/block_pool.h"

#include <gtest/gtest.h>

#include <numeric>

#include "core/check.h"

using namespace parallama;

namespace {

std::vector<int32_t> iota_tokens(int n, int start) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

}  // namespace

TEST(BlockPool, AllocatesInOrderAndRefusesWhenShort) {
  BlockPool p(4, 16, true);
  std::vector<int32_t> a;
  ASSERT_TRUE(p.allocate(3, a));
  EXPECT_EQ(a, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(p.n_free(), 1);
  EXPECT_DOUBLE_EQ(p.usage(), 0.75);
  std::vector<int32_t> b;
  EXPECT_FALSE(p.allocate(2, b));  // changes nothing
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(p.n_free(), 1);
  p.release(a);
  EXPECT_EQ(p.n_free(), 4);
  EXPECT_THROW(p.release(a), Error);  // double release
  EXPECT_EQ(p.blocks_for(0), 0);
  EXPECT_EQ(p.blocks_for(16), 1);
  EXPECT_EQ(p.blocks_for(17), 2);
}

TEST(BlockPool, SharedBlocksNeedEveryReferenceBack) {
  BlockPool p(2, 4, true);
  std::vector<int32_t> a;
  ASSERT_TRUE(p.allocate(1, a));
  p.share(a);
  EXPECT_EQ(p.refcount(a[0]), 2);
  p.release(a);
  EXPECT_EQ(p.refcount(a[0]), 1);
  EXPECT_EQ(p.n_free(), 1);
  p.release(a);
  EXPECT_EQ(p.refcount(a[0]), 0);
  EXPECT_EQ(p.n_free(), 2);
}

TEST(BlockPool, ChainHashDependsOnParentAndTokens) {
  const auto t = iota_tokens(4, 10);
  const uint64_t h1 = BlockPool::chain_hash(0, t);
  EXPECT_EQ(h1, BlockPool::chain_hash(0, t));
  EXPECT_NE(h1, BlockPool::chain_hash(1, t));
  auto u = t;
  u[3] = 99;
  EXPECT_NE(h1, BlockPool::chain_hash(0, u));
}

TEST(BlockPool, PrefixHitsStopAtFirstMissAndCount) {
  const int bs = 4;
  BlockPool p(8, bs, true);
  const auto toks = iota_tokens(12, 100);  // three full blocks
  std::vector<int32_t> blocks;
  ASSERT_TRUE(p.allocate(3, blocks));
  uint64_t parent = 0;
  for (int i = 0; i < 3; ++i) {
    const std::span<const int32_t> blk(toks.data() + i * bs, bs);
    parent = BlockPool::chain_hash(parent, blk);
    p.cache_block(blocks[i], parent, blk);
  }
  // Same first two blocks, different third.
  auto other = toks;
  other[9] = 7;
  std::vector<int32_t> hit;
  std::vector<uint64_t> hashes;
  p.match_prefix(other, 3, hit, hashes, true);
  EXPECT_EQ(hit, (std::vector<int32_t>{blocks[0], blocks[1]}));
  EXPECT_EQ(p.prefix_stats().queries, 12);
  EXPECT_EQ(p.prefix_stats().hits, 8);
  // max_blocks bounds the match; a different first block misses everything.
  p.match_prefix(toks, 1, hit, hashes, true);
  EXPECT_EQ(hit.size(), 1u);
  other[0] = 5;
  p.match_prefix(other, 3, hit, hashes, true);
  EXPECT_TRUE(hit.empty());
  EXPECT_EQ(p.prefix_stats().queries, 12 + 4 + 12);
  EXPECT_EQ(p.prefix_stats().hits, 8 + 4);
  // Without prefix caching nothing is ever found.
  BlockPool q(8, bs, false);
  std::vector<int32_t> qb;
  ASSERT_TRUE(q.allocate(1, qb));
  q.cache_block(qb[0], BlockPool::chain_hash(0, std::span<const int32_t>(toks.data(), bs)),
                std::span<const int32_t>(toks.data(), bs));
  q.match_prefix(toks, 3, hit, hashes, true);
  EXPECT_TRUE(hit.empty());
}

TEST(BlockPool, FreedCachedBlocksSurviveUntilEvictedLeastRecentlyUsedFirst) {
  const int bs = 2;
  BlockPool p(4, bs, true);
  std::vector<int32_t> a, b;
  ASSERT_TRUE(p.allocate(1, a));  // block 0
  ASSERT_TRUE(p.allocate(1, b));  // block 1
  const std::vector<int32_t> ta = {1, 2}, tb = {3, 4};
  p.cache_block(a[0], BlockPool::chain_hash(0, ta), ta);
  p.cache_block(b[0], BlockPool::chain_hash(0, tb), tb);
  p.release(a);  // a freed first: least recently used
  p.release(b);
  EXPECT_EQ(p.n_free(), 4);
  EXPECT_TRUE(p.is_cached(a[0]) && p.is_cached(b[0]));
  // A hit on a free cached block takes it off the free list.
  std::vector<int32_t> hit;
  std::vector<uint64_t> hashes;
  p.match_prefix(tb, 1, hit, hashes, false);
  ASSERT_EQ(hit, b);
  p.share(hit);
  EXPECT_EQ(p.n_free(), 3);
  p.release(hit);
  // Fresh allocations take never-cached blocks (2, 3) first, then the least
  // recently freed cached block (a), whose hash is dropped.
  std::vector<int32_t> c;
  ASSERT_TRUE(p.allocate(3, c));
  EXPECT_EQ(c, (std::vector<int32_t>{2, 3, a[0]}));
  EXPECT_FALSE(p.is_cached(a[0]));
  EXPECT_TRUE(p.is_cached(b[0]));
  p.match_prefix(ta, 1, hit, hashes, false);
  EXPECT_TRUE(hit.empty());
  p.match_prefix(tb, 1, hit, hashes, false);
  EXPECT_EQ(hit, b);
}

TEST(BlockPool, DuplicateContentKeepsTheFirstBlock) {
  BlockPool p(4, 2, true);
  std::vector<int32_t> a;
  ASSERT_TRUE(p.allocate(2, a));
  const std::vector<int32_t> t = {8, 9};
  const uint64_t h = BlockPool::chain_hash(0, t);
  p.cache_block(a[0], h, t);
  p.cache_block(a[1], h, t);
  EXPECT_TRUE(p.is_cached(a[0]));
  EXPECT_FALSE(p.is_cached(a[1]));
  std::vector<int32_t> hit;
  std::vector<uint64_t> hashes;
  p.match_prefix(t, 1, hit, hashes, false);
  EXPECT_EQ(hit, (std::vector<int32_t>{a[0]}));
}
