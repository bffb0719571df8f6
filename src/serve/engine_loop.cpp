#include "serve/engine_loop.h"

#include <algorithm>
#include <limits>
#include <chrono>

#include "core/check.h"
#include "core/clock.h"
#include "parallel/comm_watchdog.h"
#include "parallel/communicator.h"

namespace parallama {

namespace {

constexpr int kTagPlan = 111;    // uint64 size, then the serialized StepPlan
constexpr int kTagHidden = 112;  // [n_tokens, n_embd] f32, stage to stage
constexpr int kTagTokens = 113;  // uint64 size, then StepExecutor::pack bytes, last stage -> rank 0

bool samples_here(const Engine& e) {
  const ParallelSetup* par = e.parallel();
  if (!par) return true;
  const WorldConfig& w = par->world;
  return w.pp == 1 ? w.rank == 0 : (w.is_last_stage() && w.tp_rank() == 0);
}

}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
  }
  return "";
}

ServingEngine::ServingEngine(Engine& engine, const ServeConfig& cfg)
    : engine_(engine), cfg_(cfg), exec_(engine, samples_here(engine)) {
  if (const ParallelSetup* par = engine.parallel()) {
    leader_ = par->world.rank == 0;
    pp_ = par->world.pp;
    tp_ = par->world.tp;
  }
  const int32_t n_blocks = engine.kv().shape().n_blocks, bs = engine.kv().block_size();
  const int64_t pool_tokens = static_cast<int64_t>(n_blocks) * bs;
  if (cfg.max_model_len < 0) PL_THROW("max-model-len must be positive, got " << cfg.max_model_len);
  if (cfg.max_model_len > pool_tokens)
    PL_THROW("max-model-len " << cfg.max_model_len << " exceeds the KV pool's " << pool_tokens
                              << " tokens (" << n_blocks << " blocks of " << bs
                              << "): raise --kv-cache-memory or --kv-blocks, or lower --max-model-len");
  const int64_t trained = engine.config().n_ctx_train > 0 ? engine.config().n_ctx_train : pool_tokens;
  max_model_len_ = static_cast<int32_t>(cfg.max_model_len > 0 ? cfg.max_model_len : std::min(trained, pool_tokens));
  if (cfg.sched.max_num_seqs < 1) PL_THROW("max-num-seqs must be at least 1, got " << cfg.sched.max_num_seqs);
  if (cfg.sched.max_num_batched_tokens < 1)
    PL_THROW("max-num-batched-tokens must be at least 1, got " << cfg.sched.max_num_batched_tokens);
  if (cfg_.sched.watermark_blocks <= 0) cfg_.sched.watermark_blocks = n_blocks / 100;
  if (leader_) pool_ = std::make_unique<BlockPool>(n_blocks, bs, cfg.prefix_caching);
  comm0_ = comm_seconds();
  // Priors, generous (about 5x this engine's speed on a 2-core Zen 3 per byte of weights).
  const double bytes = static_cast<double>(engine.model().weight_bytes());
  step_times_.fixed_s = 2.5e-10 * bytes + 0.01;
  step_times_.per_token_s = 2e-11 * bytes + 1e-4;
  if (const ParallelSetup* par = engine.parallel(); par && par->watchdog) {
    // Across hosts a step may be bound by the network, which the compute prior
    // ignores: add a link of 10 MB/s (80 Mbit/s) for the bytes a token sends
    // there (two all-reduces of n_embd doubles per layer, ring: twice the
    // data; the stage-to-stage hidden state).
    const ModelConfig& mc = engine.config();
    double net = 0;
    if (tp_ > 1 && par->watchdog->spans_hosts(*par->tp)) net += 2.0 * 2 * mc.n_layer / pp_ * mc.n_embd * 8;
    if (pp_ > 1 && par->watchdog->spans_hosts(*par->pipe)) net += (pp_ - 1.0) * mc.n_embd * 4;
    step_times_.per_token_s += net / 1e7;
    step_times_.fixed_s += net / 1e7;
    par->watchdog->arm(true);
  }
}

ServingEngine::~ServingEngine() {
  if (const ParallelSetup* par = engine_.parallel(); par && par->watchdog) par->watchdog->arm(false);
}

void ServingEngine::StepTimes::observe(int64_t n_tokens, double seconds) {
  if (n_tokens < 64) {
    fixed_s = fixed_seen ? std::max(fixed_s, seconds) : seconds;
    fixed_seen = true;
  } else {
    const double per = seconds / static_cast<double>(n_tokens);
    per_token_s = per_token_seen ? std::max(per_token_s, per) : per;
    per_token_seen = true;
  }
}

void ServingEngine::forward_watched(int64_t tokens, int64_t tokens_ahead) {
  recent_steps_.push_back(tokens);
  while (static_cast<int>(recent_steps_.size()) > pp_ + 1) recent_steps_.pop_front();
  if (const ParallelSetup* par = engine_.parallel(); par && par->watchdog) {
    const int64_t largest = *std::max_element(recent_steps_.begin(), recent_steps_.end());
    const double per_stage = std::max(step_times_.estimate(tokens) + step_times_.estimate(tokens_ahead),
                                      step_times_.estimate(largest));
    // Margin 4: a link two stages share runs each at half speed once both are busy.
    par->watchdog->set_allowance(4.0 * pp_ * per_stage);
  }
  const double t0 = now_seconds();
  exec_.forward(io_);
  step_times_.observe(tokens, now_seconds() - t0);
}

uint64_t ServingEngine::add_request(Request req, TokenCallback on_token) {
  PL_CHECK_MSG(leader_, "requests are added on world rank 0");
  const int32_t V = engine_.config().n_vocab;
  if (req.prompt.empty()) PL_THROW("the prompt is empty");
  for (size_t i = 0; i < req.prompt.size(); ++i)
    if (req.prompt[i] < 0 || req.prompt[i] >= V)
      PL_THROW("prompt token " << i << " is " << req.prompt[i] << ", outside the vocabulary [0, " << V << ")");
  if (static_cast<int64_t>(req.prompt.size()) >= max_model_len_)
    PL_THROW("the prompt has " << req.prompt.size() << " tokens, but the context holds " << max_model_len_
                               << " (prompt and at least one generated token)");
  if (req.max_tokens < 0) PL_THROW("max_tokens must be >= 0, got " << req.max_tokens);
  for (int32_t t : req.stop_token_ids)
    if (t < 0 || t >= V) PL_THROW("stop token id " << t << " is outside the vocabulary [0, " << V << ")");
  if (req.logprobs < -1 || req.logprobs > kMaxTopLogprobs)
    PL_THROW("logprobs must be in [0, " << kMaxTopLogprobs << "], got " << req.logprobs);
  validate(req.sampling);
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  inbox_.push_back({id, false, std::move(req), std::move(on_token)});
  cv_.notify_all();
  return id;
}

void ServingEngine::abort(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  inbox_.push_back({id, true, {}, {}});
  cv_.notify_all();
}

void ServingEngine::request_stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = true;
  cv_.notify_all();
}

bool ServingEngine::has_work() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!inbox_.empty()) return true;
  }
  return !waiting_.empty() || !running_.empty() || !in_flight_.empty();
}

void ServingEngine::drain_inbox() {
  std::vector<Inbox> in;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in.swap(inbox_);
  }
  const double now = now_seconds();
  for (Inbox& m : in) {
    if (m.abort && m.id == 0) {  // abort_all()
      std::vector<uint64_t> ids;
      for (const auto& kv : seqs_) ids.push_back(kv.first);
      for (uint64_t id : ids) {
        Sequence& s = *seqs_.at(id);
        if (s.in_flight) s.abort_requested = true;
        else finish(s, FinishReason::kAbort);
      }
      continue;
    }
    if (m.abort) {
      auto it = seqs_.find(m.id);
      if (it == seqs_.end()) continue;
      if (it->second->in_flight) it->second->abort_requested = true;  // ends when its micro-batch returns
      else finish(*it->second, FinishReason::kAbort);
      continue;
    }
    auto s = std::make_unique<Sequence>();
    s->id = m.id;
    s->tokens = m.req.prompt;
    s->n_prompt = static_cast<int32_t>(m.req.prompt.size());
    s->max_len = static_cast<int32_t>(std::min<int64_t>(max_model_len_, int64_t(s->n_prompt) + m.req.max_tokens));
    s->req = std::move(m.req);
    s->on_token = std::move(m.cb);
    s->t_arrival = now;
    if (s->req.max_tokens == 0) {  // nothing to generate
      TokenEvent ev;
      ev.request_id = s->id;
      ev.finish = FinishReason::kLength;
      ev.n_prompt = s->n_prompt;
      if (s->on_token) s->on_token(ev);
      ++stats_.finished;
      continue;
    }
    waiting_.push_back(s.get());
    seqs_.emplace(s->id, std::move(s));
  }
}

void ServingEngine::finish(Sequence& s, FinishReason why) {
  if (s.state == SeqState::kRunning) {
    pool_->release(s.blocks);
    running_.erase(std::find(running_.begin(), running_.end(), &s));
  } else if (s.state == SeqState::kWaiting) {
    auto it = std::find(waiting_.begin(), waiting_.end(), &s);
    if (it != waiting_.end()) waiting_.erase(it);
  }
  s.blocks.clear();
  s.state = SeqState::kFinished;
  if (s.announced) pending_released_.push_back(s.id);
  if (why == FinishReason::kAbort) {
    ++stats_.aborted;
    TokenEvent ev;
    ev.request_id = s.id;
    ev.n_generated = s.n_generated();
    ev.finish = why;
    ev.n_prompt = s.n_prompt;
    ev.n_cached = std::max(0, s.n_cached_first);
    ev.queue_s = s.t_admitted > 0 ? s.t_admitted - s.t_arrival : now_seconds() - s.t_arrival;
    if (s.on_token) s.on_token(ev);
  } else {
    ++stats_.finished;
  }
  seqs_.erase(s.id);  // s is gone from here on
}

StepPlan ServingEngine::make_plan(const std::vector<ScheduledSeq>& step) {
  StepPlan p;
  p.step = step_counter_++;
  p.released.swap(pending_released_);
  for (const ScheduledSeq& it : step) {
    Sequence& s = *it.seq;
    if (!s.announced) {
      p.added.push_back({s.id, s.req.sampling, s.req.logprobs, s.req.prompt});
      s.announced = true;
    }
    PlanItem item;
    item.id = s.id;
    item.n_past = s.n_computed;
    item.want_logits = s.n_computed + it.n_tokens == static_cast<int32_t>(s.tokens.size());
    item.kept_blocks = s.synced_blocks;
    item.new_blocks.assign(s.blocks.begin() + s.synced_blocks, s.blocks.end());
    s.synced_blocks = static_cast<int32_t>(s.blocks.size());
    item.tokens.assign(s.tokens.begin() + s.n_computed, s.tokens.begin() + s.n_computed + it.n_tokens);
    p.items.push_back(std::move(item));
  }
  return p;
}

void ServingEngine::send_plan(const std::vector<uint8_t>& bytes, int to) {
  const uint64_t n = bytes.size();
  engine_.parallel()->pipe->send(&n, sizeof(n), to, kTagPlan);
  engine_.parallel()->pipe->send(bytes.data(), bytes.size(), to, kTagPlan);
}

std::vector<uint8_t> ServingEngine::recv_plan(int from) {
  uint64_t n = 0;
  engine_.parallel()->pipe->recv(&n, sizeof(n), from, kTagPlan);
  PL_CHECK_MSG(n > 0 && n < (uint64_t(1) << 32), "bad step plan size " << n);
  std::vector<uint8_t> bytes(n);
  engine_.parallel()->pipe->recv(bytes.data(), n, from, kTagPlan);
  return bytes;
}

namespace {
// Stage 0's TP group learns the plan from rank 0 by broadcast.
void broadcast_plan(Communicator& tp, std::vector<uint8_t>& bytes) {
  uint64_t n = bytes.size();
  tp.broadcast(&n, sizeof(n), 0);
  bytes.resize(n);
  tp.broadcast(bytes.data(), n, 0);
}
}  // namespace

bool ServingEngine::launch() {
  std::vector<Sequence*> preempted;
  grow_running(running_, waiting_, *pool_, preempted);
  for (Sequence* s : preempted) s->synced_blocks = 0;  // the other ranks' tables restart too
  stats_.preemptions += static_cast<int64_t>(preempted.size());
  const size_t before = running_.size();
  admit_waiting(waiting_, running_, *pool_, cfg_.sched, admit_counter_);
  for (size_t i = before; i < running_.size(); ++i) {
    const Sequence& s = *running_[i];
    if (s.n_preempted > 0) continue;
    running_[i]->t_admitted = now_seconds();
    stats_.prompt_tokens += s.n_prompt;
    stats_.cached_prompt_tokens += s.n_cached_first;
  }
  int32_t max_seqs = std::numeric_limits<int32_t>::max();
  if (pp_ > 1) {  // balance the sequences over the micro-batch slots still open
    const int32_t ready = static_cast<int32_t>(
        std::count_if(running_.begin(), running_.end(), [](const Sequence* s) { return !s->in_flight; }));
    const int32_t slots = pp_ - static_cast<int32_t>(in_flight_.size());
    max_seqs = std::max(1, (ready + slots - 1) / slots);
  }
  std::vector<ScheduledSeq> step = select_tokens(running_, cfg_.sched, max_seqs, pool_->block_size());
  stats_.kv_usage = pool_->usage();
  stats_.peak_kv_usage = std::max(stats_.peak_kv_usage, stats_.kv_usage);
  if (step.empty()) return false;
  StepPlan plan = make_plan(step);
  commit_step(step, *pool_);
  ++stats_.steps;
  for (const ScheduledSeq& it : step) stats_.computed_tokens += it.n_tokens;

  std::vector<uint8_t> bytes;
  const ParallelSetup* par = engine_.parallel();
  if (par && par->world.world_size() > 1) bytes = plan.serialize();
  if (tp_ > 1) broadcast_plan(*par->tp, bytes);
  exec_.apply(plan);
  int64_t n_tokens = 0, ahead = 0;
  for (const ScheduledSeq& it : step) n_tokens += it.n_tokens;
  for (const InFlight& mb : in_flight_) ahead += mb.tokens;
  forward_watched(n_tokens, ahead);
  if (pp_ == 1) {
    exec_.sample(plan, io_.logits, tokens_);
    InFlight mb{std::move(plan), std::move(step), n_tokens};
    complete(mb, tokens_);
    return true;
  }
  const int next = par->world.next_stage_rank();
  send_plan(bytes, next);
  par->pipe->send(io_.hidden.data(), io_.hidden.size() * sizeof(float), next, kTagHidden);
  in_flight_.push_back({std::move(plan), std::move(step), n_tokens});
  return true;
}

void ServingEngine::complete(InFlight& mb, const std::vector<SampledToken>& tokens) {
  const Tokenizer& tok = engine_.tokenizer();
  size_t k = 0;
  for (size_t i = 0; i < mb.step.size(); ++i) {
    Sequence& s = *mb.step[i].seq;
    s.in_flight = false;
    const bool sampled = mb.plan.items[i].want_logits;
    const SampledToken* st = sampled ? &tokens.at(k++) : nullptr;
    const int32_t t = st ? st->token : -1;
    if (s.abort_requested) {
      finish(s, FinishReason::kAbort);
      continue;
    }
    if (!sampled) continue;
    s.tokens.push_back(t);
    ++stats_.generated_tokens;
    FinishReason why = FinishReason::kNone;
    if ((!s.req.ignore_eos && tok.is_eog(t)) ||
        std::find(s.req.stop_token_ids.begin(), s.req.stop_token_ids.end(), t) != s.req.stop_token_ids.end())
      why = FinishReason::kStop;
    else if (static_cast<int32_t>(s.tokens.size()) >= s.max_len)
      why = FinishReason::kLength;
    TokenEvent ev;
    ev.request_id = s.id;
    ev.token = t;
    ev.logprob = st->logprob;
    ev.top_logprobs = st->top;
    ev.n_generated = s.n_generated();
    ev.finish = why;
    ev.n_prompt = s.n_prompt;
    ev.n_cached = std::max(0, s.n_cached_first);
    ev.queue_s = s.t_admitted - s.t_arrival;
    if (s.on_token) s.on_token(ev);
    if (why != FinishReason::kNone) finish(s, why);
  }
}

bool ServingEngine::step() {
  PL_CHECK_MSG(leader_, "step() runs on world rank 0");
  drain_inbox();
  if (pp_ == 1) {
    launch();
    if (observer_) observer_(stats());
    return has_work();
  }
  while (static_cast<int>(in_flight_.size()) < pp_ && launch()) {
  }
  if (!in_flight_.empty()) {
    const WorldConfig& w = engine_.parallel()->world;
    const int last = WorldConfig::world_rank_of(w.tp, w.pp - 1, 0);
    uint64_t size = 0;
    engine_.parallel()->pipe->recv(&size, sizeof(size), last, kTagTokens);
    PL_CHECK_MSG(size >= 4 && size < (uint64_t(1) << 30), "bad sampled-token message size " << size);
    std::vector<uint8_t> bytes(size);
    engine_.parallel()->pipe->recv(bytes.data(), size, last, kTagTokens);
    tokens_ = StepExecutor::unpack(bytes.data(), size);
    PL_CHECK_MSG(static_cast<int32_t>(tokens_.size()) == in_flight_.front().plan.n_outputs(),
                 "last stage returned " << tokens_.size() << " tokens for " << in_flight_.front().plan.n_outputs());
    InFlight mb = std::move(in_flight_.front());
    in_flight_.pop_front();
    complete(mb, tokens_);
  }
  if (observer_) observer_(stats());
  return has_work();
}

void ServingEngine::stop_workers() {
  if (!leader_ || workers_stopped_) return;
  workers_stopped_ = true;
  const ParallelSetup* par = engine_.parallel();
  if (!par || par->world.world_size() == 1) return;
  while (!in_flight_.empty()) step();  // every micro-batch comes back first
  send_control_plan(true);
}

void ServingEngine::send_control_plan(bool shutdown) {
  const ParallelSetup* par = engine_.parallel();
  StepPlan p;
  p.step = step_counter_++;
  p.shutdown = shutdown;
  p.heartbeat = !shutdown;
  std::vector<uint8_t> bytes = p.serialize();
  if (tp_ > 1) broadcast_plan(*par->tp, bytes);
  if (pp_ > 1) send_plan(bytes, par->world.next_stage_rank());
}

void ServingEngine::run() {
  if (!leader_) {
    worker_loop();
    return;
  }
  // With a watchdog the other ranks time their wait for the next plan: an
  // idle rank 0 sends a heartbeat plan twice per timeout.
  const ParallelSetup* par = engine_.parallel();
  const bool beats = par && par->watchdog && par->world.world_size() > 1;
  const auto beat_every = std::chrono::duration<double>(beats ? par->watchdog->timeout() / 2 : 3600.0);
  for (;;) {
    bool idle = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      idle = !cv_.wait_for(lock, beat_every, [&] {
        return stop_ || !inbox_.empty() || !waiting_.empty() || !running_.empty() || !in_flight_.empty();
      });
      if (stop_ && inbox_.empty() && waiting_.empty() && running_.empty() && in_flight_.empty()) break;
    }
    if (idle) {
      if (beats) send_control_plan(false);
      continue;
    }
    step();
  }
  stop_workers();
}

void ServingEngine::worker_loop() {
  const ParallelSetup& par = *engine_.parallel();
  const WorldConfig& w = par.world;
  const int64_t E = engine_.config().n_embd;
  for (;;) {
    std::vector<uint8_t> bytes;
    // The next plan comes within a heartbeat, or after the stages before this
    // one have run the largest step there can be.
    if (par.watchdog)
      par.watchdog->set_allowance(4.0 * pp_ * step_times_.estimate(cfg_.sched.max_num_batched_tokens));
    if (w.is_first_stage()) broadcast_plan(*par.tp, bytes);
    else bytes = recv_plan(w.prev_stage_rank());
    const StepPlan plan = StepPlan::deserialize(bytes.data(), bytes.size());
    if (plan.shutdown || plan.heartbeat) {
      if (!w.is_last_stage()) send_plan(bytes, w.next_stage_rank());
      if (plan.shutdown) return;
      continue;
    }
    exec_.apply(plan);
    if (!w.is_first_stage()) {
      io_.hidden.resize(static_cast<size_t>(exec_.batch().n_tokens()) * E);
      par.pipe->recv(io_.hidden.data(), io_.hidden.size() * sizeof(float), w.prev_stage_rank(), kTagHidden);
    }
    forward_watched(exec_.batch().n_tokens(), 0);
    if (!w.is_last_stage()) {
      send_plan(bytes, w.next_stage_rank());
      par.pipe->send(io_.hidden.data(), io_.hidden.size() * sizeof(float), w.next_stage_rank(), kTagHidden);
    } else if (pp_ > 1 && w.tp_rank() == 0) {
      exec_.sample(plan, io_.logits, tokens_);
      const std::vector<uint8_t> bytes = StepExecutor::pack(tokens_);
      const uint64_t size = bytes.size();
      par.pipe->send(&size, sizeof(size), 0, kTagTokens);
      par.pipe->send(bytes.data(), bytes.size(), 0, kTagTokens);
    }
  }
}

double ServingEngine::comm_seconds() const {
  const ParallelSetup* par = engine_.parallel();
  double s = engine_.tp_comm_seconds();
  if (par && par->pipe && par->world.pp > 1) s += par->pipe->stats().seconds;
  return s;
}

ServeStats ServingEngine::stats() const {
  ServeStats s = stats_;
  s.running = static_cast<int32_t>(running_.size());
  s.waiting = static_cast<int32_t>(waiting_.size());
  if (pool_) {
    s.prefix = pool_->prefix_stats();
    s.kv_usage = pool_->usage();
  }
  s.compute_s = exec_.compute_seconds();
  s.comm_s = comm_seconds() - comm0_;
  return s;
}

}  // namespace parallama
