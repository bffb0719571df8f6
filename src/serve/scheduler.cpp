#include "serve/scheduler.h"

#include <algorithm>
#include <span>

#include "core/check.h"

namespace parallama {

void preempt(Sequence& s, std::vector<Sequence*>& running, std::deque<Sequence*>& waiting, BlockPool& pool) {
  PL_CHECK_MSG(!s.in_flight, "cannot preempt a sequence in flight");
  pool.release(s.blocks);
  s.blocks.clear();
  s.hashes.clear();
  s.n_computed = 0;
  s.state = SeqState::kWaiting;
  ++s.n_preempted;
  running.erase(std::find(running.begin(), running.end(), &s));
  waiting.push_front(&s);
}

void grow_running(std::vector<Sequence*>& running, std::deque<Sequence*>& waiting, BlockPool& pool,
                  std::vector<Sequence*>& preempted) {
  for (size_t i = 0; i < running.size(); ++i) {
    Sequence& s = *running[i];
    if (s.in_flight) continue;
    const int32_t need = pool.blocks_for(static_cast<int64_t>(s.tokens.size())) - static_cast<int32_t>(s.blocks.size());
    if (need <= 0) continue;
    bool self_preempted = false;
    while (pool.n_free() < need) {
      // The newest admitted sequence not in flight gives its blocks back.
      Sequence* victim = nullptr;
      for (Sequence* r : running)
        if (!r->in_flight && (!victim || r->admitted > victim->admitted)) victim = r;
      if (!victim) break;  // everything else is in flight: try again when it returns
      preempt(*victim, running, waiting, pool);
      preempted.push_back(victim);
      if (victim == &s) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) {
      --i;  // running[i] is now the next sequence
      continue;
    }
    if (pool.n_free() >= need) pool.allocate(need, s.blocks);
  }
}

int admit_waiting(std::deque<Sequence*>& waiting, std::vector<Sequence*>& running, BlockPool& pool,
                  const SchedulerConfig& cfg, int64_t& admit_counter) {
  int admitted = 0;
  std::vector<int32_t> hit;
  std::vector<uint64_t> hashes;
  while (!waiting.empty() && static_cast<int32_t>(running.size()) < cfg.max_num_seqs) {
    Sequence& s = *waiting.front();
    const int32_t n = static_cast<int32_t>(s.tokens.size());
    // At least the last known token is computed, so the step yields its logits;
    // its block is then the sequence's own.
    pool.match_prefix(s.tokens, (n - 1) / pool.block_size(), hit, hashes, s.n_cached_first < 0);
    int32_t hit_free = 0;
    for (int32_t b : hit) hit_free += pool.refcount(b) == 0;
    const int32_t fresh = pool.blocks_for(n) - static_cast<int32_t>(hit.size());
    const int32_t reserve = running.empty() ? 0 : cfg.watermark_blocks;
    if (fresh + hit_free + reserve > pool.n_free()) break;  // first come, first served: no overtaking
    waiting.pop_front();
    pool.share(hit);
    s.blocks = hit;
    PL_CHECK(pool.allocate(fresh, s.blocks));
    s.hashes = hashes;
    s.n_computed = static_cast<int32_t>(hit.size()) * pool.block_size();
    if (s.n_cached_first < 0) s.n_cached_first = s.n_computed;
    s.state = SeqState::kRunning;
    s.admitted = admit_counter++;
    running.push_back(&s);
    ++admitted;
  }
  return admitted;
}

std::vector<ScheduledSeq> select_tokens(const std::vector<Sequence*>& running, const SchedulerConfig& cfg,
                                        int32_t max_seqs, int32_t block_size) {
  std::vector<ScheduledSeq> out;
  int32_t budget = cfg.max_num_batched_tokens;
  // A sequence that could not grow (the pool is short while others are in
  // flight) waits for a later step.
  auto covered = [block_size](const Sequence& s, int32_t n) {
    return static_cast<int64_t>(s.blocks.size()) * block_size >= static_cast<int64_t>(s.n_computed) + n;
  };
  // Decoding sequences first: one token each.
  for (Sequence* s : running) {
    if (budget == 0 || static_cast<int32_t>(out.size()) >= max_seqs) break;
    if (s->in_flight || s->n_pending() != 1) continue;
    if (covered(*s, 1)) out.push_back({s, 1}), --budget;
  }
  // Then prefill chunks, oldest admission first.
  for (Sequence* s : running) {
    if (budget == 0 || static_cast<int32_t>(out.size()) >= max_seqs) break;
    if (s->in_flight || s->n_pending() <= 1) continue;
    const int32_t n = std::min(s->n_pending(), budget);
    if (!covered(*s, n)) continue;
    out.push_back({s, n});
    budget -= n;
  }
  return out;
}

void commit_step(const std::vector<ScheduledSeq>& step, BlockPool& pool) {
  const int32_t bs = pool.block_size();
  for (const ScheduledSeq& it : step) {
    Sequence& s = *it.seq;
    s.n_computed += it.n_tokens;
    PL_CHECK_MSG(static_cast<int64_t>(s.blocks.size()) * bs >= s.n_computed,
                 "sequence " << s.id << " scheduled past its blocks");
    s.in_flight = true;
    // Blocks that this step fills are cached from now on: any later step that
    // reads them runs after this one on every rank (plans run in order).
    for (size_t b = s.hashes.size(); static_cast<int64_t>(b + 1) * bs <= s.n_computed; ++b) {
      const std::span<const int32_t> toks(s.tokens.data() + b * bs, bs);
      const uint64_t h = BlockPool::chain_hash(b == 0 ? 0 : s.hashes[b - 1], toks);
      pool.cache_block(s.blocks[b], h, toks);
      s.hashes.push_back(h);
    }
  }
}

}  // namespace parallama
