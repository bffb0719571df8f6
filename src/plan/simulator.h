// A discrete-event simulation of our serving engine under load. The policy is
// the engine's own code: each launch calls grow_running, admit_waiting,
// select_tokens and commit_step (serve/scheduler.h) over real Sequences and a
// BlockPool, the way ServingEngine::launch / step / complete do
// (serve/engine_loop.cpp): the same watermark, the same balancing of ready
// sequences over free micro-batch slots under PP, preemption by recompute,
// and a sequence ends when it has max_tokens (EOS is ignored: there are no
// real tokens; prefix caching is off, as the dummy prompts would all match).
//
// Time: a step function gives each micro-batch its stage and send times
// (cost_model.h, or a constant in tests). Rank 0 runs stage 0 itself, so
// launching a micro-batch takes it that long; the micro-batch then goes
// through the stages and the links between them, each a server taking one at
// a time in launch order (start = max(arrival there, free)); its tokens come
// back after the last stage. Like ServingEngine::step, rank 0 takes in the
// requests that have arrived, launches micro-batches while fewer than pp are in
// flight and there is work, then waits for the oldest to return. A sequence
// samples when the step that computes its last known token returns (a long
// prompt's earlier chunks produce nothing).
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/serve_metrics.h"
#include "plan/cost_model.h"
#include "serve/scheduler.h"

namespace parallama::plan {

struct SimRequest {
  double arrival_s = 0;    // from the start
  int32_t prompt_len = 0;  // tokens, >= 1
  int32_t output_len = 0;  // tokens to generate, >= 1
};

// Integer lengths drawn uniformly from [min, max]; fixed when min == max.
struct LengthRange {
  int32_t min = 128;
  int32_t max = 128;
};

// n requests sent as `parallama bench serve` sends them: gaps from a gamma
// distribution of shape `burstiness` and mean 1 / rate (bench::arrival_times;
// burstiness 1 is Poisson; rate <= 0 or inf: all at 0), lengths uniform in the
// ranges. Same seed, same requests. Throws parallama::Error on a bad range.
std::vector<SimRequest> make_requests(int64_t n, double rate, double burstiness, LengthRange input,
                                      LengthRange output, uint64_t seed);

// Requests of the given (prompt, output) lengths, in order, arriving as
// make_requests' do for the same seed (a ShareGPT sample, say). Throws
// parallama::Error on a length below 1.
std::vector<SimRequest> requests_with_lengths(const std::vector<std::pair<int32_t, int32_t>>& lengths, double rate,
                                              double burstiness, uint64_t seed);

struct SimConfig {
  SchedulerConfig sched;      // max_num_seqs, max_num_batched_tokens; watermark_blocks <= 0:
                              // kv_blocks / 100, as ServingEngine sets it
  int32_t kv_blocks = 0;      // KV pool, blocks
  int32_t block_size = 16;    // tokens per block
  int pp = 1;                 // pipeline stages = micro-batches in flight at most
  int32_t max_model_len = 0;  // longest sequence (prompt + output), tokens; 0: what the pool holds
  // Devices sharing too few cores (emulated hosts on one machine, more ranks
  // than cores): each stage's devices_per_stage devices compute on `cores`
  // cores shared by every stage, so a micro-batch launched while k - 1 others
  // are in flight computes max(1, devices_per_stage x min(k, pp) / cores) times
  // slower at every stage (its TP collectives, StepCost::tp_comm_s, do not
  // slow: a waiting rank yields its core). 0: every device has a core of its own.
  double cores = 0;
  int devices_per_stage = 1;
};

// The time of one micro-batch: stage_s must have pp entries and send_s pp - 1
// (with pp == 1 an empty stage_s means one stage of latency_s).
using StepTimeFn = std::function<StepCost(const StepShape&)>;

struct SimRequestResult {
  bench::RequestRecord record;  // success, lengths, TTFT, E2EL and ITL as bench serve records them
  double arrival_s = 0;
  double queue_s = 0;           // arrival to first admission
  int32_t n_preempted = 0;
};

struct SimResult {
  std::vector<SimRequestResult> requests;  // in the order given
  double duration_s = 0;                   // first arrival to the last token
  std::vector<double> stage_busy_s;        // [pp] time each stage computed
  int64_t steps = 0;                       // micro-batches launched
  int64_t preemptions = 0;
  double peak_kv_usage = 0;                // highest fraction of blocks in use at a launch

  std::vector<bench::RequestRecord> records() const;
};

// Runs every request to its end. A request whose prompt leaves no room for a
// token in max_model_len fails (as the engine refuses it); its output is capped
// at max_model_len like the engine's. Throws parallama::Error on a bad config
// or request (no prompt, no output, a step function with the wrong number of
// stages).
SimResult simulate(const std::vector<SimRequest>& requests, const SimConfig& cfg, const StepTimeFn& step_time);

// vLLM's summary (bench::compute_metrics: completed, failed, duration,
// request_throughput, output_throughput, mean_/median_/std_/pNN_ ttft, tpot,
// itl, e2el _ms) plus "stage_busy" (fraction of the duration, per stage),
// "keeps_up" and "pace" (bench::keeps_up: the rule and names of bench sweep),
// "mean_queue_ms", "steps", "preemptions", "peak_kv_usage".
nlohmann::json summarize(const SimResult& r, const std::vector<double>& percentiles = {90, 99});

}  // namespace parallama::plan
