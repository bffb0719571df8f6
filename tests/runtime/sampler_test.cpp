// Sampler tests. Expected values are derived by hand in the comments, never from the
// sampler's own output.
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "core/check.h"

namespace parallama {
namespace {

std::vector<int> histogram(Sampler& s, const std::vector<float>& logits, int draws,
                           const std::vector<int32_t>& history = {}) {
  std::vector<int> h(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++h[static_cast<size_t>(s.sample(logits.data(), history))];
  return h;
}

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  // max is 3.0 at ids 1 and 3 -> lowest id, 1.
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f};
  Sampler s(SamplingParams{}, 4);
  EXPECT_EQ(s.sample(logits.data(), {}), 1);
  // Clear winner at the end of the vector.
  const std::vector<float> l2 = {-5.0f, 0.0f, 0.5f, 7.25f};
  EXPECT_EQ(s.sample(l2.data(), {}), 3);
  // Negative temperature is greedy too.
  SamplingParams p;
  p.temperature = -1.0f;
  Sampler s2(p, 4);
  EXPECT_EQ(s2.sample(logits.data(), {}), 1);
}

TEST(Sampler, TopK1EqualsGreedyAtAnyTemperature) {
  std::mt19937 gen(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> logits(1000);
  for (float& x : logits) x = nd(gen);
  const int32_t best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  for (float t : {0.1f, 1.0f, 100.0f}) {
    SamplingParams p;
    p.temperature = t;
    p.top_k = 1;
    p.seed = 42;
    Sampler s(p, 1000);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(s.sample(logits.data(), {}), best) << "T=" << t;
  }
  // Ties: top_k=1 keeps the lowest id among equal maxima (ids 1 and 3 -> 1).
  const std::vector<float> tied = {1.0f, 3.0f, 2.0f, 3.0f};
  SamplingParams p;
  p.temperature = 5.0f;
  p.top_k = 1;
  Sampler s(p, 4);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(tied.data(), {}), 1);
}

TEST(Sampler, TopKRestrictsToKHighest) {
  // Logits 0..9 at ids 0..9: top_k=3 keeps ids 7,8,9. At T=1 their probabilities are
  // e^7:e^8:e^9 / sum = 0.0900, 0.2447, 0.6652.
  std::vector<float> logits(10);
  for (int i = 0; i < 10; ++i) logits[static_cast<size_t>(i)] = static_cast<float>(i);
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 3;
  p.seed = 3;
  Sampler s(p, 10);
  auto h = histogram(s, logits, 20000);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(h[static_cast<size_t>(i)], 0);
  EXPECT_NEAR(h[7] / 20000.0, 0.0900, 0.015);
  EXPECT_NEAR(h[8] / 20000.0, 0.2447, 0.015);
  EXPECT_NEAR(h[9] / 20000.0, 0.6652, 0.015);
}

TEST(Sampler, TinyTopPIsArgmax) {
  const std::vector<float> logits = {0.3f, 0.1f, 0.9f, 0.85f, -2.0f};
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_p = 1e-6f;  // the first sorted token already carries more than that mass
  p.seed = 9;
  Sampler s(p, 5);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.sample(logits.data(), {}), 2);
}

// log of probabilities {0.5, 0.3, 0.15, 0.05}: softmax at T=1 gives them back.
std::vector<float> four_probs() {
  return {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
}

TEST(Sampler, TopPKeepsSmallestPrefixReachingMass) {
  const auto logits = four_probs();
  struct Case {
    float top_p;
    std::vector<double> expect;  // renormalised probabilities of the kept prefix
  };
  // cumulative mass 0.5, 0.8, 0.95, 1.0:
  //  top_p 0.45 -> {0}; 0.7 -> {0,1} = 0.5/0.8, 0.3/0.8; 0.85 -> {0,1,2} over 0.95.
  const Case cases[] = {
      {0.45f, {1.0, 0.0, 0.0, 0.0}},
      {0.7f, {0.625, 0.375, 0.0, 0.0}},
      {0.85f, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0}},
  };
  for (const Case& c : cases) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_p = c.top_p;
    p.seed = 11;
    Sampler s(p, 4);
    auto h = histogram(s, logits, 20000);
    for (size_t i = 0; i < 4; ++i) {
      if (c.expect[i] == 0.0) EXPECT_EQ(h[i], 0) << "top_p=" << c.top_p << " id " << i;
      else EXPECT_NEAR(h[i] / 20000.0, c.expect[i], 0.015) << "top_p=" << c.top_p << " id " << i;
    }
  }
}

TEST(Sampler, MinPFilters) {
  // p_max = 0.5; min_p = 0.5 keeps p >= 0.25 -> ids {0, 1}, renormalised 0.625 / 0.375.
  const auto logits = four_probs();
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.5f;
  p.seed = 5;
  Sampler s(p, 4);
  auto h = histogram(s, logits, 20000);
  EXPECT_EQ(h[2], 0);
  EXPECT_EQ(h[3], 0);
  EXPECT_NEAR(h[0] / 20000.0, 0.625, 0.015);
  EXPECT_NEAR(h[1] / 20000.0, 0.375, 0.015);
  // min_p = 0.2 keeps p >= 0.1 -> {0,1,2}; id 3 (0.05) never appears.
  p.min_p = 0.2f;
  Sampler s2(p, 4);
  auto h2 = histogram(s2, logits, 20000);
  EXPECT_EQ(h2[3], 0);
  EXPECT_NEAR(h2[2] / 20000.0, 0.15 / 0.95, 0.015);
}

TEST(Sampler, SoftmaxDistributionAtTemperature) {
  // softmax({1, 2, 0.5, -1}): e^x = 2.71828, 7.38906, 1.64872, 0.36788, sum 12.12394
  //   -> 0.22421, 0.60946, 0.13599, 0.03034.
  // At T=2 (x/2): e^x = 1.64872, 2.71828, 1.28403, 0.60653, sum 6.25756
  //   -> 0.26348, 0.43440, 0.20520, 0.09693.
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f};
  const double want1[] = {0.22421, 0.60946, 0.13599, 0.03034};
  const double want2[] = {0.26348, 0.43440, 0.20520, 0.09693};
  for (float t : {1.0f, 2.0f}) {
    SamplingParams p;
    p.temperature = t;
    p.seed = 1234;
    Sampler s(p, 4);
    auto h = histogram(s, logits, 20000);
    const double* want = t == 1.0f ? want1 : want2;
    // 4 sigma of a 20000-draw binomial at p=0.5 is 0.014.
    for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(h[i] / 20000.0, want[i], 0.015) << "T=" << t << " id " << i;
  }
}

TEST(Sampler, RepeatPenaltyHandCase) {
  // logits {2.0, -1.0, 0.5, 1.9}; unpenalised argmax is id 0.
  // penalty 2 over history {0, 1}: id0 2.0 > 0 -> 2.0/2 = 1.0; id1 -1.0 <= 0 -> -2.0.
  // -> {1.0, -2.0, 0.5, 1.9}: argmax id 3.
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 1.9f};
  SamplingParams p;
  EXPECT_EQ(Sampler(p, 4).sample(logits.data(), std::vector<int32_t>{0, 1}), 0);
  p.repeat_penalty = 2.0f;
  Sampler s(p, 4);
  EXPECT_EQ(s.sample(logits.data(), std::vector<int32_t>{0, 1}), 3);
  // Input logits are not modified.
  EXPECT_EQ(logits[0], 2.0f);

  // Window: history {0,1,1,1}. last_n=3 sees only {1,1,1} -> id0 keeps 2.0 -> argmax 0.
  // last_n=4 or -1 (whole history) sees id 0 -> 1.0 -> argmax 3. last_n=0: off -> 0.
  const std::vector<int32_t> hist = {0, 1, 1, 1};
  for (auto [n, want] : {std::pair{3, 0}, std::pair{4, 3}, std::pair{-1, 3}, std::pair{0, 0}}) {
    p.repeat_last_n = n;
    EXPECT_EQ(Sampler(p, 4).sample(logits.data(), hist), want) << "repeat_last_n=" << n;
  }

  // Applied once per distinct token, not per occurrence: logits {2.0, 1.2}, penalty 1.5,
  // history {0,0,0}: once -> 2.0/1.5 = 1.333 > 1.2 -> id 0 (three times would give 0.59 -> id 1).
  const std::vector<float> l2 = {2.0f, 1.2f};
  SamplingParams p2;
  p2.repeat_penalty = 1.5f;
  EXPECT_EQ(Sampler(p2, 2).sample(l2.data(), std::vector<int32_t>{0, 0, 0}), 0);
}

TEST(Sampler, PresenceFrequencyHandCase) {
  // logits {2.0, 1.4, 0.0, 1.8}, history {0,0,0,3} (counts: id0 3, id3 1).
  // presence 0.1, frequency 0.2: id0 2.0-0.1-0.6 = 1.3; id3 1.8-0.1-0.2 = 1.5; id1 1.4
  //   -> argmax id 3.
  // presence 0.1 only: id0 1.9, id3 1.7 -> argmax id 0.
  const std::vector<float> logits = {2.0f, 1.4f, 0.0f, 1.8f};
  const std::vector<int32_t> hist = {0, 0, 0, 3};
  SamplingParams p;
  p.presence_penalty = 0.1f;
  EXPECT_EQ(Sampler(p, 4).sample(logits.data(), hist), 0);
  p.frequency_penalty = 0.2f;
  EXPECT_EQ(Sampler(p, 4).sample(logits.data(), hist), 3);
  // Presence 1.0 alone: id0 1.0, id3 0.8 -> id1 (1.4) wins.
  p.frequency_penalty = 0.0f;
  p.presence_penalty = 1.0f;
  EXPECT_EQ(Sampler(p, 4).sample(logits.data(), hist), 1);
}

TEST(Sampler, PenaltiesFeedTheDistribution) {
  // logits {0, 0}, history {0}, presence ln(3) -> id0 at -ln 3: p = 1/(1+3) = 0.25.
  const std::vector<float> logits = {0.0f, 0.0f};
  SamplingParams p;
  p.temperature = 1.0f;
  p.presence_penalty = std::log(3.0f);
  p.seed = 77;
  Sampler s(p, 2);
  auto h = histogram(s, logits, 20000, {0});
  EXPECT_NEAR(h[0] / 20000.0, 0.25, 0.015);
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDiffers) {
  std::vector<float> logits(1000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  auto run = [&](uint64_t seed) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_k = 500;
    p.top_p = 0.95f;
    p.seed = seed;
    Sampler s(p, 1000);
    std::vector<int32_t> out;
    for (int i = 0; i < 100; ++i) out.push_back(s.sample(logits.data(), {}));
    return out;
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_NE(run(1), run(2));  // 100 draws over ~500 near-uniform tokens: a collision is ~impossible

  // reset(seed) restarts the stream exactly.
  SamplingParams p;
  p.temperature = 1.0f;
  Sampler s(p, 1000);
  std::vector<int32_t> a, b;
  s.reset(99);
  for (int i = 0; i < 50; ++i) a.push_back(s.sample(logits.data(), {}));
  s.reset(99);
  for (int i = 0; i < 50; ++i) b.push_back(s.sample(logits.data(), {}));
  EXPECT_EQ(a, b);
}

TEST(Sampler, TopPOnLargeVocabCrossesPartialSortChunks) {
  // 49152 tokens: 300 "hot" ids (spread out) at logit 10, the rest at 0.
  // total mass (relative to e^10 = 22026.47): 300 + 48852 e^-10 = 300 + 2.218 = 302.218.
  // top_p 0.99 -> 299.2 hot tokens' worth -> keeps exactly the 300 hot ones (more than the
  // 256-token first chunk of the partial sort), and no cold token.
  const int32_t n = 49152;
  std::vector<float> logits(static_cast<size_t>(n), 0.0f);
  std::set<int32_t> hot;
  for (int32_t i = 0; i < 300; ++i) hot.insert((i * 163 + 11) % n);
  for (int32_t id : hot) logits[static_cast<size_t>(id)] = 10.0f;
  ASSERT_EQ(hot.size(), 300u);
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.99f;
  p.seed = 2024;
  Sampler s(p, n);
  std::set<int32_t> seen;
  for (int i = 0; i < 3000; ++i) {
    const int32_t t = s.sample(logits.data(), {});
    ASSERT_TRUE(hot.count(t)) << t;
    seen.insert(t);
  }
  // Each hot token has p = 1/300; after 3000 draws ~300 e^-10 = 0.01 are expected missing.
  EXPECT_GT(seen.size(), 290u);
}

TEST(Sampler, TopKOnLargeVocabMatchesBruteForce) {
  const int32_t n = 49152;
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(n));
  for (float& x : logits) x = nd(gen);
  std::vector<int32_t> idx(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)]; });
  const std::set<int32_t> top40(idx.begin(), idx.begin() + 40);
  SamplingParams p;
  p.temperature = 3.0f;  // flattens, so all 40 get drawn
  p.top_k = 40;
  Sampler s(p, n);
  std::set<int32_t> seen;
  for (int i = 0; i < 3000; ++i) {
    const int32_t t = s.sample(logits.data(), {});
    ASSERT_TRUE(top40.count(t)) << t;
    seen.insert(t);
  }
  EXPECT_GT(seen.size(), 30u);
}

TEST(Sampler, NonFiniteLogits) {
  // -inf and NaN never get drawn; greedy ignores NaN.
  const float nan = std::nanf("");
  const std::vector<float> logits = {nan, -INFINITY, 0.0f, 0.0f};
  EXPECT_EQ(Sampler(SamplingParams{}, 4).sample(logits.data(), {}), 2);
  SamplingParams p;
  p.temperature = 1.0f;
  Sampler s(p, 4);
  auto h = histogram(s, logits, 2000);
  EXPECT_EQ(h[0] + h[1], 0);
}

TEST(Sampler, InvalidParamsThrow) {
  auto bad = [](auto mutate) {
    SamplingParams p;
    mutate(p);
    EXPECT_THROW(Sampler(p, 10), Error);
  };
  bad([](SamplingParams& p) { p.top_k = -1; });
  bad([](SamplingParams& p) { p.top_p = 0.0f; });
  bad([](SamplingParams& p) { p.top_p = 1.5f; });
  bad([](SamplingParams& p) { p.top_p = -0.1f; });
  bad([](SamplingParams& p) { p.top_p = std::nanf(""); });
  bad([](SamplingParams& p) { p.min_p = -0.1f; });
  bad([](SamplingParams& p) { p.min_p = 1.5f; });
  bad([](SamplingParams& p) { p.repeat_penalty = 0.0f; });
  bad([](SamplingParams& p) { p.repeat_penalty = -1.0f; });
  bad([](SamplingParams& p) { p.repeat_last_n = -2; });
  bad([](SamplingParams& p) { p.temperature = std::nanf(""); });
  bad([](SamplingParams& p) { p.temperature = INFINITY; });
  bad([](SamplingParams& p) { p.presence_penalty = INFINITY; });
  bad([](SamplingParams& p) { p.frequency_penalty = std::nanf(""); });
  EXPECT_THROW(Sampler(SamplingParams{}, 0), Error);
  // Boundary values are valid.
  SamplingParams ok;
  ok.top_p = 1.0f;
  ok.min_p = 1.0f;
  ok.repeat_last_n = -1;
  EXPECT_NO_THROW(Sampler(ok, 10));
  // History ids outside the vocab are rejected, not read out of bounds.
  const std::vector<float> logits(10, 0.0f);
  SamplingParams pen;
  pen.repeat_penalty = 1.1f;
  Sampler s(pen, 10);
  EXPECT_THROW(s.sample(logits.data(), std::vector<int32_t>{3, 10}), Error);
  EXPECT_THROW(s.sample(logits.data(), std::vector<int32_t>{-1}), Error);
}

}  // namespace
}  // namespace parallama
