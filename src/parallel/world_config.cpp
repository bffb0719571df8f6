#include "parallel/world_config.h"

#include <algorithm>
#include <iomanip>
#include <numeric>
#include <sstream>
#include <tuple>

#include "core/check.h"

namespace parallama {

namespace {
std::string range_str(int begin, int end) {  // [begin, end) -> "b-e" (inclusive)
  if (end <= begin) return "-";
  if (end - begin == 1) return std::to_string(begin);
  return std::to_string(begin) + "-" + std::to_string(end - 1);
}

std::string list_str(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(v[i]);
  }
  return s;
}
}  // namespace

void validate_layout(int tp, int pp, int world_size, int n_heads, int n_layers,
                     const std::vector<int>& manual_layers, int n_kv_heads) {
  if (tp < 1) PL_THROW("tp=" << tp << " is invalid; use tp >= 1");
  if (pp < 1) PL_THROW("pp=" << pp << " is invalid; use pp >= 1");
  if (tp > n_heads)
    PL_THROW("tp=" << tp << " exceeds the " << n_heads << " query heads; use tp <= " << n_heads);
  if (n_kv_heads > 0 && n_heads % n_kv_heads != 0)
    PL_THROW("the model has " << n_heads << " query heads, not a multiple of its " << n_kv_heads
                              << " kv heads; tensor parallelism cannot split it (use tp=1)");
  if (pp > n_layers)
    PL_THROW("pp=" << pp << " exceeds the " << n_layers << " layers; use pp <= " << n_layers);
  if (!manual_layers.empty()) {
    if (static_cast<int>(manual_layers.size()) != pp)
      PL_THROW("the layer split " << list_str(manual_layers) << " has " << manual_layers.size()
                                  << " entries but pp=" << pp << "; give exactly " << pp
                                  << " layer counts");
    for (size_t i = 0; i < manual_layers.size(); ++i)
      if (manual_layers[i] < 1)
        PL_THROW("the layer split " << list_str(manual_layers) << " gives stage " << i << " "
                                    << manual_layers[i]
                                    << " layers; every stage needs at least 1 layer");
    long sum = std::accumulate(manual_layers.begin(), manual_layers.end(), 0L);
    if (sum != n_layers)
      PL_THROW("the layer split " << list_str(manual_layers) << " sums to " << sum
                                  << " but the model has " << n_layers
                                  << " layers; the counts must sum to " << n_layers);
  }
  if (world_size > 0 && world_size != tp * pp)
    PL_THROW("launched with " << world_size << " ranks but tp*pp = " << tp * pp
                              << "; run with mpirun -n " << tp * pp << " or change --tp/--pp");
}

WorldConfig::WorldConfig(int tp_, int pp_, int rank_, std::vector<int> stage_layers)
    : tp(tp_), pp(pp_), rank(rank_), stage_layers_(std::move(stage_layers)) {
  PL_CHECK_MSG(tp >= 1 && pp >= 1, "tp=" << tp << " pp=" << pp);
  PL_CHECK_MSG(rank >= 0 && rank < tp * pp, "rank " << rank << " outside world of " << tp * pp);
  PL_CHECK_MSG(stage_layers_.empty() || static_cast<int>(stage_layers_.size()) == pp,
               "stage_layers has " << stage_layers_.size() << " entries, pp=" << pp);
}

WorldConfig WorldConfig::create(int tp, int pp, int rank, int world_size, int n_heads,
                                int n_kv_heads, int n_layers,
                                const std::vector<int>& manual_layers) {
  validate_layout(tp, pp, world_size, n_heads, n_layers, manual_layers, n_kv_heads);
  return WorldConfig(tp, pp, rank, split_layers(n_layers, pp, manual_layers));
}

std::vector<int> WorldConfig::tp_group_ranks() const {
  std::vector<int> r(tp);
  for (int i = 0; i < tp; ++i) r[i] = world_rank_of(tp, pp_rank(), i);
  return r;
}

int WorldConfig::prev_stage_rank() const {
  return is_first_stage() ? -1 : world_rank_of(tp, pp_rank() - 1, tp_rank());
}

int WorldConfig::next_stage_rank() const {
  return is_last_stage() ? -1 : world_rank_of(tp, pp_rank() + 1, tp_rank());
}

std::pair<int, int> WorldConfig::layer_range(int stage) const {
  PL_CHECK_MSG(static_cast<int>(stage_layers_.size()) == pp,
               "layer split not set (use WorldConfig::create)");
  PL_CHECK_MSG(stage >= 0 && stage < pp, "stage " << stage << " of " << pp);
  int begin = 0;
  for (int s = 0; s < stage; ++s) begin += stage_layers_[s];
  return {begin, begin + stage_layers_[stage]};
}

std::vector<int> WorldConfig::split_layers(int n_layers, int pp, const std::vector<int>& manual) {
  if (pp < 1) PL_THROW("pp=" << pp << " is invalid; use pp >= 1");
  if (pp > n_layers)
    PL_THROW("pp=" << pp << " exceeds the " << n_layers << " layers; use pp <= " << n_layers);
  if (!manual.empty()) {
    validate_layout(1, pp, 0, 1, n_layers, manual);
    return manual;
  }
  std::vector<int> out(pp, n_layers / pp);
  for (int s = 0; s < n_layers % pp; ++s) ++out[s];
  return out;
}

std::pair<int, int> WorldConfig::head_range(int n_heads, int tp, int tp_rank) {
  PL_CHECK_MSG(tp >= 1 && tp <= n_heads, "tp=" << tp << " n_heads=" << n_heads);
  PL_CHECK_MSG(tp_rank >= 0 && tp_rank < tp, "tp_rank " << tp_rank << " of " << tp);
  const int base = n_heads / tp, extra = n_heads % tp;
  const int begin = tp_rank * base + std::min(tp_rank, extra);
  return {begin, begin + base + (tp_rank < extra ? 1 : 0)};
}

HeadShard WorldConfig::head_shard(int n_heads, int n_kv_heads, int tp, int tp_rank) {
  PL_CHECK_MSG(n_kv_heads >= 1 && n_heads % n_kv_heads == 0,
               "n_heads=" << n_heads << " n_kv_heads=" << n_kv_heads);
  HeadShard s;
  std::tie(s.q_begin, s.q_end) = head_range(n_heads, tp, tp_rank);
  s.group = n_heads / n_kv_heads;
  s.kv_begin = s.q_begin / s.group;
  s.kv_end = (s.q_end - 1) / s.group + 1;  // q range is never empty since tp <= n_heads
  return s;
}

std::string WorldConfig::to_table(const std::vector<std::string>& hostnames, int n_heads,
                                  int n_kv_heads) const {
  std::ostringstream os;
  size_t host_w = 4;
  for (const auto& h : hostnames) host_w = std::max(host_w, h.size());
  os << std::left << std::setw(5) << "rank" << "  " << std::setw(host_w) << "host" << "  "
     << std::setw(5) << "stage" << "  " << std::setw(7) << "tp rank" << "  " << std::setw(7)
     << "layers" << "  " << std::setw(7) << "heads" << "  " << "kv heads" << "\n";
  for (int r = 0; r < world_size(); ++r) {
    const WorldConfig w(tp, pp, r, stage_layers_);
    const auto [lb, le] = w.layer_range();
    const HeadShard hs = head_shard(n_heads, n_kv_heads, tp, w.tp_rank());
    const std::string host = r < static_cast<int>(hostnames.size()) ? hostnames[r] : "?";
    os << std::left << std::setw(5) << r << "  " << std::setw(host_w) << host << "  "
       << std::setw(5) << w.pp_rank() << "  " << std::setw(7) << w.tp_rank() << "  "
       << std::setw(7) << range_str(lb, le) << "  " << std::setw(7)
       << range_str(hs.q_begin, hs.q_end) << "  " << range_str(hs.kv_begin, hs.kv_end) << "\n";
  }
  return os.str();
}

}  // namespace parallama
