// The cost model's formulas, each against a value worked out by hand in the
// comment next to it: collectives, KV bytes, the pipeline bubble, the layer
// split, memory fit on real cards, and whole steps on a made-up device.
#include "plan/cost_model.h"

#include <gtest/gtest.h>

#include "core/check.h"

using namespace parallama;
using namespace parallama::plan;
using nlohmann::json;

namespace {

const Catalog& catalog() {
  static const Catalog c = Catalog::load(std::string(PARALLAMA_SOURCE_DIR) + "/data/plan");
  return c;
}

Efficiency ideal() {
  Efficiency e;
  e.mem = e.flops = e.comm = 1;
  return e;
}

// 2 layers, n_embd 1024, 8 heads (8 KV) of 128, n_ff 4096, vocab 1000, untied, 2 bytes a weight:
// a layer is 4 x 1024^2 + 3 x 1024 x 4096 = 16777216 parameters (+ 2048 norm weights)
// = 33558528 B; the head 1000 x 1024 x 2 = 2048000 B.
ModelShape toy_model() {
  ModelSpec s;
  s.name = "toy";
  s.n_layers = 2;
  s.n_embd = 1024;
  s.n_heads = 8;
  s.n_kv_heads = 8;
  s.head_dim = 128;
  s.n_ff = 4096;
  s.n_vocab = 1000;
  s.tied = false;
  s.n_ctx_train = 4096;
  return shape_from_spec(s, "fp16");
}

// 1 TB/s, 100 TFLOPS, every efficiency 1, no overheads.
Hardware toy_hardware(int devices_per_node, int nodes) {
  Hardware h;
  h.dev = {"toy", 1e12, 1e14, 80e9};
  h.devices_per_node = devices_per_node;
  h.nodes = nodes;
  h.intra = {"fast", 100e9, 1e-6};
  h.inter = {"slow", 10e9, 5e-6};
  h.eff = ideal();
  return h;
}

}  // namespace

TEST(PlanCost, RingAllReduce) {
  const Link l{"l", 100e9, 5e-6};
  // p = 4, 1 MB: 2 x 3/4 x 1e6 / 100e9 = 1.5e-5 s of transfer, plus 2 x 3 ring steps x 5 us = 3e-5 s.
  EXPECT_NEAR(ring_allreduce_s(1e6, 4, l, ideal()), 1.5e-5 + 3e-5, 1e-12);
  // p = 2: 2 x 1/2 x 1e6 / 100e9 = 1e-5, plus 2 x 1 x 5 us = 1e-5.
  EXPECT_NEAR(ring_allreduce_s(1e6, 2, l, ideal()), 2e-5, 1e-12);
  EXPECT_EQ(ring_allreduce_s(1e6, 1, l, ideal()), 0.0);
  // Half the bandwidth reached: the transfer part doubles, 3e-5 + 3e-5.
  Efficiency half = ideal();
  half.comm = 0.5;
  EXPECT_NEAR(ring_allreduce_s(1e6, 4, l, half), 3e-5 + 3e-5, 1e-12);
  // All-gather of 1 MB over 4: 3/4 x 1e6 / 100e9 = 7.5e-6, plus 3 x 5 us = 1.5e-5.
  EXPECT_NEAR(ring_allgather_s(1e6, 4, l, ideal()), 7.5e-6 + 1.5e-5, 1e-12);
  // A message: 5 us + 1e6 / 100e9 = 1e-5.
  EXPECT_NEAR(p2p_send_s(1e6, l, ideal()), 5e-6 + 1e-5, 1e-12);
}

TEST(PlanCost, KvBytesPerToken) {
  // Llama-2-13b at fp16: 2 (K, V) x 40 layers x 40 KV heads x 128 x 2 B = 819200 B.
  const ModelShape m = shape_from_spec(catalog().model("llama-2-13b"), "fp16");
  EXPECT_EQ(kv_bytes_per_token(m, 2), 819200.0);
  // Llama-3-70B (GQA, 8 KV heads): 2 x 80 x 8 x 128 x 2 = 327680 B.
  EXPECT_EQ(kv_bytes_per_token(shape_from_spec(catalog().model("llama-3-70b"), "bf16"), 2), 327680.0);
}

TEST(PlanCost, PipelineBubble) {
  EXPECT_DOUBLE_EQ(pipeline_bubble_fraction(4, 8), 3.0 / 11.0);  // (4 - 1) / (8 + 4 - 1)
  EXPECT_DOUBLE_EQ(pipeline_bubble_fraction(2, 1), 0.5);         // 1 / (1 + 1)
  EXPECT_EQ(pipeline_bubble_fraction(1, 5), 0.0);
}

TEST(PlanCost, SplitLayers) {
  EXPECT_EQ(split_layers(30, 4), (std::vector<int64_t>{8, 8, 7, 7}));  // 30 = 4 x 7 + 2: the first two take one more
  EXPECT_EQ(split_layers(32, 4), (std::vector<int64_t>{8, 8, 8, 8}));
  EXPECT_EQ(split_layers(30, 1), (std::vector<int64_t>{30}));
  EXPECT_THROW(split_layers(30, 31), Error);
  EXPECT_THROW(split_layers(30, 0), Error);
}

TEST(PlanCost, MemoryFitOfLlama2_13bOnOneA100_40GB) {
  const ModelShape m = shape_from_spec(catalog().model("llama-2-13b"), "fp16");
  const CostModel cm(m, {1, 1, {}}, make_hardware(catalog(), "a100-40gb", 1, 1, "nvlink3", "ib-hdr"));
  const MemoryFit f = cm.memory_fit(2048, 256);
  // usable: 40 GiB x 0.9 = 38654705664 B.
  // weights: 26031728640 B (model_shape_test: 40 layers, embedding, head, final norm).
  // activations: 2048 tokens x (2 x 5120 + (40 + 2 x 40) x 128 + 2 x 13824) x 4 B = 2048 x 53248 x 4 = 436207616 B.
  // logits: min(2048, 256) x 32000 x 4 B = 32768000 B.
  // left for KV: 38654705664 - 26031728640 - 436207616 - 32768000 = 12154001408 B,
  // / 819200 B per token = 14836.43 -> 14836 tokens (926 blocks of 16): it fits, with little KV.
  EXPECT_TRUE(f.fits) << f.why_not;
  EXPECT_DOUBLE_EQ(f.weights_bytes_per_rank, 26031728640.0);
  EXPECT_DOUBLE_EQ(f.activation_bytes_per_rank, 436207616.0 + 32768000.0);
  EXPECT_DOUBLE_EQ(f.kv_bytes_per_token_per_rank, 819200.0);
  EXPECT_EQ(f.kv_tokens_capacity, 14836);
}

TEST(PlanCost, MemoryFitOfLlama2_70b) {
  const ModelShape m = shape_from_spec(catalog().model("llama-2-70b"), "fp16");
  const Hardware h = make_hardware(catalog(), "a100-80gb", 8, 1, "nvlink3", "ib-hdr");
  // tp = 1: about 138 GB of weights on an 80 GiB card (72 GiB usable).
  const MemoryFit one = CostModel(m, {1, 1, {}}, h).memory_fit(2048, 256);
  EXPECT_FALSE(one.fits);
  EXPECT_EQ(one.kv_tokens_capacity, 0);
  EXPECT_NE(one.why_not.find("usable"), std::string::npos) << one.why_not;
  // tp = 4. A layer: 2 x 8192^2 + 2 x 8192 x 1024 + 3 x 8192 x 28672 + 2 x 8192 = 855654400
  // parameters = 1711308800 B; per rank 80 x 1711308800 / 4 = 34226176000, + embedding and head
  // 2 x 32000 x 8192 x 2 / 4 = 262144000, + final norm 16384 = 34488336384 B.
  // Activations 2048 x (2 x 8192 + (16 + 2 x 2) x 128 + 2 x 28672 / 4) x 4 = 272629760 B, logits
  // 256 x 32000 x 4 = 32768000 B. Left: 77309411328 - 34488336384 - 272629760 - 32768000
  // = 42515677184 B, / (2 x 80 x 2 KV heads x 128 x 2 B = 81920 B) = 518990.2 -> 518990 tokens.
  const MemoryFit four = CostModel(m, {4, 1, {}}, h).memory_fit(2048, 256);
  EXPECT_TRUE(four.fits) << four.why_not;
  EXPECT_DOUBLE_EQ(four.weights_bytes_per_rank, 34488336384.0);
  EXPECT_DOUBLE_EQ(four.kv_bytes_per_token_per_rank, 81920.0);
  EXPECT_EQ(four.kv_tokens_capacity, 518990);
}

TEST(PlanCost, DecodeStepIsBandwidthBound) {
  const CostModel cm(toy_model(), {1, 1, {}}, toy_hardware(1, 1));
  // One sequence decoding at context 100 (its new token included).
  StepShape s;
  s.decode_tokens = 1;
  s.n_seqs = 1;
  s.kv_tokens_read = 100;
  s.attn_pairs = 100;
  // Weights: 2 x 33558528 B = 67117056 B / 1e12 = 67.117056 us (flops: 2 x 16777216 x 2 layers
  // = 67108864 / 1e14 = 0.67 us). KV: 2 layers x 100 x 2 x 8 x 128 x 2 B = 819200 B -> 0.8192 us
  // (flops 2 x 4 x 100 x 8 x 128 = 819200 -> 8 ns). Head: 2048000 B -> 2.048 us.
  // Every op is bound by bytes: 69984256 B / 1e12 B/s = 69.984256 us.
  const StepCost c = cm.step(s);
  ASSERT_EQ(c.stage_s.size(), 1u);
  EXPECT_TRUE(c.send_s.empty());
  EXPECT_NEAR(c.stage_s[0], 69.984256e-6, 1e-12);
  EXPECT_NEAR(c.latency_s, 69.984256e-6, 1e-12);
  EXPECT_NEAR(c.bottleneck_s, 69.984256e-6, 1e-12);
  // At half the bandwidth, twice as long.
  Hardware slow = toy_hardware(1, 1);
  slow.eff.mem = 0.5;
  EXPECT_NEAR(CostModel(toy_model(), {1, 1, {}}, slow).step(s).latency_s, 2 * 69.984256e-6, 1e-12);
  // Overheads: + 10 us per step and 1 us per layer (2 layers).
  Hardware over = toy_hardware(1, 1);
  over.eff.step_overhead_s = 10e-6;
  over.eff.per_layer_overhead_s = 1e-6;
  EXPECT_NEAR(CostModel(toy_model(), {1, 1, {}}, over).step(s).latency_s, 69.984256e-6 + 12e-6, 1e-12);
  // No logits wanted (a prompt's middle chunk): no head, 67.936256 us.
  s.n_logits = 0;
  EXPECT_NEAR(cm.step(s).latency_s, 67.936256e-6, 1e-12);
}

TEST(PlanCost, PrefillStepIsComputeBound) {
  const CostModel cm(toy_model(), {1, 1, {}}, toy_hardware(1, 1));
  // A 1000-token prompt: keys attended 1 + 2 + ... + 1000 = 500500.
  StepShape s;
  s.prefill_tokens = 1000;
  s.n_seqs = 1;
  s.kv_tokens_read = 1000;
  s.attn_pairs = 500500;
  // Weights: 2 x 16777216 x 1000 tokens x 2 layers = 6.7108864e10 flop / 1e14 = 671.08864 us (bytes: 67 us).
  // Attention: 2 layers x 4 x 500500 x 8 x 128 = 4.100096e9 flop -> 41.00096 us (KV bytes 8192000 -> 8.2 us).
  // Head, one logit row: 2048000 B -> 2.048 us (flops 2 x 1024000 -> 0.02 us).
  EXPECT_NEAR(cm.step(s).latency_s, (671.08864 + 41.00096 + 2.048) * 1e-6, 1e-12);
}

TEST(PlanCost, TensorParallelStepInsideANode) {
  const CostModel cm(toy_model(), {2, 1, {}}, toy_hardware(2, 1));
  EXPECT_EQ(cm.tp_link(0).name, "fast");
  EXPECT_EQ(cm.heads_per_rank(), 4);
  EXPECT_EQ(cm.kv_heads_per_rank(), 4);
  StepShape s;
  s.decode_tokens = 1;
  s.n_seqs = 1;
  s.kv_tokens_read = 100;
  s.attn_pairs = 100;
  // Per rank: weights 33558528 B -> 33.558528 us; KV (4 KV heads) 409600 B -> 0.4096 us; head
  // 1024000 B -> 1.024 us; all-gather of 1 x 1000 f32 logits = 4000 B over 2: 1/2 x 4000 / 100e9
  // + 1 x 1 us = 1.02 us; two all-reduces per layer of 1 x 1024 x 2 B = 2048 B over 2:
  // 4 x (2 x 1/2 x 2048 / 100e9 + 2 x 1 us) = 4 x 2.02048 us = 8.08192 us.
  // Total 33.558528 + 0.4096 + 1.024 + 1.02 + 8.08192 = 44.094048 us.
  const StepCost c = cm.step(s);
  EXPECT_NEAR(c.tp_comm_s[0], 8.08192e-6, 1e-12);
  EXPECT_NEAR(c.latency_s, 44.094048e-6, 1e-12);
}

TEST(PlanCost, PipelineStepAcrossNodes) {
  // pp = 2 on two nodes of one device: the boundary crosses nodes (the slow link).
  const CostModel cm(toy_model(), {1, 2, {}}, toy_hardware(1, 2));
  EXPECT_EQ(cm.send_link(0).name, "slow");
  StepShape s;
  s.decode_tokens = 1;
  s.n_seqs = 1;
  s.kv_tokens_read = 100;
  s.attn_pairs = 100;
  // Stage 0 (layer 0): 33558528 B + 409600 B of KV -> 33.968128 us. Stage 1 (layer 1 and the
  // head): 33.968128 + 2.048 = 36.016128 us. Send 1 x 1024 x 2 B: 5 us + 2048 / 10e9 = 5.2048 us.
  const StepCost c = cm.step(s);
  ASSERT_EQ(c.stage_s.size(), 2u);
  ASSERT_EQ(c.send_s.size(), 1u);
  EXPECT_NEAR(c.stage_s[0], 33.968128e-6, 1e-12);
  EXPECT_NEAR(c.stage_s[1], 36.016128e-6, 1e-12);
  EXPECT_NEAR(c.send_s[0], 5.2048e-6, 1e-12);
  EXPECT_NEAR(c.latency_s, (33.968128 + 36.016128 + 5.2048) * 1e-6, 1e-12);
  EXPECT_NEAR(c.bottleneck_s, 36.016128e-6, 1e-12);
  // Both stages on one node: the fast link, 1 us + 2048 / 100e9 = 1.02048 us.
  EXPECT_NEAR(CostModel(toy_model(), {1, 2, {}}, toy_hardware(2, 1)).step(s).send_s[0], 1.02048e-6, 1e-12);
  // Every stage needs a layer.
  EXPECT_THROW(CostModel(toy_model(), {1, 2, {2, 0}}, toy_hardware(2, 1)), Error);
}

TEST(PlanCost, PlacementIsTensorParallelInnermost) {
  // 2 nodes of 2 devices, tp = 2, pp = 2: ranks 0,1 (stage 0) on node 0, ranks 2,3 on node 1.
  const CostModel a(toy_model(), {2, 2, {}}, toy_hardware(2, 2));
  EXPECT_EQ(a.tp_link(0).name, "fast");
  EXPECT_EQ(a.tp_link(1).name, "fast");
  EXPECT_EQ(a.send_link(0).name, "slow");
  // tp = 4 over nodes of 2: the TP group spans nodes.
  const CostModel b(toy_model(), {4, 1, {}}, toy_hardware(2, 2));
  EXPECT_EQ(b.tp_link(0).name, "slow");
  // Explicit layers per stage are kept.
  const CostModel c(toy_model(), {1, 2, {1, 1}}, toy_hardware(2, 1));
  EXPECT_EQ(c.stage_layers(), (std::vector<int64_t>{1, 1}));
}

TEST(PlanCost, RefusesLayoutsThatCannotRun) {
  EXPECT_THROW(CostModel(toy_model(), {2, 2, {}}, toy_hardware(2, 1)), Error);   // 4 ranks on 2 devices
  EXPECT_THROW(CostModel(toy_model(), {16, 1, {}}, toy_hardware(16, 1)), Error);  // 16 > 8 heads
  EXPECT_THROW(CostModel(toy_model(), {1, 3, {}}, toy_hardware(4, 1)), Error);    // 3 stages, 2 layers
  EXPECT_THROW(CostModel(toy_model(), {1, 2, {1, 2}}, toy_hardware(2, 1)), Error);  // sums to 3
  EXPECT_THROW(CostModel(toy_model(), {0, 1, {}}, toy_hardware(2, 1)), Error);
}

TEST(PlanCost, HardwareJsonRoundTripAndChecks) {
  Hardware h = make_hardware(catalog(), "h100-sxm", 8, 2, "nvlink4", "ib-ndr");
  h.eff.flops = 0.55;
  h.eff.step_overhead_s = 2e-4;
  const json j = h;
  const Hardware back = j.get<Hardware>();
  EXPECT_EQ(back.dev.name, "h100-sxm");
  EXPECT_DOUBLE_EQ(back.dev.mem_bw_Bps, 3.35e12);
  EXPECT_EQ(back.devices_per_node, 8);
  EXPECT_EQ(back.nodes, 2);
  EXPECT_EQ(back.intra.name, "nvlink4");
  EXPECT_DOUBLE_EQ(back.inter.bw_Bps, 50e9);
  EXPECT_DOUBLE_EQ(back.eff.flops, 0.55);
  EXPECT_DOUBLE_EQ(back.eff.step_overhead_s, 2e-4);
  // A partial efficiency keeps the defaults for the rest.
  const Efficiency e = json::parse(R"({"mem": 0.7})").get<Efficiency>();
  EXPECT_DOUBLE_EQ(e.mem, 0.7);
  EXPECT_DOUBLE_EQ(e.flops, Efficiency{}.flops);
  EXPECT_DOUBLE_EQ(e.mem_util, 0.9);
  // Typos and bad values are refused.
  EXPECT_THROW(json::parse(R"({"memm": 0.7})").get<Efficiency>(), Error);
  EXPECT_THROW(json::parse(R"({"mem": -1})").get<Efficiency>(), Error);
  EXPECT_THROW(json::parse(R"({"mem_util": 1.5})").get<Efficiency>(), Error);
  EXPECT_THROW(json::parse(R"({"mem": "fast"})").get<Efficiency>(), Error);
  EXPECT_THROW(json::parse(R"({"nodes": 0})").get<Hardware>(), Error);
}

TEST(PlanCost, UniformStepCost) {
  const StepCost c = uniform_step_cost(3, 2.0, 0.5);
  EXPECT_EQ(c.stage_s, (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(c.send_s, (std::vector<double>{0.5, 0.5}));
  EXPECT_DOUBLE_EQ(c.latency_s, 7.0);  // 3 x 2 + 2 x 0.5
  EXPECT_DOUBLE_EQ(c.bottleneck_s, 2.0);
}
