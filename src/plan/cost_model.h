// The cost of one engine step on a TP x PP layout: a roofline per operation
// (time = max(bytes / achieved bandwidth, flops / achieved peak)), ring
// all-reduces inside each stage's TP group, one send per stage boundary, and
// what each rank must hold in memory (weights, activations, the KV pool).
//
// Ranks are placed as the engine places them (src/parallel/world_config.h):
// TP innermost, rank = stage x tp + tp_rank, nodes filled in order with
// devices_per_node ranks each (or dealt round-robin: Layout::map_by_node). A TP group inside one node uses the intra-node
// link, one that spans nodes the inter-node link; a stage boundary where any
// TP rank's peer is on another node uses the inter-node link.
//
// Efficiency holds the fractions of the datasheet figures a real engine
// reaches and the fixed overheads; calibration fills it (a profile file
// carries Hardware as JSON), the defaults are rough GPU figures.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan/catalog.h"
#include "plan/model_shape.h"

namespace parallama::plan {

struct Device {
  std::string name;
  double mem_bw_Bps = 0;  // bytes/s, peak memory bandwidth
  double peak_flops = 0;  // flop/s, dense bf16/fp16 peak
  double mem_bytes = 0;   // bytes of device memory
};

struct Link {
  std::string name;
  double bw_Bps = 0;     // bytes/s, per direction
  double latency_s = 0;  // one message, or one step of a ring collective
};

struct Efficiency {
  double mem = 0.8;                   // fraction of mem_bw_Bps that weight streams reach
  double flops = 0.6;                 // fraction of peak_flops that matmuls and attention reach
  // Measured engines reach a different fraction of peak at each batch size
  // (CPU kernels switch paths, GPUs fill their SMs): (tokens in the step,
  // fraction) pairs by increasing tokens, interpolated in log(tokens) and held
  // flat beyond the ends. Empty: `flops` at every size.
  std::vector<std::pair<double, double>> flops_curve;
  double attn = 0;                    // fraction of mem_bw_Bps that attention's KV reads reach; 0: mem
  double comm = 0.8;                  // fraction of a link's bw_Bps that collectives and sends reach
  double step_overhead_s = 0.0;       // s per step per stage (scheduling, launches, sampling)
  double per_layer_overhead_s = 0.0;  // s per layer per step (kernels, collectives' fixed cost)
  // s per sampled token on the first stage: rank 0 samples, detokenizes and
  // streams each token to its client (serving; fitted from a served run)
  double token_overhead_s = 0.0;
  double act_bytes = 2;               // bytes per activation element on the wire and in memory
  double kv_bytes = 2;                // bytes per KV element
  double mem_util = 0.9;              // fraction of device memory usable

  // The fraction of peak flops for an operation over `tokens` tokens.
  double flops_at(double tokens) const;
  double attn_mem() const { return attn > 0 ? attn : mem; }
};

struct Hardware {
  Device dev;
  int devices_per_node = 1;
  int nodes = 1;
  Link intra;  // between the devices of one node
  Link inter;  // between nodes
  Efficiency eff;
  int n_devices() const { return devices_per_node * nodes; }
};

// JSON (nlohmann's to_json / from_json, found by ADL): every field by its
// name (Hardware: "device", "devices_per_node", "nodes", "intra", "inter",
// "efficiency", and an optional free-text "notes" that is not kept). Reading,
// a missing key keeps the default, an unknown key or a value of the wrong type
// or sign throws parallama::Error (a profile file's typo must not pass silently).
void to_json(nlohmann::json& j, const Device& d);
void from_json(const nlohmann::json& j, Device& d);
void to_json(nlohmann::json& j, const Link& l);
void from_json(const nlohmann::json& j, Link& l);
void to_json(nlohmann::json& j, const Efficiency& e);
void from_json(const nlohmann::json& j, Efficiency& e);
void to_json(nlohmann::json& j, const Hardware& h);
void from_json(const nlohmann::json& j, Hardware& h);

// Catalogue figures in SI units: GB/s -> bytes/s, TFLOPS -> flop/s, GiB -> bytes, us -> s.
Device device_of(const AcceleratorSpec& a);
Link link_of(const LinkSpec& l);
// devices_per_node x nodes of `accelerator`, joined by the named links, with default efficiencies.
Hardware make_hardware(const Catalog& cat, const std::string& accelerator, int devices_per_node, int nodes,
                       const std::string& intra_link, const std::string& inter_link);

struct Layout {
  int tp = 1;
  int pp = 1;
  std::vector<int64_t> stage_layers;  // [pp] layers per stage, in order; empty: split_layers()
  // Ranks dealt round-robin over the nodes (mpirun --map-by node: a TP group
  // spans nodes) instead of filling each node in turn (--map-by slot).
  bool map_by_node = false;
};

// The batch of one step (one micro-batch under PP).
struct StepShape {
  int64_t prefill_tokens = 0;  // prompt (or recomputed) tokens
  int64_t decode_tokens = 0;   // one per decoding sequence
  int64_t n_seqs = 0;          // sequences in the step
  int64_t kv_tokens_read = 0;  // sum over the sequences of the context each attends to (new tokens included)
  int64_t attn_pairs = 0;      // sum over tokens of the keys each query attends to
  // Tokens that need logits (a sequence's last token, when its prompt is done);
  // -1: n_seqs. 0 skips the output head, as the engine does.
  int64_t n_logits = -1;
  int64_t n_tokens() const { return prefill_tokens + decode_tokens; }
  int64_t logits() const { return n_logits < 0 ? n_seqs : n_logits; }
  // Adds one sequence with `cached` tokens in the KV cache and n_new tokens
  // in this step (decode: one token after the prompt); `sampled`: its last
  // token needs logits. Sets n_logits (counting from 0 on the first call).
  void add_seq(int64_t cached, int64_t n_new, bool decode, bool sampled) {
    if (n_seqs == 0) n_logits = 0;
    (decode ? decode_tokens : prefill_tokens) += n_new;
    kv_tokens_read += cached + n_new;
    attn_pairs += n_new * cached + n_new * (n_new + 1) / 2;  // token at position p attends to p + 1 keys
    n_logits += sampled;
    ++n_seqs;
  }
};

struct StepCost {
  std::vector<double> stage_s;    // [pp] compute + TP communication of each stage, s
  std::vector<double> send_s;     // [pp - 1] boundary s -> s + 1, s
  std::vector<double> tp_comm_s;  // [pp] of stage_s, the TP collectives, s
  double latency_s = 0;     // one micro-batch through every stage: sum(stage_s) + sum(send_s)
  // The pace with pp micro-batches in flight: max over stage_s and send_s (a
  // link carries one micro-batch at a time, so a slow one paces the pipeline too).
  double bottleneck_s = 0;
};

// One stage per entry of stage_s, every send the same: for simulator tests and
// step functions that know their times.
StepCost uniform_step_cost(int pp, double stage_s, double send_s = 0);

struct MemoryFit {
  bool fits = false;
  double weights_bytes_per_rank = 0;      // the rank holding the most weights
  double kv_bytes_per_token_per_rank = 0;  // on the rank that limits the KV pool
  int64_t kv_tokens_capacity = 0;          // tokens of KV the pool holds (every rank holds its share of each)
  double activation_bytes_per_rank = 0;    // the reserve for activations (and logits on the last stage)
  std::string why_not;                     // "" when it fits
};

// Ring all-reduce of `bytes` over p ranks: each rank sends and receives
// 2 (p - 1) / p x bytes, in 2 (p - 1) steps (reduce-scatter, all-gather), each
// step paying the link's latency once:
//   2 (p - 1) / p x bytes / (bw x eff.comm) + 2 (p - 1) x latency.
// This is NCCL's ring model (src/graph/tuning.cc) without its fixed base
// latency per collective, which per_layer_overhead_s can carry. 0 for p <= 1.
double ring_allreduce_s(double bytes, int p, const Link& link, const Efficiency& eff);
// Ring all-gather of `bytes` in total: (p - 1) / p x bytes / (bw x eff.comm) + (p - 1) x latency.
double ring_allgather_s(double bytes, int p, const Link& link, const Efficiency& eff);
// One point-to-point message: latency + bytes / (bw x eff.comm).
double p2p_send_s(double bytes, const Link& link, const Efficiency& eff);
// Roofline of one operation: max(bytes / (mem_bw x eff.mem), flops / (peak x eff.flops)).
double op_time_s(double bytes, double flops, const Device& dev, const Efficiency& eff);
// The same with the two fractions given.
double op_time_s(double bytes, double flops, const Device& dev, double mem_frac, double flops_frac);
// KV cache bytes of one token over the whole model: 2 (K, V) x n_layers x n_kv_heads x head_dim x kv_bytes.
double kv_bytes_per_token(const ModelShape& shape, double kv_bytes);
// GPipe's bubble: (pp - 1) / (n_microbatches + pp - 1).
double pipeline_bubble_fraction(int pp, int64_t n_microbatches);
// n_layers over pp stages as evenly as possible, the first stages taking the
// extra layer (the engine's split, src/parallel/world_config.h). Throws
// parallama::Error for pp < 1 or pp > n_layers.
std::vector<int64_t> split_layers(int64_t n_layers, int pp);

class CostModel {
 public:
  // Throws parallama::Error for a layout the hardware or model cannot take:
  // tp or pp < 1, tp x pp over the devices, tp over the query heads, pp over
  // the layers, stage_layers of the wrong length or sum.
  CostModel(ModelShape shape, Layout layout, Hardware hw);

  // Per stage, per TP rank (the slowest: the most heads, as WorldConfig::head_shard splits them):
  //   weights    layers' bytes / tp read once; 2 x layer_params / tp x n_tokens flops per layer
  //              (at eff.mem and eff.flops_at(n_tokens))
  //   attention  kv_tokens_read x 2 x kv_heads/tp x head_dim x kv_bytes read per layer;
  //              4 x attn_pairs x heads/tp x head_dim flops per layer (at eff.attn_mem())
  //   TP         two all-reduces per layer of n_tokens x n_embd x act_bytes
  //   overheads  step_overhead_s + per_layer_overhead_s x layers, and on the first
  //              stage token_overhead_s x logits()
  // the last stage adds the output head over logits() tokens (head_bytes / tp,
  // 2 x head_params / tp flops per token, at eff.flops_at(logits())) and, with tp > 1, the all-gather of
  // the f32 logits (the head is vocab-parallel); each boundary sends n_tokens x
  // n_embd x act_bytes. The embedding lookup and activation traffic are left
  // out: small beside the weights and the KV reads.
  StepCost step(const StepShape& s) const;

  // Memory per rank, for every stage: its layers' weights / tp, the
  // embedding / tp on the first stage, the head / tp and the final norm on the
  // last (a tied model on one stage holds the matrix once; split over stages
  // the last holds a copy), plus an activation reserve of
  //   max_num_batched_tokens x (2 n_embd + (heads + 2 kv_heads)/tp x head_dim + 2 n_ff / tp) x 4 bytes
  // (f32 hidden state and residual, q/k/v, gate and up) and on the last stage
  // the f32 logits of min(max_num_batched_tokens, max_num_seqs) tokens (all
  // gathered). It fits when every stage's share is within dev.mem_bytes x
  // mem_util; the rest is the KV pool, of
  //   (usable - weights - reserve) / (2 x stage layers x kv_heads/tp x head_dim x kv_bytes)
  // tokens on each rank; the pool holds the least of those.
  MemoryFit memory_fit(int64_t max_num_batched_tokens, int64_t max_num_seqs) const;

  const ModelShape& shape() const { return shape_; }
  const Layout& layout() const { return layout_; }
  const Hardware& hardware() const { return hw_; }
  const std::vector<int64_t>& stage_layers() const { return layout_.stage_layers; }
  const Link& tp_link(int stage) const;      // the link of stage's TP group
  const Link& send_link(int boundary) const;  // boundary s: stage s -> s + 1
  int64_t heads_per_rank() const { return heads_; }
  int64_t kv_heads_per_rank() const { return kv_heads_; }

 private:
  struct Stage {
    int64_t first_layer = 0, n_layers = 0;
    double layer_bytes = 0;  // its layers' weights, whole (not yet / tp)
    bool tp_inter = false;   // its TP group spans nodes
  };
  ModelShape shape_;
  Layout layout_;
  Hardware hw_;
  std::vector<Stage> stages_;
  std::vector<bool> send_inter_;  // [pp - 1]
  int64_t heads_ = 0, kv_heads_ = 0;
  double layer_params_ = 0;
};

}  // namespace parallama::plan
