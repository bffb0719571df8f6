// The serving engine: requests arrive and leave at any time; each step world
// rank 0 schedules (serve/scheduler.h), sends the step's plan to the other
// ranks, runs its own shard or stage, and hands each sampled token to its
// request's callback. Every other rank applies the plans it receives, in
// order, and runs the same step on its shard (TP) or stage (PP). With pp > 1
// up to pp micro-batches of disjoint sequences are in flight, so every stage
// works at once; a sequence is scheduled again when its token has come back.
//
// Threads: add_request() and abort() may be called from any thread (they go
// through a queue); step() and run() belong to the engine thread, which on an
// MPI rank is the main thread (the only one that calls MPI).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"
#include "runtime/block_pool.h"
#include "serve/request.h"
#include "serve/scheduler.h"
#include "serve/sequence.h"
#include "serve/step_executor.h"

namespace parallama {

struct ServeConfig {
  SchedulerConfig sched;
  bool prefix_caching = true;
  // Longest sequence (prompt + generated); 0: the model's trained context. Capped
  // at what the KV pool holds; a larger explicit value is refused.
  int32_t max_model_len = 0;
};

struct ServeStats {
  int64_t steps = 0;
  int64_t prompt_tokens = 0;       // prompt tokens of requests admitted (first admission)
  int64_t cached_prompt_tokens = 0;  // of those, served from the prefix cache
  int64_t computed_tokens = 0;     // tokens run through the model (recomputation included)
  int64_t generated_tokens = 0;
  int64_t preemptions = 0;
  int64_t finished = 0, aborted = 0;
  int32_t running = 0, waiting = 0;
  double kv_usage = 0, peak_kv_usage = 0;
  PrefixCacheStats prefix;
  double compute_s = 0;  // this rank's forward passes
  double comm_s = 0;     // this rank's communication (TP collectives, stage messages)
};

class ServingEngine {
 public:
  // On every rank of the engine's world, with the same config.
  ServingEngine(Engine& engine, const ServeConfig& cfg);
  ~ServingEngine();

  bool is_leader() const { return leader_; }
  int32_t max_model_len() const { return max_model_len_; }
  const BlockPool& pool() const { return *pool_; }

  // Rank 0, any thread. Validates the request (throws parallama::Error with the
  // reason: empty prompt, ids outside the vocabulary, longer than the context
  // or than the whole KV pool, bad sampling parameters) and queues it. on_token
  // is called on the engine thread for every token and for the end.
  uint64_t add_request(Request req, TokenCallback on_token);
  // Rank 0, any thread: the request ends with FinishReason::kAbort; its blocks
  // are free within one step. Unknown or finished ids are ignored.
  void abort(uint64_t id);
  // Rank 0, any thread: aborts every request queued or running now.
  void abort_all() { abort(0); }
  // Rank 0, any thread: run() returns once nothing is queued or running.
  void request_stop();

  // Rank 0, engine thread: one round (queue, schedule, run, emit). Returns
  // whether requests remain. Other ranks: not used.
  bool step();
  bool has_work();
  // Engine thread of every rank. Rank 0: steps until request_stop() and no work
  // is left (waiting for requests meanwhile), then stops the other ranks.
  // Other ranks: run plans until rank 0 stops them.
  void run();
  // Rank 0: tells the other ranks to leave run(). Called by run(); idempotent.
  void stop_workers();

  ServeStats stats() const;  // engine thread
  // Called on the engine thread after every step (rank 0): metrics read the
  // engine's state there, where it is not moving.
  void set_step_observer(std::function<void(const ServeStats&)> fn) { observer_ = std::move(fn); }

 private:
  struct Inbox {
    uint64_t id;
    bool abort;
    Request req;
    TokenCallback cb;
  };
  struct InFlight {
    StepPlan plan;
    std::vector<ScheduledSeq> step;
    int64_t tokens = 0;
  };
  // How long a step of n tokens may take on one stage, learnt from this rank's
  // own forward passes (a prior from the weight size until then): the
  // watchdog's allowance for waits on peers doing the same work.
  struct StepTimes {
    double fixed_s = 0;     // slowest step of few tokens (decode)
    double per_token_s = 0; // slowest per-token time of large steps (prefill)
    bool fixed_seen = false, per_token_seen = false;
    double estimate(int64_t n_tokens) const {
      return n_tokens > 0 ? fixed_s + per_token_s * static_cast<double>(n_tokens) : 0.0;
    }
    void observe(int64_t n_tokens, double seconds);
  };
  // Forward pass of this rank, timed for StepTimes, after telling the watchdog
  // how long the waits of this step may take: the work in flight before it
  // (tokens_ahead, rank 0) or a neighbour stage still on one of the last pp
  // steps, whichever is larger, on every stage, with a margin of 4.
  void forward_watched(int64_t tokens, int64_t tokens_ahead);
  void drain_inbox();
  void finish(Sequence& s, FinishReason why);
  bool launch();  // schedules and starts one micro-batch; false if nothing to run
  void complete(InFlight& mb, const std::vector<SampledToken>& tokens);
  StepPlan make_plan(const std::vector<ScheduledSeq>& step);
  void send_plan(const std::vector<uint8_t>& bytes, int to);
  std::vector<uint8_t> recv_plan(int from);
  void worker_loop();
  // A plan without work to every other rank: shutdown, or a heartbeat.
  void send_control_plan(bool shutdown);
  double comm_seconds() const;

  Engine& engine_;
  ServeConfig cfg_;
  bool leader_ = true;
  int pp_ = 1, tp_ = 1;
  int32_t max_model_len_ = 0;
  std::unique_ptr<BlockPool> pool_;  // rank 0 only
  StepExecutor exec_;
  // Engine thread (rank 0).
  std::unordered_map<uint64_t, std::unique_ptr<Sequence>> seqs_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;
  std::deque<InFlight> in_flight_;
  std::vector<uint64_t> pending_released_;
  int64_t admit_counter_ = 0;
  uint64_t step_counter_ = 0;
  bool workers_stopped_ = false;
  double comm0_ = 0;  // comm_seconds() at construction
  std::function<void(const ServeStats&)> observer_;
  ServeStats stats_;
  StageIO io_;
  StepTimes step_times_;
  std::deque<int64_t> recent_steps_;  // tokens of this rank's last pp steps
  std::vector<SampledToken> tokens_;
  // Shared with other threads.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Inbox> inbox_;
  uint64_t next_id_ = 1;
  bool stop_ = false;
};

}  // namespace parallama
