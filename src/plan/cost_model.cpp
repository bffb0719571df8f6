#include "plan/cost_model.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <numeric>
#include <sstream>

#include "core/check.h"
#include "parallel/world_config.h"

namespace parallama::plan {

using nlohmann::json;

namespace {

// Reads `key` into `out` when present: a number, positive or (allow_zero) >= 0.
void read_number(const json& j, const char* key, double& out, bool allow_zero, const char* what) {
  const auto it = j.find(key);
  if (it == j.end()) return;
  if (!it->is_number()) PL_THROW(what << ": '" << key << "' must be a number");
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < 0 || (!allow_zero && v == 0))
    PL_THROW(what << ": '" << key << "' must be " << (allow_zero ? ">= 0" : "> 0") << ", got " << v);
  out = v;
}

void read_string(const json& j, const char* key, std::string& out, const char* what) {
  const auto it = j.find(key);
  if (it == j.end()) return;
  if (!it->is_string()) PL_THROW(what << ": '" << key << "' must be a string");
  out = it->get<std::string>();
}

void only_keys(const json& j, std::initializer_list<const char*> keys, const char* what) {
  if (!j.is_object()) PL_THROW(what << ": expected a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (std::none_of(keys.begin(), keys.end(), [&](const char* x) { return k == x; })) {
      std::string known;
      for (const char* x : keys) known += (known.empty() ? "" : ", ") + std::string(x);
      PL_THROW(what << ": unknown key '" << k << "' (known: " << known << ")");
    }
  }
}

std::string gib(double bytes) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << bytes / double(1 << 30) << " GiB";
  return os.str();
}

}  // namespace

void to_json(json& j, const Device& d) {
  j = {{"name", d.name}, {"mem_bw_Bps", d.mem_bw_Bps}, {"peak_flops", d.peak_flops}, {"mem_bytes", d.mem_bytes}};
}
void from_json(const json& j, Device& d) {
  only_keys(j, {"name", "mem_bw_Bps", "peak_flops", "mem_bytes"}, "device");
  read_string(j, "name", d.name, "device");
  read_number(j, "mem_bw_Bps", d.mem_bw_Bps, false, "device");
  read_number(j, "peak_flops", d.peak_flops, false, "device");
  read_number(j, "mem_bytes", d.mem_bytes, false, "device");
}

void to_json(json& j, const Link& l) {
  j = {{"name", l.name}, {"bw_Bps", l.bw_Bps}, {"latency_s", l.latency_s}};
}
void from_json(const json& j, Link& l) {
  only_keys(j, {"name", "bw_Bps", "latency_s"}, "link");
  read_string(j, "name", l.name, "link");
  read_number(j, "bw_Bps", l.bw_Bps, false, "link");
  read_number(j, "latency_s", l.latency_s, true, "link");
}

void to_json(json& j, const Efficiency& e) {
  j = {{"mem", e.mem},
       {"flops", e.flops},
       {"attn", e.attn},
       {"comm", e.comm},
       {"step_overhead_s", e.step_overhead_s},
       {"per_layer_overhead_s", e.per_layer_overhead_s},
       {"token_overhead_s", e.token_overhead_s},
       {"act_bytes", e.act_bytes},
       {"kv_bytes", e.kv_bytes},
       {"mem_util", e.mem_util}};
  if (!e.flops_curve.empty()) {
    j["flops_curve"] = json::array();
    for (auto [n, f] : e.flops_curve) j["flops_curve"].push_back({n, f});
  }
}
void from_json(const json& j, Efficiency& e) {
  const char* w = "efficiency";
  only_keys(j,
            {"mem", "flops", "attn", "flops_curve", "comm", "step_overhead_s", "per_layer_overhead_s", "token_overhead_s", "act_bytes",
             "kv_bytes", "mem_util"},
            w);
  read_number(j, "mem", e.mem, false, w);
  read_number(j, "flops", e.flops, false, w);
  read_number(j, "comm", e.comm, false, w);
  read_number(j, "step_overhead_s", e.step_overhead_s, true, w);
  read_number(j, "per_layer_overhead_s", e.per_layer_overhead_s, true, w);
  read_number(j, "token_overhead_s", e.token_overhead_s, true, w);
  read_number(j, "act_bytes", e.act_bytes, false, w);
  read_number(j, "kv_bytes", e.kv_bytes, false, w);
  read_number(j, "mem_util", e.mem_util, false, w);
  read_number(j, "attn", e.attn, true, w);
  if (j.contains("flops_curve")) {
    const json& c = j["flops_curve"];
    e.flops_curve.clear();
    if (!c.is_array()) PL_THROW(w << ": 'flops_curve' must be a list of [tokens, fraction] pairs");
    for (const json& p : c) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_number() || !p[1].is_number() || !(p[0].get<double>() >= 1) ||
          !(p[1].get<double>() > 0))
        PL_THROW(w << ": 'flops_curve' entries must be [tokens >= 1, fraction > 0], got " << p.dump());
      if (!e.flops_curve.empty() && p[0].get<double>() <= e.flops_curve.back().first)
        PL_THROW(w << ": 'flops_curve' tokens must increase");
      e.flops_curve.emplace_back(p[0].get<double>(), p[1].get<double>());
    }
  }
  if (e.mem_util > 1) PL_THROW(w << ": 'mem_util' must be at most 1, got " << e.mem_util);
}

void to_json(json& j, const Hardware& h) {
  j = {{"device", h.dev},     {"devices_per_node", h.devices_per_node}, {"nodes", h.nodes},
       {"intra", h.intra},    {"inter", h.inter},                       {"efficiency", h.eff}};
}
void from_json(const json& j, Hardware& h) {
  // "notes": free text for a profile's provenance (what was measured, when).
  only_keys(j, {"device", "devices_per_node", "nodes", "intra", "inter", "efficiency", "notes"}, "hardware");
  if (j.contains("device")) from_json(j["device"], h.dev);
  if (j.contains("intra")) from_json(j["intra"], h.intra);
  if (j.contains("inter")) from_json(j["inter"], h.inter);
  if (j.contains("efficiency")) from_json(j["efficiency"], h.eff);
  for (const char* key : {"devices_per_node", "nodes"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < 1 || j[key].get<int64_t>() > (1 << 20))
      PL_THROW("hardware: '" << key << "' must be a positive integer");
    (std::string(key) == "nodes" ? h.nodes : h.devices_per_node) = j[key].get<int>();
  }
}

Device device_of(const AcceleratorSpec& a) {
  return {a.name, a.mem_bw_GBps * 1e9, a.bf16_tflops * 1e12, a.memory_GiB * double(1LL << 30)};
}

Link link_of(const LinkSpec& l) { return {l.name, l.bw_GBps * 1e9, l.latency_us * 1e-6}; }

Hardware make_hardware(const Catalog& cat, const std::string& accelerator, int devices_per_node, int nodes,
                       const std::string& intra_link, const std::string& inter_link) {
  if (devices_per_node < 1) PL_THROW("devices per node must be at least 1, got " << devices_per_node);
  if (nodes < 1) PL_THROW("nodes must be at least 1, got " << nodes);
  Hardware h;
  h.dev = device_of(cat.accelerator(accelerator));
  h.devices_per_node = devices_per_node;
  h.nodes = nodes;
  h.intra = link_of(cat.link(intra_link));
  h.inter = link_of(cat.link(inter_link));
  return h;
}

StepCost uniform_step_cost(int pp, double stage_s, double send_s) {
  PL_CHECK(pp >= 1);
  StepCost c;
  c.stage_s.assign(static_cast<size_t>(pp), stage_s);
  c.send_s.assign(static_cast<size_t>(pp - 1), send_s);
  c.tp_comm_s.assign(static_cast<size_t>(pp), 0.0);
  c.latency_s = pp * stage_s + (pp - 1) * send_s;
  c.bottleneck_s = pp > 1 ? std::max(stage_s, send_s) : stage_s;
  return c;
}

double ring_allreduce_s(double bytes, int p, const Link& link, const Efficiency& eff) {
  if (p <= 1) return 0;
  const double steps = 2.0 * (p - 1);
  return steps / p * bytes / (link.bw_Bps * eff.comm) + steps * link.latency_s;
}

double ring_allgather_s(double bytes, int p, const Link& link, const Efficiency& eff) {
  if (p <= 1) return 0;
  const double steps = p - 1.0;
  return steps / p * bytes / (link.bw_Bps * eff.comm) + steps * link.latency_s;
}

double p2p_send_s(double bytes, const Link& link, const Efficiency& eff) {
  return link.latency_s + bytes / (link.bw_Bps * eff.comm);
}

double op_time_s(double bytes, double flops, const Device& dev, double mem_frac, double flops_frac) {
  return std::max(bytes / (dev.mem_bw_Bps * mem_frac), flops / (dev.peak_flops * flops_frac));
}

double op_time_s(double bytes, double flops, const Device& dev, const Efficiency& eff) {
  return op_time_s(bytes, flops, dev, eff.mem, eff.flops);
}

double Efficiency::flops_at(double tokens) const {
  if (flops_curve.empty()) return flops;
  if (tokens <= flops_curve.front().first) return flops_curve.front().second;
  if (tokens >= flops_curve.back().first) return flops_curve.back().second;
  size_t i = 1;
  while (flops_curve[i].first < tokens) ++i;
  const auto [n0, f0] = flops_curve[i - 1];
  const auto [n1, f1] = flops_curve[i];
  const double t = std::log(tokens / n0) / std::log(n1 / n0);
  return f0 + t * (f1 - f0);
}

double kv_bytes_per_token(const ModelShape& m, double kv_bytes) {
  return 2.0 * static_cast<double>(m.n_layers) * static_cast<double>(m.n_kv_heads) * static_cast<double>(m.head_dim) *
         kv_bytes;
}

double pipeline_bubble_fraction(int pp, int64_t n_microbatches) {
  PL_CHECK_MSG(pp >= 1 && n_microbatches >= 1, "pp " << pp << ", micro-batches " << n_microbatches);
  return (pp - 1.0) / (static_cast<double>(n_microbatches) + pp - 1.0);
}

std::vector<int64_t> split_layers(int64_t n_layers, int pp) {
  if (n_layers < 1 || n_layers > std::numeric_limits<int>::max()) PL_THROW("a model needs layers, got " << n_layers);
  const std::vector<int> s = WorldConfig::split_layers(static_cast<int>(n_layers), pp);
  return {s.begin(), s.end()};
}

CostModel::CostModel(ModelShape shape, Layout layout, Hardware hw)
    : shape_(std::move(shape)), layout_(std::move(layout)), hw_(std::move(hw)) {
  const int tp = layout_.tp, pp = layout_.pp;
  if (tp < 1 || pp < 1) PL_THROW("tp=" << tp << ", pp=" << pp << ": both must be at least 1");
  if (static_cast<int64_t>(tp) * pp > hw_.n_devices())
    PL_THROW("tp=" << tp << " x pp=" << pp << " = " << tp * pp << " devices, but the hardware has "
                   << hw_.n_devices() << " (" << hw_.nodes << " node(s) of " << hw_.devices_per_node << ")");
  if (!(hw_.dev.mem_bw_Bps > 0 && hw_.dev.peak_flops > 0))
    PL_THROW("device '" << hw_.dev.name << "' has no bandwidth or flops");
  const ModelShape& m = shape_;
  for (int64_t d : {m.n_layers, m.n_embd, m.n_heads, m.n_kv_heads, m.head_dim, m.n_ff, m.n_vocab})
    if (d < 1 || d > std::numeric_limits<int>::max())
      PL_THROW("model '" << m.name << "' has a dimension out of range (" << d << ")");
  const int L = static_cast<int>(shape_.n_layers);
  const int H = static_cast<int>(shape_.n_heads), KV = static_cast<int>(shape_.n_kv_heads);
  std::vector<int> manual(layout_.stage_layers.begin(), layout_.stage_layers.end());
  // The engine's own checks and split (src/parallel/world_config.h).
  validate_layout(tp, pp, tp * pp, H, L, manual, KV);
  const std::vector<int> split = WorldConfig::split_layers(L, pp, manual);
  layout_.stage_layers.assign(split.begin(), split.end());
  for (int r = 0; r < tp; ++r) {  // the slowest rank: the most heads
    const HeadShard h = WorldConfig::head_shard(H, KV, tp, r);
    heads_ = std::max<int64_t>(heads_, h.n_q());
    kv_heads_ = std::max<int64_t>(kv_heads_, h.n_kv());
  }
  layer_params_ = static_cast<double>(shape_.layer_params());
  const int dpn = hw_.devices_per_node;
  const int nodes = hw_.nodes;
  const bool rr = layout_.map_by_node;
  auto node = [dpn, nodes, rr](int rank) { return rr ? rank % nodes : rank / dpn; };
  int64_t first = 0;
  for (int s = 0; s < pp; ++s) {
    Stage st;
    st.first_layer = first;
    st.n_layers = layout_.stage_layers[static_cast<size_t>(s)];
    for (int64_t i = first; i < first + st.n_layers; ++i)
      st.layer_bytes += static_cast<double>(shape_.bytes_of_layer(i));
    st.tp_inter = node(s * tp) != node(s * tp + tp - 1);
    first += st.n_layers;
    stages_.push_back(st);
  }
  for (int s = 0; s + 1 < pp; ++s) {
    bool inter = false;
    for (int r = 0; r < tp; ++r) inter = inter || node(s * tp + r) != node((s + 1) * tp + r);
    send_inter_.push_back(inter);
  }
}

const Link& CostModel::tp_link(int stage) const {
  PL_CHECK(stage >= 0 && stage < layout_.pp);
  return stages_[static_cast<size_t>(stage)].tp_inter ? hw_.inter : hw_.intra;
}

const Link& CostModel::send_link(int boundary) const {
  PL_CHECK(boundary >= 0 && boundary + 1 < layout_.pp);
  return send_inter_[static_cast<size_t>(boundary)] ? hw_.inter : hw_.intra;
}

StepCost CostModel::step(const StepShape& s) const {
  const Efficiency& e = hw_.eff;
  const Device& d = hw_.dev;
  const int tp = layout_.tp, pp = layout_.pp;
  const double n = static_cast<double>(s.n_tokens());
  const double hd = static_cast<double>(shape_.head_dim);
  const double act = n * static_cast<double>(shape_.n_embd) * e.act_bytes;  // one hidden state, bytes
  StepCost c;
  c.stage_s.resize(static_cast<size_t>(pp));
  c.tp_comm_s.resize(static_cast<size_t>(pp));
  for (int i = 0; i < pp; ++i) {
    const Stage& st = stages_[static_cast<size_t>(i)];
    const double L = static_cast<double>(st.n_layers);
    double t = 0;
    if (n > 0) {
      const double fn = e.flops_at(n);
      t += op_time_s(st.layer_bytes / tp, 2.0 * layer_params_ / tp * n * L, d, e.mem, fn);
      const double kv = L * static_cast<double>(s.kv_tokens_read) * 2.0 * kv_heads_ * hd * e.kv_bytes;
      const double attn = L * 4.0 * static_cast<double>(s.attn_pairs) * heads_ * hd;
      t += op_time_s(kv, attn, d, e.attn_mem(), fn);
      if (i == pp - 1 && s.logits() > 0) {
        const double nl = static_cast<double>(s.logits());
        t += op_time_s(static_cast<double>(shape_.head_bytes) / tp, 2.0 * shape_.head_params() / tp * nl, d, e.mem,
                       e.flops_at(nl));
        // The vocab-parallel head's f32 logits, gathered on every rank.
        t += ring_allgather_s(nl * static_cast<double>(shape_.n_vocab) * 4.0, tp, tp_link(i), e);
      }
      c.tp_comm_s[static_cast<size_t>(i)] = 2.0 * L * ring_allreduce_s(act, tp, tp_link(i), e);
      t += c.tp_comm_s[static_cast<size_t>(i)];
    }
    t += e.step_overhead_s + e.per_layer_overhead_s * L;
    if (i == 0) t += e.token_overhead_s * static_cast<double>(s.logits());
    c.stage_s[static_cast<size_t>(i)] = t;
  }
  for (int b = 0; b + 1 < pp; ++b) c.send_s.push_back(n > 0 ? p2p_send_s(act, send_link(b), e) : 0.0);
  c.latency_s = std::accumulate(c.stage_s.begin(), c.stage_s.end(), 0.0) +
                std::accumulate(c.send_s.begin(), c.send_s.end(), 0.0);
  c.bottleneck_s = *std::max_element(c.stage_s.begin(), c.stage_s.end());
  for (double x : c.send_s) c.bottleneck_s = std::max(c.bottleneck_s, x);
  return c;
}

MemoryFit CostModel::memory_fit(int64_t max_num_batched_tokens, int64_t max_num_seqs) const {
  if (max_num_batched_tokens < 1 || max_num_seqs < 1)
    PL_THROW("max-num-batched-tokens and max-num-seqs must be at least 1, got " << max_num_batched_tokens << " and "
                                                                                << max_num_seqs);
  const Efficiency& e = hw_.eff;
  const int tp = layout_.tp, pp = layout_.pp;
  const double usable = hw_.dev.mem_bytes * e.mem_util;
  const double hd = static_cast<double>(shape_.head_dim);
  const double act = static_cast<double>(max_num_batched_tokens) *
                     (2.0 * shape_.n_embd + static_cast<double>(heads_ + 2 * kv_heads_) * hd + 2.0 * shape_.n_ff / tp) *
                     4.0;
  const double logits =
      static_cast<double>(std::min(max_num_batched_tokens, max_num_seqs)) * static_cast<double>(shape_.n_vocab) * 4.0;
  MemoryFit f;
  f.fits = true;
  f.kv_tokens_capacity = std::numeric_limits<int64_t>::max();
  double worst_over = 0;
  for (int i = 0; i < pp; ++i) {
    const Stage& st = stages_[static_cast<size_t>(i)];
    double w = st.layer_bytes / tp;
    if (i == 0) w += static_cast<double>(shape_.embd_bytes) / tp;
    if (i == pp - 1) {
      if (!(shape_.tied && pp == 1)) w += static_cast<double>(shape_.head_bytes) / tp;
      w += static_cast<double>(shape_.other_bytes());
    }
    const double reserve = act + (i == pp - 1 ? logits : 0.0);
    const double kv_tok = 2.0 * static_cast<double>(st.n_layers) * kv_heads_ * hd * e.kv_bytes;
    f.weights_bytes_per_rank = std::max(f.weights_bytes_per_rank, w);
    const double left = usable - w - reserve;
    if (left < 0) {
      f.fits = false;
      if (-left > worst_over) {
        worst_over = -left;
        f.kv_bytes_per_token_per_rank = kv_tok;
        f.activation_bytes_per_rank = reserve;
        std::ostringstream os;
        os << "stage " << i << " needs " << gib(w) << " of weights and " << gib(reserve)
           << " of activations on each of its " << tp << " rank(s), more than the " << gib(usable) << " usable ("
           << e.mem_util * 100 << "% of " << gib(hw_.dev.mem_bytes) << " on a " << hw_.dev.name << ")";
        f.why_not = os.str();
      }
      continue;
    }
    const int64_t cap = static_cast<int64_t>(std::floor(left / kv_tok));
    if (f.fits && cap < f.kv_tokens_capacity) {
      f.kv_tokens_capacity = cap;
      f.kv_bytes_per_token_per_rank = kv_tok;
      f.activation_bytes_per_rank = reserve;
    }
  }
  if (!f.fits) {
    f.kv_tokens_capacity = 0;
  } else if (f.kv_tokens_capacity < 1) {
    f.fits = false;
    f.why_not = "the weights and activations fit, but leave no room for even one token of KV cache";
  }
  return f;
}

}  // namespace parallama::plan
