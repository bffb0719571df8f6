#include "serve/step_executor.h"

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
      samplers_.emplace(a.id, SeqSampler{Sampler(a.sampling, engine_.config().n_vocab), a.prompt});
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

void StepExecutor::sample(const StepPlan& plan, const std::vector<float>& logits, std::vector<int32_t>& tokens) {
  PL_CHECK_MSG(samples_, "this rank does not sample");
  tokens.clear();
  const int32_t V = engine_.config().n_vocab;
  size_t row = 0;
  for (const PlanItem& it : plan.items) {
    if (!it.want_logits) continue;
    auto s = samplers_.find(it.id);
    PL_CHECK_MSG(s != samplers_.end(), "no sampler for sequence " << it.id);
    PL_CHECK(logits.size() >= (row + 1) * V);
    const int32_t tok = s->second.sampler.sample(logits.data() + row * V, s->second.history);
    s->second.history.push_back(tok);
    tokens.push_back(tok);
    ++row;
  }
}

}  // namespace parallama
