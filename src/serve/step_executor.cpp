#include "serve/step_executor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "core/clock.h"

namespace parallama {

void StepExecutor::apply(const StepPlan& plan) {
  for (uint64_t id : plan.released) {
    tables_.erase(id);
    samplers_.erase(id);
  }
  for (const PlanNewSeq& a : plan.added) {
    tables_[a.id].clear();
    if (samples_) {
      samplers_.erase(a.id);
      samplers_.emplace(a.id, SeqSampler{Sampler(a.sampling, engine_.config().n_vocab), a.prompt, a.logprobs});
    }
  }
  batch_.clear();
  const int32_t n_blocks = engine_.kv().shape().n_blocks;
  for (const PlanItem& it : plan.items) {
    auto t = tables_.find(it.id);
    if (t == tables_.end()) PL_THROW("step plan names unknown sequence " << it.id);
    std::vector<int32_t>& table = t->second;
    if (it.kept_blocks > static_cast<int32_t>(table.size()))
      PL_THROW("step plan keeps " << it.kept_blocks << " blocks of sequence " << it.id << ", which has "
                                  << table.size());
    table.resize(it.kept_blocks);
    for (int32_t b : it.new_blocks) {
      if (b < 0 || b >= n_blocks) PL_THROW("step plan names KV block " << b << " of " << n_blocks);
      table.push_back(b);
    }
    batch_.add_seq(it.tokens.data(), static_cast<int32_t>(it.tokens.size()), it.n_past, &table, it.want_logits);
  }
}

void StepExecutor::forward(StageIO& io) {
  const double t0 = now_seconds();
  if (engine_.parallel() && engine_.parallel()->world.pp > 1) engine_.forward_stage(batch_, io);
  else engine_.forward(batch_, io.logits);
  compute_s_ += now_seconds() - t0;
}

void StepExecutor::sample(const StepPlan& plan, const std::vector<float>& logits, std::vector<SampledToken>& tokens) {
  PL_CHECK_MSG(samples_, "this rank does not sample");
  tokens.clear();
  const int32_t V = engine_.config().n_vocab;
  size_t row = 0;
  for (const PlanItem& it : plan.items) {
    if (!it.want_logits) continue;
    auto s = samplers_.find(it.id);
    PL_CHECK_MSG(s != samplers_.end(), "no sampler for sequence " << it.id);
    PL_CHECK(logits.size() >= (row + 1) * V);
    const float* lg = logits.data() + row * V;
    SampledToken out;
    out.token = s->second.sampler.sample(lg, s->second.history);
    s->second.history.push_back(out.token);
    if (s->second.logprobs >= 0) {
      // log-softmax of the raw logits, in double for the normaliser.
      float mx = lg[0];
      for (int32_t v = 1; v < V; ++v) mx = std::max(mx, lg[v]);
      double sum = 0;
      for (int32_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(lg[v]) - mx);
      const double log_z = mx + std::log(sum);
      out.logprob = static_cast<float>(lg[out.token] - log_z);
      const int32_t k = std::min(s->second.logprobs, V);
      if (k > 0) {
        top_.resize(V);
        for (int32_t v = 0; v < V; ++v) top_[v] = {lg[v], v};
        // Highest logit first, lower id first on ties.
        auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
          return a.first > b.first || (a.first == b.first && a.second < b.second);
        };
        std::partial_sort(top_.begin(), top_.begin() + k, top_.end(), better);
        for (int32_t i = 0; i < k; ++i)
          out.top.push_back({top_[i].second, static_cast<float>(top_[i].first - log_z)});
      }
    }
    tokens.push_back(std::move(out));
    ++row;
  }
}

std::vector<uint8_t> StepExecutor::pack(const std::vector<SampledToken>& toks) {
  size_t bytes = 4;
  for (const SampledToken& t : toks) bytes += 12 + 8 * t.top.size();
  std::vector<uint8_t> b(bytes);
  size_t off = 0;
  auto put = [&b, &off](const void* p, size_t n) {  // sized up front: no growth (and no GCC 12 false warning)
    std::memcpy(b.data() + off, p, n);
    off += n;
  };
  const int32_t n = static_cast<int32_t>(toks.size());
  put(&n, 4);
  for (const SampledToken& t : toks) {
    const int32_t k = static_cast<int32_t>(t.top.size());
    put(&t.token, 4);
    put(&t.logprob, 4);
    put(&k, 4);
    for (const auto& [id, lp] : t.top) put(&id, 4), put(&lp, 4);
  }
  PL_CHECK(off == bytes);
  return b;
}

std::vector<SampledToken> StepExecutor::unpack(const uint8_t* data, size_t size) {
  size_t off = 0;
  auto get = [&](void* p, size_t n) {
    if (size - off < n) PL_THROW("sampled-token message truncated");
    std::memcpy(p, data + off, n);
    off += n;
  };
  int32_t n = 0;
  get(&n, 4);
  if (n < 0) PL_THROW("sampled-token message: bad count " << n);
  std::vector<SampledToken> out(n);
  for (SampledToken& t : out) {
    int32_t k = 0;
    get(&t.token, 4);
    get(&t.logprob, 4);
    get(&k, 4);
    if (k < 0 || k > kMaxTopLogprobs) PL_THROW("sampled-token message: bad top count " << k);
    t.top.resize(k);
    for (auto& [id, lp] : t.top) get(&id, 4), get(&lp, 4);
  }
  if (off != size) PL_THROW("sampled-token message: trailing bytes");
  return out;
}

}  // namespace parallama
