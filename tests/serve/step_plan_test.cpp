// StepPlan serialization: a round trip keeps every field; damaged buffers are
// refused with an error instead of being read past their end.
#include "serve/step_plan.h"

#include <gtest/gtest.h>

#include "core/check.h"

using namespace parallama;

namespace {

StepPlan sample_plan() {
  StepPlan p;
  p.step = 42;
  PlanNewSeq a;
  a.id = 7;
  a.sampling.temperature = 0.5f;
  a.sampling.top_k = 3;
  a.sampling.seed = 99;
  a.prompt = {1, 2, 3};
  p.added.push_back(a);
  p.released = {3, 5};
  PlanItem it;
  it.id = 7;
  it.n_past = 16;
  it.kept_blocks = 1;
  it.want_logits = false;
  it.new_blocks = {9, 4};
  it.tokens = {5, 6, 7};
  p.items.push_back(it);
  it.id = 8;
  it.want_logits = true;
  it.new_blocks.clear();
  it.tokens = {11};
  p.items.push_back(it);
  return p;
}

}  // namespace

TEST(StepPlan, RoundTripKeepsEveryField) {
  const StepPlan p = sample_plan();
  const auto bytes = p.serialize();
  const StepPlan q = StepPlan::deserialize(bytes.data(), bytes.size());
  EXPECT_EQ(q.step, 42u);
  EXPECT_FALSE(q.shutdown);
  ASSERT_EQ(q.added.size(), 1u);
  EXPECT_EQ(q.added[0].id, 7u);
  EXPECT_EQ(q.added[0].sampling.temperature, 0.5f);
  EXPECT_EQ(q.added[0].sampling.top_k, 3);
  EXPECT_EQ(q.added[0].sampling.seed, 99u);
  EXPECT_EQ(q.added[0].prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(q.released, (std::vector<uint64_t>{3, 5}));
  ASSERT_EQ(q.items.size(), 2u);
  EXPECT_EQ(q.items[0].id, 7u);
  EXPECT_EQ(q.items[0].n_past, 16);
  EXPECT_EQ(q.items[0].kept_blocks, 1);
  EXPECT_FALSE(q.items[0].want_logits);
  EXPECT_EQ(q.items[0].new_blocks, (std::vector<int32_t>{9, 4}));
  EXPECT_EQ(q.items[0].tokens, (std::vector<int32_t>{5, 6, 7}));
  EXPECT_TRUE(q.items[1].want_logits);
  EXPECT_EQ(q.n_outputs(), 1);
  StepPlan stop;
  stop.shutdown = true;
  const auto sb = stop.serialize();
  EXPECT_TRUE(StepPlan::deserialize(sb.data(), sb.size()).shutdown);
  EXPECT_FALSE(StepPlan::deserialize(sb.data(), sb.size()).heartbeat);
  StepPlan beat;
  beat.heartbeat = true;
  auto hb = beat.serialize();
  const StepPlan h = StepPlan::deserialize(hb.data(), hb.size());
  EXPECT_TRUE(h.heartbeat);
  EXPECT_FALSE(h.shutdown);
  EXPECT_FALSE(q.heartbeat);
  hb[12] = 4;  // magic (4 bytes), step (8), then the flags byte
  EXPECT_THROW(StepPlan::deserialize(hb.data(), hb.size()), Error);
}

TEST(StepPlan, DamagedBuffersAreRefused) {
  const auto bytes = sample_plan().serialize();
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_THROW(StepPlan::deserialize(bytes.data(), n), Error) << n;
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_THROW(StepPlan::deserialize(longer.data(), longer.size()), Error);
  auto bad = bytes;
  bad[0] ^= 1;  // magic
  EXPECT_THROW(StepPlan::deserialize(bad.data(), bad.size()), Error);
}
