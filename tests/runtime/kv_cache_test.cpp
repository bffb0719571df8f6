#include "runtime/kv_cache.h"

#include <gtest/gtest.h>

#include <set>

#include "core/check.h"

using namespace parallama;

TEST(BlockAllocator, ReservesWholeBlocksAndReleases) {
  BlockAllocator a(8);
  std::vector<int32_t> t1, t2;
  ASSERT_TRUE(a.reserve(t1, 17, 16));  // 17 tokens need 2 blocks of 16
  EXPECT_EQ(t1.size(), 2u);
  ASSERT_TRUE(a.reserve(t1, 32, 16));  // still 2
  EXPECT_EQ(t1.size(), 2u);
  ASSERT_TRUE(a.reserve(t2, 5 * 16, 16));
  EXPECT_EQ(a.n_free(), 1);
  std::set<int32_t> all(t1.begin(), t1.end());
  all.insert(t2.begin(), t2.end());
  EXPECT_EQ(all.size(), 7u);  // no block handed out twice
  std::vector<int32_t> t3;
  EXPECT_FALSE(a.reserve(t3, 33, 16));  // needs 3, only 1 free: refused, unchanged
  EXPECT_TRUE(t3.empty());
  EXPECT_EQ(a.n_free(), 1);
  a.release(t2);
  EXPECT_TRUE(t2.empty());
  EXPECT_EQ(a.n_free(), 6);
  EXPECT_TRUE(a.reserve(t3, 33, 16));
}

TEST(BlockAllocator, DoubleFreeIsCaught) {
  BlockAllocator a(2);
  std::vector<int32_t> t;
  ASSERT_TRUE(a.reserve(t, 1, 16));
  std::vector<int32_t> copy = t;
  a.release(t);
  EXPECT_THROW(a.release(copy), Error);
}

TEST(KvCache, SlotsOfDifferentBlocksAndHeadsDoNotOverlap) {
  for (KvType type : {KvType::kF32, KvType::kF16}) {
    KvCacheShape s{2, 3, 4, 2, 8, type};
    KvCache kv(s);
    const size_t eb = type == KvType::kF16 ? 2 : 4;
    EXPECT_EQ(kv.block_bytes(), 4 * 8 * eb);
    EXPECT_EQ(kv.row_bytes(), 8 * eb);
    std::set<const uint8_t*> seen;
    for (int l = 0; l < 2; ++l)
      for (int b = 0; b < 3; ++b)
        for (int h = 0; h < 2; ++h) {
          uint8_t* k = kv.k(l, b, h);
          for (size_t i = 0; i < 4 * 8 * eb; ++i) EXPECT_TRUE(seen.insert(k + i).second);
        }
    EXPECT_EQ(kv.bytes(), 2 * seen.size());
  }
}

TEST(KvCache, AHeadsBlocksAreOneContiguousRun) {
  // Head-major storage: blocks allocated in order give attention one stream per head.
  for (KvType type : {KvType::kF32, KvType::kF16}) {
    KvCacheShape s{2, 5, 4, 3, 8, type};
    KvCache kv(s);
    const size_t block = kv.block_bytes();
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 3; ++h)
        for (int b = 0; b + 1 < 5; ++b) {
          EXPECT_EQ(kv.k(l, b + 1, h), kv.k(l, b, h) + block);
          EXPECT_EQ(kv.v(l, b + 1, h), kv.v(l, b, h) + block);
        }
  }
}

TEST(KvCache, TypeNamesParseAndBadOnesAreRefused) {
  EXPECT_EQ(parse_kv_type("f16"), KvType::kF16);
  EXPECT_EQ(parse_kv_type("f32"), KvType::kF32);
  EXPECT_EQ(parse_kv_type("q8_0"), KvType::kQ8_0);
  EXPECT_STREQ(kv_type_name(parse_kv_type("f16")), "f16");
  EXPECT_STREQ(kv_type_name(parse_kv_type("q8_0")), "q8_0");
  EXPECT_THROW(parse_kv_type("q4_0"), Error);
  EXPECT_THROW(parse_kv_type(""), Error);
}

TEST(KvCache, StoreTransposesKAndKeepsVRowMajor) {
  for (KvType type : {KvType::kF32, KvType::kF16}) {
    const int bs = 4, hd = 3;
    KvCacheShape s{1, 2, bs, 2, hd, type};
    KvCache kv(s);
    const size_t eb = type == KvType::kF16 ? 2 : 4;
    // Distinct byte patterns per element: element d of k is 10 + d, of v 20 + d.
    std::vector<uint8_t> k(hd * eb), v(hd * eb);
    for (int d = 0; d < hd; ++d)
      for (size_t b = 0; b < eb; ++b) {
        k[d * eb + b] = static_cast<uint8_t>(10 + d);
        v[d * eb + b] = static_cast<uint8_t>(20 + d);
      }
    kv.store(0, 1, 1, 2, k.data(), v.data());
    for (int d = 0; d < hd; ++d) {
      EXPECT_EQ(kv.k(0, 1, 1)[(d * bs + 2) * eb], 10 + d);
      EXPECT_EQ(kv.v(0, 1, 1)[(2 * hd + d) * eb], 20 + d);
    }
    EXPECT_EQ(kv.k(0, 1, 0)[0], 0);  // other heads and blocks untouched
    EXPECT_EQ(kv.k(0, 0, 1)[(0 * bs + 2) * eb], 0);
    EXPECT_THROW(kv.store(0, 1, 1, bs, k.data(), v.data()), Error);
  }
}

// Q8_0: store() takes GGUF Q8_0 rows and lays them out as PagedKv documents: K
// values +128 at [d / 4][slot][d % 4], V values at [slot][d], the f16 scales of
// both at [group][slot] after the values.
TEST(KvCache, StoreLaysOutQ8_0Rows) {
  const int bs = 16, hd = 64, slot = 5;
  KvCache kv(KvCacheShape{1, 2, bs, 2, hd, KvType::kQ8_0});
  EXPECT_EQ(kv.row_bytes(), 2u * 34);
  EXPECT_EQ(kv.block_bytes(), size_t(bs * hd + bs * 2 * 2));
  std::vector<uint8_t> k(2 * 34), v(2 * 34);
  for (int g = 0; g < 2; ++g) {
    k[g * 34] = static_cast<uint8_t>(0x11 + g), k[g * 34 + 1] = 0x3c;  // scale bytes
    v[g * 34] = static_cast<uint8_t>(0x21 + g), v[g * 34 + 1] = 0x3d;
    for (int i = 0; i < 32; ++i) {
      k[g * 34 + 2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 16 + g));
      v[g * 34 + 2 + i] = static_cast<uint8_t>(static_cast<int8_t>(100 - i - g));
    }
  }
  kv.store(0, 1, 1, slot, k.data(), v.data());
  const uint8_t* kb = kv.k(0, 1, 1);
  const uint8_t* vb = kv.v(0, 1, 1);
  for (int d = 0; d < hd; ++d) {
    const int g = d / 32, i = d % 32;
    EXPECT_EQ(kb[(d / 4 * bs + slot) * 4 + d % 4], static_cast<uint8_t>(i - 16 + g + 128)) << d;
    EXPECT_EQ(static_cast<int8_t>(vb[slot * hd + d]), 100 - i - g) << d;
  }
  for (int g = 0; g < 2; ++g) {
    EXPECT_EQ(kb[bs * hd + (g * bs + slot) * 2], 0x11 + g);
    EXPECT_EQ(kb[bs * hd + (g * bs + slot) * 2 + 1], 0x3c);
    EXPECT_EQ(vb[bs * hd + (g * bs + slot) * 2], 0x21 + g);
    EXPECT_EQ(vb[bs * hd + (g * bs + slot) * 2 + 1], 0x3d);
  }
  EXPECT_EQ(kv.k(0, 1, 0)[0], 0);  // other heads untouched
  EXPECT_THROW(KvCache(KvCacheShape{1, 2, bs, 2, 48, KvType::kQ8_0}), Error);  // head_dim % 32
}
