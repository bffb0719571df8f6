// The step scheduler on world rank 0: a chain of small stages, each a plain
// function over the queues and the block pool, each tested alone
// (tests/serve/scheduler_test.cpp).
//
//   1. grow_running    running sequences get blocks for every token they know;
//                      when the pool is short the newest admitted sequence is
//                      preempted (its blocks freed; it is recomputed later).
//   2. admit_waiting   waiting requests, first come first served, get blocks
//                      for their prompt (cached prefix blocks shared) while the
//                      pool and the sequence cap allow.
//   3. select_tokens   the token budget: one token for each decoding sequence
//                      first, then prefill chunks in admission order, so a long
//                      prompt is prefilled over several steps while others decode.
//   4. commit_step     advances the computed counts of the selection and
//                      registers blocks that became full in the prefix cache.
//
// A sequence in flight (its micro-batch has not returned its token yet) is left
// out of every stage: it is neither grown, nor preempted, nor scheduled again.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "runtime/block_pool.h"
#include "serve/sequence.h"

namespace parallama {

struct SchedulerConfig {
  int32_t max_num_seqs = 256;             // running sequences at most
  int32_t max_num_batched_tokens = 2048;  // tokens in one step (one micro-batch)
  // Free blocks kept back when admitting while others run, so that running
  // sequences can grow a while before anything is preempted.
  int32_t watermark_blocks = 0;
};

struct ScheduledSeq {
  Sequence* seq = nullptr;
  int32_t n_tokens = 0;  // tokens [seq->n_computed, + n_tokens) run this step
};

// Stage 1. running: in admission order. Preempted sequences move to the front of
// `waiting` (oldest first) and are appended to `preempted`.
void grow_running(std::vector<Sequence*>& running, std::deque<Sequence*>& waiting, BlockPool& pool,
                  std::vector<Sequence*>& preempted);

// Preempts one sequence: frees its blocks, forgets its computed tokens (kept:
// its prompt and generated tokens) and puts it at the front of `waiting`.
void preempt(Sequence& s, std::vector<Sequence*>& running, std::deque<Sequence*>& waiting, BlockPool& pool);

// Stage 2. Returns the number admitted. admit_counter numbers admissions.
int admit_waiting(std::deque<Sequence*>& waiting, std::vector<Sequence*>& running, BlockPool& pool,
                  const SchedulerConfig& cfg, int64_t& admit_counter);

// Stage 3. At most max_seqs sequences and cfg.max_num_batched_tokens tokens;
// only tokens that the sequence's blocks (of block_size tokens) cover.
std::vector<ScheduledSeq> select_tokens(const std::vector<Sequence*>& running, const SchedulerConfig& cfg,
                                        int32_t max_seqs, int32_t block_size);

// Stage 4. Marks the selection in flight and advances n_computed.
void commit_step(const std::vector<ScheduledSeq>& step, BlockPool& pool);

}  // namespace parallama
