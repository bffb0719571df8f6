// WorldConfig rank mapping, layer/head splits and layout validation. Expected
// values are hand-derived tables or independent enumerations, not our own output.
#include "parallel/world_config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/check.h"

using namespace parallama;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(WorldConfig, RankMappingTp2Pp2ByHand) {
  // ranks 0,1 = stage 0; 2,3 = stage 1
  struct Row { int rank, pp_rank, tp_rank, prev, next; std::vector<int> group; };
  const std::vector<Row> rows = {
      {0, 0, 0, -1, 2, {0, 1}},
      {1, 0, 1, -1, 3, {0, 1}},
      {2, 1, 0, 0, -1, {2, 3}},
      {3, 1, 1, 1, -1, {2, 3}},
  };
  for (const Row& r : rows) {
    WorldConfig w(2, 2, r.rank);
    EXPECT_EQ(w.world_size(), 4);
    EXPECT_EQ(w.pp_rank(), r.pp_rank) << r.rank;
    EXPECT_EQ(w.tp_rank(), r.tp_rank) << r.rank;
    EXPECT_EQ(w.prev_stage_rank(), r.prev) << r.rank;
    EXPECT_EQ(w.next_stage_rank(), r.next) << r.rank;
    EXPECT_EQ(w.tp_group_ranks(), r.group) << r.rank;
    EXPECT_EQ(w.is_first_stage(), r.pp_rank == 0);
    EXPECT_EQ(w.is_last_stage(), r.pp_rank == 1);
  }
}

TEST(WorldConfig, RankMappingAllLayouts) {
  const std::vector<std::pair<int, int>> layouts = {{1, 1}, {2, 1}, {3, 1}, {4, 1}, {1, 2},
                                                    {1, 3}, {2, 2}, {3, 2}, {2, 3}};
  for (auto [tp, pp] : layouts) {
    // Independent enumeration: stages outer, tp ranks inner, world ranks counting up.
    std::vector<std::pair<int, int>> coord;  // world rank -> (stage, tp rank)
    for (int s = 0; s < pp; ++s)
      for (int t = 0; t < tp; ++t) coord.push_back({s, t});
    ASSERT_EQ(static_cast<int>(coord.size()), tp * pp);
    for (int r = 0; r < tp * pp; ++r) {
      const WorldConfig w(tp, pp, r);
      const auto [s, t] = coord[r];
      SCOPED_TRACE("tp=" + std::to_string(tp) + " pp=" + std::to_string(pp) + " rank " +
                   std::to_string(r));
      EXPECT_EQ(w.pp_rank(), s);
      EXPECT_EQ(w.tp_rank(), t);
      EXPECT_EQ(WorldConfig::world_rank_of(tp, s, t), r);
      std::vector<int> group;
      for (int q = 0; q < tp * pp; ++q)
        if (coord[q].first == s) group.push_back(q);
      EXPECT_EQ(w.tp_group_ranks(), group);
      int prev = -1, next = -1;
      for (int q = 0; q < tp * pp; ++q) {
        if (coord[q] == std::make_pair(s - 1, t)) prev = q;
        if (coord[q] == std::make_pair(s + 1, t)) next = q;
      }
      EXPECT_EQ(w.prev_stage_rank(), prev);
      EXPECT_EQ(w.next_stage_rank(), next);
      EXPECT_EQ(w.is_first_stage(), s == 0);
      EXPECT_EQ(w.is_last_stage(), s == pp - 1);
    }
  }
}

TEST(WorldConfig, SplitLayersEven) {
  EXPECT_EQ(WorldConfig::split_layers(30, 1), (std::vector<int>{30}));
  EXPECT_EQ(WorldConfig::split_layers(30, 2), (std::vector<int>{15, 15}));
  EXPECT_EQ(WorldConfig::split_layers(30, 3), (std::vector<int>{10, 10, 10}));
  EXPECT_EQ(WorldConfig::split_layers(30, 4), (std::vector<int>{8, 8, 7, 7}));
  EXPECT_EQ(WorldConfig::split_layers(7, 3), (std::vector<int>{3, 2, 2}));
  EXPECT_EQ(WorldConfig::split_layers(5, 5), (std::vector<int>{1, 1, 1, 1, 1}));
  EXPECT_EQ(WorldConfig::split_layers(30, 2, {10, 20}), (std::vector<int>{10, 20}));
}

TEST(WorldConfig, LayerRanges) {
  const WorldConfig w = WorldConfig::create(1, 4, 2, 4, 9, 3, 30);
  EXPECT_EQ(w.layer_range(0), std::make_pair(0, 8));
  EXPECT_EQ(w.layer_range(1), std::make_pair(8, 16));
  EXPECT_EQ(w.layer_range(2), std::make_pair(16, 23));
  EXPECT_EQ(w.layer_range(3), std::make_pair(23, 30));
  EXPECT_EQ(w.layer_range(), std::make_pair(16, 23));
  const WorldConfig m = WorldConfig::create(2, 2, 3, 4, 9, 3, 30, {12, 18});
  EXPECT_EQ(m.layer_range(0), std::make_pair(0, 12));
  EXPECT_EQ(m.layer_range(), std::make_pair(12, 30));
}

TEST(WorldConfig, HeadRange) {
  using P = std::pair<int, int>;
  EXPECT_EQ(WorldConfig::head_range(9, 1, 0), P(0, 9));
  EXPECT_EQ(WorldConfig::head_range(9, 2, 0), P(0, 5));
  EXPECT_EQ(WorldConfig::head_range(9, 2, 1), P(5, 9));
  EXPECT_EQ(WorldConfig::head_range(9, 3, 1), P(3, 6));
  EXPECT_EQ(WorldConfig::head_range(9, 4, 0), P(0, 3));
  EXPECT_EQ(WorldConfig::head_range(9, 4, 1), P(3, 5));
  EXPECT_EQ(WorldConfig::head_range(9, 4, 2), P(5, 7));
  EXPECT_EQ(WorldConfig::head_range(9, 4, 3), P(7, 9));
  EXPECT_EQ(WorldConfig::head_range(9, 9, 8), P(8, 9));
}

// SmolLM2-135M: 9 query heads, 3 kv heads; q head h uses kv head h / 3.
TEST(WorldConfig, HeadShardSmolLM2) {
  struct Row { int tp, rank, qb, qe, kvb, kve; };
  const std::vector<Row> rows = {
      {1, 0, 0, 9, 0, 3},
      {2, 0, 0, 5, 0, 2}, {2, 1, 5, 9, 1, 3},  // kv head 1 on both ranks
      {3, 0, 0, 3, 0, 1}, {3, 1, 3, 6, 1, 2}, {3, 2, 6, 9, 2, 3},  // even, no overlap
      {4, 0, 0, 3, 0, 1}, {4, 1, 3, 5, 1, 2}, {4, 2, 5, 7, 1, 3}, {4, 3, 7, 9, 2, 3},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE("tp=" + std::to_string(r.tp) + " rank " + std::to_string(r.rank));
    const HeadShard s = WorldConfig::head_shard(9, 3, r.tp, r.rank);
    EXPECT_EQ(s.q_begin, r.qb);
    EXPECT_EQ(s.q_end, r.qe);
    EXPECT_EQ(s.kv_begin, r.kvb);
    EXPECT_EQ(s.kv_end, r.kve);
    EXPECT_EQ(s.group, 3);
  }
  // tp=4 rank 2 holds q heads 5,6 -> kv heads 1,2 -> local kv 0,1.
  const HeadShard s = WorldConfig::head_shard(9, 3, 4, 2);
  EXPECT_EQ(s.local_kv_of_local_q(0), 0);
  EXPECT_EQ(s.local_kv_of_local_q(1), 1);
}

TEST(WorldConfig, HeadShardEvenKvSplitWhenAligned) {
  // 32 q / 8 kv (group 4): tp=4 -> 8 q heads and exactly 2 own kv heads per rank.
  for (int r = 0; r < 4; ++r) {
    const HeadShard s = WorldConfig::head_shard(32, 8, 4, r);
    EXPECT_EQ(s.q_begin, 8 * r);
    EXPECT_EQ(s.kv_begin, 2 * r);
    EXPECT_EQ(s.kv_end, 2 * r + 2);
  }
  // tp=16 > 8 kv heads: ranks 2k and 2k+1 both replicate kv head k.
  for (int r = 0; r < 16; ++r) {
    const HeadShard s = WorldConfig::head_shard(32, 8, 16, r);
    EXPECT_EQ(s.n_q(), 2);
    EXPECT_EQ(s.kv_begin, r / 2);
    EXPECT_EQ(s.n_kv(), 1);
  }
}

// Every tp <= n_heads, several GQA shapes: query heads partition exactly, sizes
// differ by at most one, and the kv range is the smallest one covering the rank's
// query heads under the GQA rule kv(h) = h / (n_heads / n_kv_heads).
TEST(WorldConfig, HeadShardPropertiesAllTp) {
  const std::vector<std::pair<int, int>> shapes = {{9, 3}, {9, 9}, {9, 1}, {32, 8},
                                                   {12, 4}, {14, 2}, {15, 5}};
  for (auto [nh, nkv] : shapes) {
    for (int tp = 1; tp <= nh; ++tp) {
      SCOPED_TRACE(std::to_string(nh) + "/" + std::to_string(nkv) + " tp=" + std::to_string(tp));
      std::vector<int> owner(nh, -1);
      int min_q = nh, max_q = 0;
      for (int r = 0; r < tp; ++r) {
        const HeadShard s = WorldConfig::head_shard(nh, nkv, tp, r);
        min_q = std::min(min_q, s.n_q());
        max_q = std::max(max_q, s.n_q());
        std::set<int> needed;
        for (int i = 0; i < s.n_q(); ++i) {
          const int h = s.q_begin + i;
          ASSERT_EQ(owner[h], -1) << "head " << h << " owned twice";
          owner[h] = r;
          const int kv = h / (nh / nkv);
          needed.insert(kv);
          EXPECT_EQ(s.local_kv_of_local_q(i), kv - s.kv_begin);
          EXPECT_GE(s.local_kv_of_local_q(i), 0);
          EXPECT_LT(s.local_kv_of_local_q(i), s.n_kv());
        }
        EXPECT_EQ(s.kv_begin, *needed.begin());
        EXPECT_EQ(s.kv_end, *needed.rbegin() + 1);
      }
      for (int h = 0; h < nh; ++h) EXPECT_GE(owner[h], 0) << "head " << h << " unowned";
      EXPECT_LE(max_q - min_q, 1);
    }
  }
}

TEST(WorldConfig, ValidationMessages) {
  EXPECT_EQ(error_of([] { validate_layout(10, 1, 10, 9, 30); }),
            "tp=10 exceeds the 9 query heads; use tp <= 9");
  EXPECT_EQ(error_of([] { validate_layout(2, 2, 3, 9, 30); }),
            "launched with 3 ranks but tp*pp = 4; run with mpirun -n 4 or change --tp/--pp");
  EXPECT_EQ(error_of([] { validate_layout(1, 31, 31, 9, 30); }),
            "pp=31 exceeds the 30 layers; use pp <= 30");
  EXPECT_EQ(error_of([] { validate_layout(0, 1, 0, 9, 30); }), "tp=0 is invalid; use tp >= 1");
  EXPECT_EQ(error_of([] { validate_layout(1, -1, 0, 9, 30); }), "pp=-1 is invalid; use pp >= 1");
  EXPECT_EQ(error_of([] { validate_layout(1, 2, 2, 9, 30, {10, 10, 10}); }),
            "the layer split 10,10,10 has 3 entries but pp=2; give exactly 2 layer counts");
  EXPECT_EQ(error_of([] { validate_layout(1, 2, 2, 9, 30, {10, 10}); }),
            "the layer split 10,10 sums to 20 but the model has 30 layers; the counts must "
            "sum to 30");
  EXPECT_EQ(error_of([] { validate_layout(1, 2, 2, 9, 30, {30, 0}); }),
            "the layer split 30,0 gives stage 1 0 layers; every stage needs at least 1 layer");
  EXPECT_NE(error_of([] { validate_layout(2, 1, 2, 9, 30, {}, 2); }).find("not a multiple"),
            std::string::npos);
  // world_size 0: not launched yet, only the layout is checked.
  EXPECT_EQ(error_of([] { validate_layout(2, 2, 0, 9, 30); }), "<no error>");
  EXPECT_EQ(error_of([] { validate_layout(9, 30, 270, 9, 30); }), "<no error>");
  EXPECT_EQ(error_of([] { WorldConfig::split_layers(30, 2, {15, 16}); }).substr(0, 24),
            "the layer split 15,16 su");
  EXPECT_EQ(error_of([] { WorldConfig::create(2, 2, 0, 3, 9, 3, 30); }),
            "launched with 3 ranks but tp*pp = 4; run with mpirun -n 4 or change --tp/--pp");
}

TEST(WorldConfig, Table) {
  const WorldConfig w = WorldConfig::create(2, 2, 0, 4, 9, 3, 30);
  const std::string t = w.to_table({"node-a", "node-a", "node-b", "node-b"}, 9, 3);
  const std::string want =
      "rank   host    stage  tp rank  layers   heads    kv heads\n"
      "0      node-a  0      0        0-14     0-4      0-1\n"
      "1      node-a  0      1        0-14     5-8      1-2\n"
      "2      node-b  1      0        15-29    0-4      0-1\n"
      "3      node-b  1      1        15-29    5-8      1-2\n";
  EXPECT_EQ(t, want);
  // Single-element ranges print as one number; missing host names as "?".
  const WorldConfig v = WorldConfig::create(9, 1, 0, 9, 9, 9, 1);
  const std::string t2 = v.to_table({}, 9, 9);
  EXPECT_NE(t2.find("\n8      ?     0      8        0        8        8\n"), std::string::npos)
      << t2;
}
