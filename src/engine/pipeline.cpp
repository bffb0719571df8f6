// Pipeline-parallel generation (pp > 1). Every rank runs this with the same
// requests. The first stage schedules: it splits the requests into up to pp
// micro-batches and keeps all of them in flight, so that while stage s works
// on micro-batch m, stage s-1 works on m+1. Activations travel stage to stage
// with a small header naming the sequences; the last stage samples and
// returns the tokens to the first stage, which then launches that
// micro-batch's next step. Only the first stage ends with results.
//
//   stage 0   [m0][m1]    [m0'][m1']    ...      (m' = next step of m)
//   stage 1       [m0][m1]    [m0'][m1']
//                   \--tokens-^
#include <chrono>
#include <deque>

#include "core/check.h"
#include "core/clock.h"
#include "engine/engine.h"
#include "parallel/communicator.h"

namespace parallama {

namespace {

constexpr int kTagHeader = 101;  // int32 count, then [count x (request, n_past, n_tokens)]
constexpr int kTagHidden = 102;  // [n_tokens, n_embd] f32
constexpr int kTagTokens = 103;  // [count] int32 sampled tokens, last stage -> first stage


struct SeqRef {
  int32_t req, n_past, n_tokens;
};

}  // namespace

std::vector<GenerateResult> Engine::generate_pipelined(
    const std::vector<GenerateRequest>& reqs, GenerateStats* stats,
    const std::function<void(size_t, int32_t)>& on_token) {
  const WorldConfig& w = par_->world;
  Communicator& pipe = *par_->pipe;
  const double t_start = now_seconds();
  const double comm0 = pipe.stats().seconds + (par_->tp ? par_->tp->stats().seconds : 0.0);
  const size_t n = reqs.size();
  const int32_t E = config().n_embd, V = config().n_vocab;
  std::vector<GenerateResult> res(n);

  // Every rank reserves the same blocks in the same order, so block tables agree
  // across stages without being sent.
  SequenceBlocks tables(kv_->allocator(), n);
  reserve_kv(reqs, tables);

  double compute = 0;
  StageIO io;
  Batch batch;
  auto forward = [&] {
    const double c0 = now_seconds();
    model_->forward(batch, *kv_, io, *pool_);
    compute += now_seconds() - c0;
  };
  auto send_down = [&](const std::vector<SeqRef>& seqs) {
    const int32_t count = static_cast<int32_t>(seqs.size());
    pipe.send(&count, sizeof(count), w.next_stage_rank(), kTagHeader);
    if (count == 0) return;
    pipe.send(seqs.data(), seqs.size() * sizeof(SeqRef), w.next_stage_rank(), kTagHeader);
    pipe.send(io.hidden.data(), io.hidden.size() * sizeof(float), w.next_stage_rank(), kTagHidden);
  };

  if (w.is_first_stage()) {
    std::vector<bool> live(n, false);
    std::vector<int32_t> n_past(n, 0), next(n, -1);
    size_t n_live = 0;
    for (size_t i = 0; i < n; ++i) {
      live[i] = reqs[i].max_tokens > 0;
      if (!live[i]) res[i].finish_reason = "length";
      n_live += live[i];
    }
    const int n_mb = static_cast<int>(std::max<size_t>(1, std::min<size_t>(w.pp, n_live)));
    std::vector<std::vector<int32_t>> members(n_mb);  // requests of each micro-batch
    {
      size_t k = 0;
      for (size_t i = 0; i < n; ++i)
        if (live[i]) members[k++ % n_mb].push_back(static_cast<int32_t>(i));
    }
    std::vector<std::vector<SeqRef>> sent(n_mb);
    std::deque<int> in_flight;
    auto launch = [&](int mb, bool prefill) {
      batch.clear();
      sent[mb].clear();
      for (int32_t i : members[mb]) {
        if (!live[i]) continue;
        if (prefill) {
          const auto& p = reqs[i].prompt;
          batch.add_seq(p.data(), static_cast<int32_t>(p.size()), 0, &tables[i]);
          sent[mb].push_back({i, 0, static_cast<int32_t>(p.size())});
          n_past[i] = static_cast<int32_t>(p.size());
          if (stats) stats->prompt_tokens += static_cast<int64_t>(p.size());
        } else {
          batch.add_seq(&next[i], 1, n_past[i], &tables[i]);
          sent[mb].push_back({i, n_past[i], 1});
          ++n_past[i];
        }
      }
      if (sent[mb].empty()) return;
      forward();
      send_down(sent[mb]);
      in_flight.push_back(mb);
    };
    const double t_prefill = now_seconds();
    for (int mb = 0; mb < n_mb; ++mb) launch(mb, true);
    size_t prefills_left = static_cast<size_t>(n_mb);
    double t_decode = t_prefill;
    std::vector<int32_t> toks;
    while (!in_flight.empty()) {
      const int mb = in_flight.front();
      in_flight.pop_front();
      toks.resize(sent[mb].size());
      pipe.recv(toks.data(), toks.size() * sizeof(int32_t),
                WorldConfig::world_rank_of(w.tp, w.pp - 1, w.tp_rank()), kTagTokens);
      for (size_t r = 0; r < toks.size(); ++r) {
        const int32_t i = sent[mb][r].req;
        const int32_t tok = toks[r];
        if (stats && sent[mb][r].n_tokens == 1 && prefills_left == 0) ++stats->decode_tokens;
        next[i] = tok;
        if (on_token) on_token(static_cast<size_t>(i), tok);
        live[i] = accept_token(reqs[i], res[i], tok);
      }
      if (prefills_left > 0 && --prefills_left == 0) t_decode = now_seconds();
      launch(mb, false);
    }
    batch.clear();
    send_down({});  // tells the next stages to stop
    if (stats) {
      stats->prompt_s += t_decode - t_prefill;
      stats->decode_s += now_seconds() - t_decode;
    }
  } else {
    // Later stages: serve micro-batches until the first stage says stop.
    std::vector<Sampler> samplers;
    std::vector<std::vector<int32_t>> history(n);
    for (size_t i = 0; i < n; ++i) {
      samplers.emplace_back(reqs[i].sampling, V);
      history[i] = reqs[i].prompt;
    }
    std::vector<SeqRef> seqs;
    std::vector<int32_t> zeros, toks;
    for (;;) {
      int32_t count = 0;
      pipe.recv(&count, sizeof(count), w.prev_stage_rank(), kTagHeader);
      if (count == 0) {
        if (!w.is_last_stage()) send_down({});
        break;
      }
      PL_CHECK_MSG(count > 0 && static_cast<size_t>(count) <= n, "bad pipeline header " << count);
      seqs.resize(count);
      pipe.recv(seqs.data(), seqs.size() * sizeof(SeqRef), w.prev_stage_rank(), kTagHeader);
      batch.clear();
      int64_t T = 0;
      for (const SeqRef& s : seqs) {
        PL_CHECK(s.req >= 0 && static_cast<size_t>(s.req) < n && s.n_tokens > 0);
        zeros.assign(s.n_tokens, 0);  // token ids are only read by the first stage
        batch.add_seq(zeros.data(), s.n_tokens, s.n_past, &tables[s.req]);
        T += s.n_tokens;
      }
      io.hidden.resize(static_cast<size_t>(T) * E);
      pipe.recv(io.hidden.data(), io.hidden.size() * sizeof(float), w.prev_stage_rank(), kTagHidden);
      forward();
      if (!w.is_last_stage()) {
        send_down(seqs);
        continue;
      }
      toks.resize(seqs.size());
      for (size_t r = 0; r < seqs.size(); ++r) {
        const int32_t i = seqs[r].req;
        toks[r] = samplers[i].sample(io.logits.data() + r * V, history[i]);
        history[i].push_back(toks[r]);
      }
      pipe.send(toks.data(), toks.size() * sizeof(int32_t),
                WorldConfig::world_rank_of(w.tp, 0, w.tp_rank()), kTagTokens);
    }
  }
  if (stats) {
    stats->compute_s += compute;
    stats->comm_s += pipe.stats().seconds + (par_->tp ? par_->tp->stats().seconds : 0.0) - comm0;
    stats->wall_s += now_seconds() - t_start;
  }
  return res;
}

}  // namespace parallama
