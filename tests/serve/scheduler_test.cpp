// The scheduler's stages, each alone, on made-up sequences (no model).
#include "serve/scheduler.h"

#include <gtest/gtest.h>

#include <memory>
#include <numeric>

using namespace parallama;

namespace {

// Owns made-up sequences and the queues the stages work on.
struct World {
  BlockPool pool;
  std::vector<std::unique_ptr<Sequence>> all;
  std::deque<Sequence*> waiting;
  std::vector<Sequence*> running;
  int64_t counter = 0;
  SchedulerConfig cfg;

  World(int32_t n_blocks, int32_t bs, bool prefix = true) : pool(n_blocks, bs, prefix) {}

  Sequence* add(int n_prompt, int first_token = 1000) {
    auto s = std::make_unique<Sequence>();
    s->id = all.size() + 1;
    s->tokens.resize(n_prompt);
    std::iota(s->tokens.begin(), s->tokens.end(), first_token);
    s->n_prompt = n_prompt;
    waiting.push_back(s.get());
    all.push_back(std::move(s));
    return all.back().get();
  }
  // Runs a step's selection to the end: computed, back from flight, and each
  // sequence whose last token was computed gets one more (sampled) token.
  void finish_step(const std::vector<ScheduledSeq>& step) {
    commit_step(step, pool);
    for (const auto& it : step) {
      it.seq->in_flight = false;
      if (it.seq->n_pending() == 0) it.seq->tokens.push_back(7);
    }
  }
  int32_t held_blocks() const {
    int32_t n = 0;
    for (Sequence* s : running) n += static_cast<int32_t>(s->blocks.size());
    return n;
  }
};

}  // namespace

TEST(SchedulerAdmission, FirstComeFirstServedWithoutOvertaking) {
  World w(10, 4);
  Sequence* a = w.add(16);  // 4 blocks
  Sequence* b = w.add(28);  // 7 blocks: does not fit beside a
  Sequence* c = w.add(4);   // 1 block: would fit, but may not overtake b
  EXPECT_EQ(admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter), 1);
  EXPECT_EQ(w.running, (std::vector<Sequence*>{a}));
  EXPECT_EQ((std::vector<Sequence*>(w.waiting.begin(), w.waiting.end())), (std::vector<Sequence*>{b, c}));
  EXPECT_EQ(a->blocks.size(), 4u);
  EXPECT_EQ(a->state, SeqState::kRunning);
  EXPECT_EQ(b->state, SeqState::kWaiting);
  EXPECT_EQ(w.pool.n_free(), 6);
  // Once a is done, b and then c are admitted, in that order.
  w.pool.release(a->blocks);
  w.running.clear();
  EXPECT_EQ(admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter), 2);
  EXPECT_EQ(w.running, (std::vector<Sequence*>{b, c}));
  EXPECT_LT(a->admitted, b->admitted);
  EXPECT_LT(b->admitted, c->admitted);
  EXPECT_TRUE(w.waiting.empty());
}

TEST(SchedulerAdmission, SequenceCapAndWatermark) {
  World w(10, 4);
  w.cfg.max_num_seqs = 2;
  for (int i = 0; i < 3; ++i) w.add(4);
  EXPECT_EQ(admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter), 2);
  EXPECT_EQ(w.waiting.size(), 1u);

  World v(6, 4);
  v.cfg.watermark_blocks = 2;
  v.add(16);  // 4 blocks: admitted with nothing running, the watermark does not apply
  v.add(4);   // 1 block: would leave 1 < 2 free while one runs
  EXPECT_EQ(admit_waiting(v.waiting, v.running, v.pool, v.cfg, v.counter), 1);
  EXPECT_EQ(v.waiting.size(), 1u);
}

TEST(SchedulerGrowth, RunningSequencesGrowBlockByBlock) {
  World w(8, 4);
  Sequence* a = w.add(4);
  admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter);
  ASSERT_EQ(a->blocks.size(), 1u);
  auto step = select_tokens(w.running, w.cfg, 100, 4);
  w.finish_step(step);  // prefill of 4, first token sampled: 5 tokens known
  std::vector<Sequence*> pre;
  grow_running(w.running, w.waiting, w.pool, pre);
  EXPECT_TRUE(pre.empty());
  EXPECT_EQ(a->blocks.size(), 2u);  // position 4 needs a second block
  grow_running(w.running, w.waiting, w.pool, pre);
  EXPECT_EQ(a->blocks.size(), 2u);  // nothing new to cover
}

TEST(SchedulerGrowth, ShortPoolPreemptsTheNewestAndRecomputesLater) {
  World w(3, 4, false);
  Sequence* a = w.add(4);
  Sequence* b = w.add(4);
  Sequence* c = w.add(4);
  admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter);
  ASSERT_EQ(w.running.size(), 3u);
  w.finish_step(select_tokens(w.running, w.cfg, 100, 4));  // every one needs a 2nd block now
  std::vector<Sequence*> pre;
  grow_running(w.running, w.waiting, w.pool, pre);
  // a needs one block: c (newest) goes; then b needs one: b itself is now the newest.
  EXPECT_EQ(pre, (std::vector<Sequence*>{c, b}));
  EXPECT_EQ(w.running, (std::vector<Sequence*>{a}));
  EXPECT_EQ(a->blocks.size(), 2u);
  EXPECT_EQ((std::vector<Sequence*>(w.waiting.begin(), w.waiting.end())), (std::vector<Sequence*>{b, c}));
  for (Sequence* s : {b, c}) {
    EXPECT_EQ(s->n_computed, 0);
    EXPECT_TRUE(s->blocks.empty());
    EXPECT_EQ(s->tokens.size(), 5u);  // prompt and generated token are kept
    EXPECT_EQ(s->n_preempted, 1);
  }
  EXPECT_EQ(w.pool.n_free(), 1);
  // Sequences in flight are never preempted.
  World v(2, 4, false);
  Sequence* x = v.add(4);
  Sequence* y = v.add(4);
  admit_waiting(v.waiting, v.running, v.pool, v.cfg, v.counter);
  v.finish_step(select_tokens(v.running, v.cfg, 100, 4));
  y->in_flight = true;
  pre.clear();
  grow_running(v.running, v.waiting, v.pool, pre);
  EXPECT_EQ(pre, (std::vector<Sequence*>{x}));  // x is the only one that may go: it preempts itself
  EXPECT_EQ(v.running, (std::vector<Sequence*>{y}));
}

TEST(SchedulerBudget, DecodeFirstThenPrefillChunks) {
  World w(64, 4);
  w.cfg.max_num_batched_tokens = 10;
  Sequence* d1 = w.add(3);
  Sequence* d2 = w.add(3);
  admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter);
  w.finish_step(select_tokens(w.running, w.cfg, 100, 4));  // both decode from now on
  Sequence* p1 = w.add(12);
  Sequence* p2 = w.add(5);
  admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter);
  std::vector<Sequence*> pre;
  grow_running(w.running, w.waiting, w.pool, pre);
  auto step = select_tokens(w.running, w.cfg, 100, 4);
  ASSERT_EQ(step.size(), 3u);
  EXPECT_EQ(step[0].seq, d1);
  EXPECT_EQ(step[0].n_tokens, 1);
  EXPECT_EQ(step[1].seq, d2);
  EXPECT_EQ(step[1].n_tokens, 1);
  EXPECT_EQ(step[2].seq, p1);
  EXPECT_EQ(step[2].n_tokens, 8);  // the rest of the budget: a chunk
  w.finish_step(step);
  EXPECT_EQ(p1->n_computed, 8);
  EXPECT_EQ(p1->tokens.size(), 12u);  // no token sampled from a partial prefill
  grow_running(w.running, w.waiting, w.pool, pre);
  step = select_tokens(w.running, w.cfg, 100, 4);
  ASSERT_EQ(step.size(), 4u);
  EXPECT_EQ(step[2].seq, p1);
  EXPECT_EQ(step[2].n_tokens, 4);  // p1 finishes its prompt
  EXPECT_EQ(step[3].seq, p2);
  EXPECT_EQ(step[3].n_tokens, 4);
  // The sequence cap counts decodes first.
  auto capped = select_tokens(w.running, w.cfg, 1, 4);
  ASSERT_EQ(capped.size(), 1u);
  EXPECT_EQ(capped[0].seq, d1);
  // Sequences in flight are skipped.
  d1->in_flight = true;
  auto skip = select_tokens(w.running, w.cfg, 100, 4);
  EXPECT_EQ(skip[0].seq, d2);
}

TEST(SchedulerPrefix, SharedPrefixIsReusedAndRefcountsReturnToZero) {
  World w(16, 4);
  Sequence* a = w.add(10, 500);  // blocks [500..503] [504..507] and a partial one
  admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter);
  w.finish_step(select_tokens(w.running, w.cfg, 100, 4));  // registers a's two full blocks
  Sequence* b = w.add(9, 500);  // same first 8 tokens
  Sequence* c = w.add(8, 500);  // exactly two blocks: the last one must be computed
  admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter);
  EXPECT_EQ(b->n_computed, 8);
  EXPECT_EQ(b->blocks[0], a->blocks[0]);
  EXPECT_EQ(b->blocks[1], a->blocks[1]);
  EXPECT_EQ(b->n_cached_first, 8);
  EXPECT_EQ(c->n_computed, 4);  // (8 - 1) / 4 = 1 block at most
  EXPECT_EQ(c->blocks[0], a->blocks[0]);
  EXPECT_NE(c->blocks[1], a->blocks[1]);
  EXPECT_EQ(w.pool.refcount(a->blocks[0]), 3);
  EXPECT_EQ(w.pool.prefix_stats().queries, 8 + 8 + 4);  // a: 2 blocks, b: 2, c: 1
  EXPECT_EQ(w.pool.prefix_stats().hits, 8 + 4);
  auto step = select_tokens(w.running, w.cfg, 100, 4);
  ASSERT_EQ(step.size(), 3u);  // a decodes, b has 1 token to compute, c has 4
  EXPECT_EQ(step[1].seq, b);
  EXPECT_EQ(step[1].n_tokens, 1);
  EXPECT_EQ(step[2].n_tokens, 4);
  w.finish_step(step);
  // Everything back: refcounts at zero, every block free, the prefix still cached.
  for (Sequence* s : w.running) w.pool.release(s->blocks);
  for (int32_t blk = 0; blk < w.pool.n_blocks(); ++blk) EXPECT_EQ(w.pool.refcount(blk), 0);
  EXPECT_EQ(w.pool.n_free(), 16);
  EXPECT_TRUE(w.pool.is_cached(a->blocks[0]));
}

TEST(SchedulerPrefix, PreemptedSequenceFindsItsOwnBlocksAgain) {
  World w(4, 4);
  Sequence* a = w.add(8);
  admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter);
  w.finish_step(select_tokens(w.running, w.cfg, 100, 4));  // 9 tokens known, 2 full blocks cached
  const auto old = a->blocks;
  preempt(*a, w.running, w.waiting, w.pool);
  EXPECT_EQ(w.pool.n_free(), 4);
  admit_waiting(w.waiting, w.running, w.pool, w.cfg, w.counter);
  EXPECT_EQ(a->n_computed, 8);  // both blocks were still cached
  EXPECT_EQ(a->blocks[0], old[0]);
  EXPECT_EQ(a->blocks[1], old[1]);
  EXPECT_EQ(a->blocks.size(), 3u);
  EXPECT_EQ(a->n_cached_first, 0);  // the first admission's count stays
}
