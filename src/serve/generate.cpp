#include "serve/generate.h"

#include "core/check.h"
#include "core/clock.h"

namespace parallama {

std::vector<GenerateResult> generate(Engine& engine, const std::vector<Request>& reqs, const ServeConfig& cfg,
                                     GenerateStats* stats, const std::function<void(size_t, int32_t)>& on_token,
                                     ServeStats* serve_stats) {
  const double t0 = now_seconds();
  ServingEngine se(engine, cfg);
  std::vector<GenerateResult> res;
  double t_all_first = t0;
  int64_t first_tokens = 0;
  if (se.is_leader()) {
    res.resize(reqs.size());
    size_t n_started = 0;
    for (size_t i = 0; i < reqs.size(); ++i) {
      se.add_request(reqs[i], [&, i](const TokenEvent& ev) {
        if (ev.token >= 0) {
          res[i].tokens.push_back(ev.token);
          if (on_token) on_token(i, ev.token);
          if (ev.n_generated == 1 && ++n_started == reqs.size()) t_all_first = now_seconds();
        }
        if (ev.finish != FinishReason::kNone) res[i].finish_reason = finish_reason_name(ev.finish);
      });
      if (reqs[i].max_tokens == 0) ++n_started;
    }
    if (n_started == reqs.size()) t_all_first = now_seconds();
    while (se.step()) {
    }
    se.stop_workers();
    first_tokens = static_cast<int64_t>(n_started);
  } else {
    se.run();
  }
  const ServeStats ss = se.stats();
  if (serve_stats) *serve_stats = ss;
  if (stats) {
    const double t1 = now_seconds();
    stats->prompt_tokens += ss.prompt_tokens;
    stats->decode_tokens += std::max<int64_t>(0, ss.generated_tokens - first_tokens);
    stats->prompt_s += t_all_first - t0;
    stats->decode_s += t1 - t_all_first;
    stats->compute_s += ss.compute_s;
    stats->comm_s += ss.comm_s;
    stats->wall_s += t1 - t0;
  }
  return res;
}

}  // namespace parallama
