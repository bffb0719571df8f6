// bench sweep's computing parts: layouts and rates as written, the server
// command of a layout, the keep-up rule and the table, against values worked
// out by hand (in the comments).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "bench/sweep.h"
#include "core/check.h"

using namespace parallama;
using namespace parallama::bench;

TEST(Sweep, ParsesLayouts) {
  const auto ls = parse_layouts(" tp=1,threads=2 ; tp=2;pp=2 ; tp=2,pp=2,hosts=2,map=node,link=1gbit,name=TP across");
  ASSERT_EQ(ls.size(), 4u);
  EXPECT_EQ(ls[0].tp, 1);
  EXPECT_EQ(ls[0].threads, 2);
  EXPECT_EQ(ls[0].spec, "tp=1,pp=1,threads=2");
  EXPECT_EQ(ls[1].tp, 2);
  EXPECT_EQ(ls[2].pp, 2);
  EXPECT_EQ(ls[2].label(), "tp=1,pp=2");
  EXPECT_EQ(ls[3].hosts, 2);
  EXPECT_EQ(ls[3].map_by, "node");
  EXPECT_EQ(ls[3].link, "1gbit");
  EXPECT_EQ(ls[3].label(), "TP across");
  EXPECT_EQ(ls[3].spec, "tp=2,pp=2,hosts=2,map=node,link=1gbit");
}

TEST(Sweep, RefusesBadLayouts) {
  EXPECT_THROW(parse_layouts("tp=3,hosts=2"), Error);      // 3 ranks over 2 hosts
  EXPECT_THROW(parse_layouts("tp=2,map=node"), Error);     // map without hosts
  EXPECT_THROW(parse_layouts("tp=2,link=1gbit"), Error);   // link without hosts
  EXPECT_THROW(parse_layouts("tp=2,hosts=2,map=ring"), Error);
  EXPECT_THROW(parse_layouts("tp=0"), Error);
  EXPECT_THROW(parse_layouts("tp=two"), Error);
  EXPECT_THROW(parse_layouts("dp=2"), Error);
  EXPECT_THROW(parse_layouts("tp2"), Error);
  EXPECT_THROW(parse_layouts(" ; "), Error);
  EXPECT_THROW(parse_layouts("tp=2,pp=2,hosts=2,link=1g;bit"), Error);
}

TEST(Sweep, ParsesRatesAscendingAndUnique) {
  const auto r = parse_rates("4, 1,inf,1,0.5");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0], 0.5);
  EXPECT_EQ(r[1], 1);
  EXPECT_EQ(r[2], 4);
  EXPECT_TRUE(std::isinf(r[3]));
  EXPECT_THROW(parse_rates("0"), Error);
  EXPECT_THROW(parse_rates("-1"), Error);
  EXPECT_THROW(parse_rates("2x"), Error);
  EXPECT_THROW(parse_rates(""), Error);
}

TEST(Sweep, ServeCommandOfALayout) {
  const auto l = parse_layouts("tp=2,pp=2,hosts=2,map=node,threads=1")[0];
  const auto a = serve_command(l, "m.gguf", 9000, "sw");
  auto has = [&](const std::string& k, const std::string& v) {
    auto it = std::find(a.begin(), a.end(), k);
    return it != a.end() && it + 1 != a.end() && *(it + 1) == v;
  };
  EXPECT_EQ(a[0], "serve");
  EXPECT_TRUE(has("--port", "9000"));
  EXPECT_TRUE(has("-m", "m.gguf"));
  EXPECT_TRUE(has("--tp", "2"));
  EXPECT_TRUE(has("--pp", "2"));
  EXPECT_TRUE(has("-t", "1"));
  EXPECT_TRUE(has("--hosts", "swh1:2,swh2:2"));  // 4 ranks, 2 slots per host
  EXPECT_TRUE(has("--map-by", "node"));
  const auto one = serve_command(parse_layouts("tp=1")[0], "", 9001, "sw");
  EXPECT_EQ(std::count(one.begin(), one.end(), "--tp"), 0);
  EXPECT_EQ(std::count(one.begin(), one.end(), "--hosts"), 0);
  EXPECT_EQ(std::count(one.begin(), one.end(), "-m"), 0);
}

TEST(Sweep, KeepUpRuleComparesEndsWithArrivals) {
  // Arrivals every second at 0..8 (T = 8, steady window [2, 8]), each taking
  // 1.5 s: arrived in [2, 8]: 2..8 = 7; ended in [2, 8] (ends 1.5, 2.5, ...,
  // 9.5): 2.5 .. 7.5 = 6. 6 >= 0.9 x 7 - 1 = 5.3: keeps up, pace 6/7.
  std::vector<double> arr, end;
  for (int i = 0; i <= 8; ++i) {
    arr.push_back(i);
    end.push_back(i + 1.5);
  }
  KeepUp k = keeps_up(arr, end, 0);
  EXPECT_EQ(k.arrived, 7);
  EXPECT_EQ(k.ended, 6);
  EXPECT_DOUBLE_EQ(k.pace, 6.0 / 7.0);
  EXPECT_TRUE(k.keeps_up);
  EXPECT_FALSE(keeps_up(arr, end, 1).keeps_up);  // a failure
  // A backlog: request i ends at 2i + 1 (one every 2 s against arrivals every
  // 1 s). Ends 1, 3, 5, 7, 9, ...: in [2, 8] 3, 5, 7 = 3. 3 < 0.9 x 7 - 1 =
  // 5.3: falls behind, pace 3/7 (capacity / rate would be 1/2).
  for (int i = 0; i <= 8; ++i) end[i] = 2 * i + 1;
  k = keeps_up(arr, end, 0);
  EXPECT_EQ(k.ended, 3);
  EXPECT_DOUBLE_EQ(k.pace, 3.0 / 7.0);
  EXPECT_FALSE(k.keeps_up);
  EXPECT_TRUE(keeps_up(arr, end, 0, 0.5).keeps_up);  // 3 >= 0.5 x 7 - 1 = 2.5
  EXPECT_FALSE(keeps_up({}, {}, 0).keeps_up);
  EXPECT_THROW(keeps_up({1}, {}, 0), Error);
}

TEST(Sweep, SustainedRateIsTheLastOfAnUnbrokenRun) {
  EXPECT_EQ(sustained_rate({{2, true}, {1, true}, {4, false}, {8, true}}), 2);
  EXPECT_EQ(sustained_rate({{1, false}, {2, true}}), 0);
  EXPECT_EQ(sustained_rate({{1, true}, {INFINITY, true}}), 1);
  EXPECT_EQ(sustained_rate({}), 0);
}

TEST(Sweep, MarkdownTable) {
  const nlohmann::json sweep = {
      {"layouts",
       {{{"label", "tp=2"},
         {"sustained_rate", 2.0},
         {"runs",
          {{{"request_rate", 2.0}, {"request_throughput", 1.95}, {"output_throughput", 124.8},
            {"median_ttft_ms", 31.04}, {"median_tpot_ms", 3.15}, {"p90_e2el_ms", 250.4}, {"p99_e2el_ms", 301.6},
            {"failed", 0}, {"keeps_up", true}},
           {{"request_rate", 8.0}, {"request_throughput", 5.5}, {"output_throughput", 352.0},
            {"median_ttft_ms", 900.0}, {"median_tpot_ms", 9.0}, {"p90_e2el_ms", 4000.0}, {"p99_e2el_ms", 5000.0},
            {"failed", 0}, {"keeps_up", false}, {"pace", 0.684}}}}},
        {{"label", "pp=2"}, {"error", "the server did not become healthy"}, {"runs", nlohmann::json::array()}}}}};
  const std::string md = sweep_markdown(sweep);
  EXPECT_NE(md.find("| tp=2 | 2 | 1.95 | 124.8 | 31.0 | 3.1 | 250 | 302 | 0 | yes |"), std::string::npos) << md;
  EXPECT_NE(md.find("| tp=2 | 8 | 5.50 | 352.0 | 900.0 | 9.0 | 4000 | 5000 | 0 | no (pace 0.68) |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("error: the server did not become healthy"), std::string::npos) << md;
  EXPECT_NE(md.find("- tp=2: 2 req/s"), std::string::npos) << md;
  EXPECT_NE(md.find("- pp=2: none of the rates"), std::string::npos) << md;
}
