#include "plan/simulator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <numeric>
#include <random>

#include "bench/arrivals.h"
#include "bench/sweep.h"
#include "core/check.h"
#include "runtime/block_pool.h"

namespace parallama::plan {

namespace {

void check_range(const LengthRange& r, const char* what) {
  if (r.min < 1 || r.max < r.min)
    PL_THROW(what << " lengths [" << r.min << ", " << r.max << "] are invalid: need 1 <= min <= max");
}

// What the engine's callbacks would see of one request.
struct Track {
  double admitted_s = -1;     // first admission
  double first_s = -1, last_s = 0;
  std::vector<double> itl_s;  // gaps between consecutive tokens
};

struct InFlight {
  std::vector<ScheduledSeq> step;
  std::vector<uint8_t> sampled;  // [step] the item computes its sequence's last known token
  double done_s = 0;             // its tokens are back on rank 0
};

}  // namespace

std::vector<SimRequest> make_requests(int64_t n, double rate, double burstiness, LengthRange input, LengthRange output,
                                      uint64_t seed) {
  check_range(input, "input");
  check_range(output, "output");
  const std::vector<double> t = bench::arrival_times(n, rate, burstiness, seed);
  // Lengths from a stream of their own, so the arrivals equal bench serve's for the same seed.
  std::mt19937_64 rng(seed ^ 0x9E3779B97F4A7C15ULL);
  std::uniform_int_distribution<int32_t> in(input.min, input.max), out(output.min, output.max);
  std::vector<SimRequest> r(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    r[i].arrival_s = t[i];
    r[i].prompt_len = in(rng);
    r[i].output_len = out(rng);
  }
  return r;
}

std::vector<SimRequest> requests_with_lengths(const std::vector<std::pair<int32_t, int32_t>>& lengths, double rate,
                                              double burstiness, uint64_t seed) {
  const std::vector<double> t = bench::arrival_times(static_cast<int64_t>(lengths.size()), rate, burstiness, seed);
  std::vector<SimRequest> r(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    if (lengths[i].first < 1 || lengths[i].second < 1)
      PL_THROW("request " << i << ": lengths " << lengths[i].first << " / " << lengths[i].second << " must be >= 1");
    r[i] = {t[i], lengths[i].first, lengths[i].second};
  }
  return r;
}

std::vector<bench::RequestRecord> SimResult::records() const {
  std::vector<bench::RequestRecord> v;
  v.reserve(requests.size());
  for (const SimRequestResult& r : requests) v.push_back(r.record);
  return v;
}

SimResult simulate(const std::vector<SimRequest>& reqs, const SimConfig& cfg, const StepTimeFn& step_time) {
  if (cfg.kv_blocks < 1 || cfg.block_size < 1)
    PL_THROW("the KV pool needs blocks: " << cfg.kv_blocks << " blocks of " << cfg.block_size << " tokens");
  if (cfg.pp < 1) PL_THROW("pp must be at least 1, got " << cfg.pp);
  if (!(cfg.cores >= 0) || cfg.devices_per_stage < 1)
    PL_THROW("cores must be >= 0 and devices per stage >= 1, got " << cfg.cores << " and " << cfg.devices_per_stage);
  if (cfg.sched.max_num_seqs < 1) PL_THROW("max-num-seqs must be at least 1, got " << cfg.sched.max_num_seqs);
  if (cfg.sched.max_num_batched_tokens < 1)
    PL_THROW("max-num-batched-tokens must be at least 1, got " << cfg.sched.max_num_batched_tokens);
  if (!step_time) PL_THROW("simulate: no step-time function");
  const int pp = cfg.pp;
  const int64_t pool_tokens = static_cast<int64_t>(cfg.kv_blocks) * cfg.block_size;
  if (cfg.max_model_len < 0 || cfg.max_model_len > pool_tokens)
    PL_THROW("max-model-len " << cfg.max_model_len << " is outside [0, " << pool_tokens << "], the KV pool's tokens");
  const int64_t max_model_len = cfg.max_model_len > 0 ? cfg.max_model_len : pool_tokens;
  SchedulerConfig sched = cfg.sched;
  if (sched.watermark_blocks <= 0) sched.watermark_blocks = cfg.kv_blocks / 100;  // as ServingEngine

  const size_t n = reqs.size();
  SimResult res;
  res.requests.resize(n);
  res.stage_busy_s.assign(static_cast<size_t>(pp), 0.0);
  std::vector<Sequence> seqs(n);
  std::vector<Track> track(n);
  for (size_t i = 0; i < n; ++i) {
    const SimRequest& q = reqs[i];
    if (q.prompt_len < 1 || q.output_len < 1 || !std::isfinite(q.arrival_s))
      PL_THROW("request " << i << ": needs a prompt, at least one output token and a finite arrival time (got "
                          << q.prompt_len << ", " << q.output_len << ", " << q.arrival_s << ")");
    res.requests[i].arrival_s = q.arrival_s;
    res.requests[i].record.prompt_len = q.prompt_len;
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return reqs[a].arrival_s < reqs[b].arrival_s; });

  // Prefix caching off: every dummy prompt would hit every other.
  BlockPool pool(cfg.kv_blocks, cfg.block_size, false);
  std::deque<Sequence*> waiting;
  std::vector<Sequence*> running;
  std::deque<InFlight> in_flight;
  std::vector<double> stage_free(static_cast<size_t>(pp), 0.0), link_free(static_cast<size_t>(pp - 1), 0.0);
  std::vector<Sequence*> preempted;
  int64_t admit_counter = 0;
  size_t next = 0;
  double t = n > 0 ? reqs[order[0]].arrival_s : 0.0;
  const double t0 = t;
  double t_end = t0;

  // ServingEngine::drain_inbox: requests that have arrived join `waiting`.
  auto drain = [&] {
    for (; next < n && reqs[order[next]].arrival_s <= t; ++next) {
      const size_t i = order[next];
      const SimRequest& q = reqs[i];
      if (q.prompt_len >= max_model_len) {  // add_request refuses it
        res.requests[i].record.error = "the prompt leaves no room in max-model-len";
        continue;
      }
      Sequence& s = seqs[i];
      s.id = i;
      s.tokens.assign(static_cast<size_t>(q.prompt_len), 0);
      s.n_prompt = q.prompt_len;
      s.max_len = static_cast<int32_t>(std::min<int64_t>(max_model_len, int64_t{q.prompt_len} + q.output_len));
      s.t_arrival = q.arrival_s;
      waiting.push_back(&s);
    }
  };

  auto finish = [&](Sequence& s) {
    pool.release(s.blocks);
    s.blocks.clear();
    running.erase(std::find(running.begin(), running.end(), &s));
    s.state = SeqState::kFinished;
    Track& tr = track[s.id];
    SimRequestResult& r = res.requests[s.id];
    r.record.success = true;
    r.record.output_len = s.n_generated();
    r.record.ttft_s = tr.first_s - s.t_arrival;
    r.record.latency_s = tr.last_s - s.t_arrival;
    r.record.itl_s = std::move(tr.itl_s);
    r.queue_s = tr.admitted_s - s.t_arrival;
    r.n_preempted = s.n_preempted;
    t_end = std::max(t_end, tr.last_s);
    std::vector<int32_t>().swap(s.tokens);
  };

  // ServingEngine::launch: schedule one micro-batch and run it through the stages.
  auto launch = [&]() -> bool {
    preempted.clear();
    grow_running(running, waiting, pool, preempted);
    res.preemptions += static_cast<int64_t>(preempted.size());
    const size_t before = running.size();
    admit_waiting(waiting, running, pool, sched, admit_counter);
    for (size_t i = before; i < running.size(); ++i)
      if (track[running[i]->id].admitted_s < 0) track[running[i]->id].admitted_s = t;
    int32_t max_seqs = std::numeric_limits<int32_t>::max();
    if (pp > 1) {  // the ready sequences spread over the free micro-batch slots
      const int32_t ready = static_cast<int32_t>(
          std::count_if(running.begin(), running.end(), [](const Sequence* s) { return !s->in_flight; }));
      const int32_t slots = pp - static_cast<int32_t>(in_flight.size());
      max_seqs = std::max(1, (ready + slots - 1) / slots);
    }
    InFlight mb;
    mb.step = select_tokens(running, sched, max_seqs, pool.block_size());
    res.peak_kv_usage = std::max(res.peak_kv_usage, pool.usage());
    if (mb.step.empty()) return false;
    StepShape sh;
    for (const ScheduledSeq& it : mb.step) {
      const Sequence& s = *it.seq;
      const int64_t p0 = s.n_computed, k = it.n_tokens;
      const bool sampled = p0 + k == static_cast<int64_t>(s.tokens.size());
      mb.sampled.push_back(sampled);
      sh.add_seq(p0, k, s.n_generated() > 0 && s.n_pending() == 1, sampled);
    }
    commit_step(mb.step, pool);
    ++res.steps;
    StepCost c = step_time(sh);
    if (pp == 1 && c.stage_s.empty()) c.stage_s = {c.latency_s};
    PL_CHECK_MSG(static_cast<int>(c.stage_s.size()) == pp && static_cast<int>(c.send_s.size()) == pp - 1,
                 "the step function gave " << c.stage_s.size() << " stage and " << c.send_s.size()
                                           << " send times for pp=" << pp);
    if (cfg.cores > 0) {  // the stages busy at once share the cores
      const double busy = static_cast<double>(std::min<size_t>(in_flight.size() + 1, static_cast<size_t>(pp)));
      const double slow = std::max(1.0, cfg.devices_per_stage * busy / cfg.cores);
      // Compute slows; time waiting in TP collectives does not (ranks yield the core).
      for (size_t u = 0; u < c.stage_s.size(); ++u) {
        const double comm = u < c.tp_comm_s.size() ? std::min(c.tp_comm_s[u], c.stage_s[u]) : 0.0;
        c.stage_s[u] = (c.stage_s[u] - comm) * slow + comm;
      }
    }
    double at = t;  // the micro-batch reaches stage s at `at`
    for (int s = 0; s < pp; ++s) {
      const size_t u = static_cast<size_t>(s);
      PL_CHECK_MSG(c.stage_s[u] >= 0 && std::isfinite(c.stage_s[u]), "stage time " << c.stage_s[u]);
      const double start = std::max(at, stage_free[u]);
      const double end = start + c.stage_s[u];
      stage_free[u] = end;
      res.stage_busy_s[u] += c.stage_s[u];
      if (s == 0) t = end;  // rank 0 runs stage 0 itself
      if (s + 1 < pp) {
        PL_CHECK_MSG(c.send_s[u] >= 0 && std::isfinite(c.send_s[u]), "send time " << c.send_s[u]);
        const double sent = std::max(end, link_free[u]) + c.send_s[u];
        link_free[u] = sent;
        at = sent;
      } else {
        mb.done_s = end;
      }
    }
    in_flight.push_back(std::move(mb));
    return true;
  };

  // ServingEngine::complete: every item leaves flight; sampled ones get a token.
  auto complete = [&](const InFlight& mb) {
    for (size_t k = 0; k < mb.step.size(); ++k) {
      Sequence& s = *mb.step[k].seq;
      s.in_flight = false;
      if (!mb.sampled[k]) continue;
      s.tokens.push_back(0);
      Track& tr = track[s.id];
      if (tr.first_s < 0) tr.first_s = t;
      else tr.itl_s.push_back(t - tr.last_s);
      tr.last_s = t;
      if (static_cast<int64_t>(s.tokens.size()) >= s.max_len) finish(s);
    }
  };

  for (;;) {
    drain();
    while (static_cast<int>(in_flight.size()) < pp && launch()) {
    }
    if (!in_flight.empty()) {
      const InFlight mb = std::move(in_flight.front());
      in_flight.pop_front();
      t = std::max(t, mb.done_s);
      complete(mb);
      continue;
    }
    if (next < n) {  // idle until the next request
      t = std::max(t, reqs[order[next]].arrival_s);
      continue;
    }
    PL_CHECK_MSG(waiting.empty() && running.empty(),
                 "the simulation cannot progress: " << waiting.size() << " waiting, " << running.size()
                                                    << " running, " << pool.n_free() << " free blocks");
    break;
  }
  res.duration_s = t_end - t0;
  return res;
}

nlohmann::json summarize(const SimResult& r, const std::vector<double>& percentiles) {
  bench::MetricOptions opt;
  opt.metrics = {"ttft", "tpot", "itl", "e2el"};
  opt.percentiles = percentiles;
  nlohmann::json j = bench::compute_metrics(r.records(), r.duration_s, opt);
  nlohmann::json busy = nlohmann::json::array();
  for (double b : r.stage_busy_s) busy.push_back(r.duration_s > 0 ? b / r.duration_s : 0.0);
  j["stage_busy"] = busy;
  // bench sweep's keep-up rule (bench::keeps_up) over every request's arrival
  // and end; a refused request ends on arrival.
  std::vector<double> arrival, end;
  int64_t failed = 0, done = 0;
  double queue = 0;
  for (const SimRequestResult& q : r.requests) {
    arrival.push_back(q.arrival_s);
    end.push_back(q.arrival_s + (q.record.success ? q.record.latency_s : 0.0));
    if (!q.record.success) {
      ++failed;
      continue;
    }
    ++done;
    queue += q.queue_s;
  }
  const bench::KeepUp k = bench::keeps_up(arrival, end, failed);
  j["keeps_up"] = k.keeps_up;
  j["pace"] = k.pace;  // as bench sweep reports it: requests ended / arrived in the steady window
  j["mean_queue_ms"] = done == 0 ? 0.0 : 1e3 * queue / static_cast<double>(done);
  j["steps"] = r.steps;
  j["preemptions"] = r.preemptions;
  j["peak_kv_usage"] = r.peak_kv_usage;
  return j;
}

}  // namespace parallama::plan
