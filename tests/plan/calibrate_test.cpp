// Calibration's fits against data made from parameters chosen by hand: the
// optimiser on a known minimum, a link's latency and bandwidth from exact
// collective and message times, the efficiencies of a device from steps of a
// known one, a TP transport from TP steps; and the pieces of the cost model
// calibration fills (the flops curve, the per-token cost, the placement of
// ranks by node).
#include "plan/calibrate.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/check.h"

using namespace parallama;
using namespace parallama::plan;

namespace {

// 4 layers, n_embd 512, 8 heads (2 KV) of 64, n_ff 1536, vocab 8000, 2-byte weights.
ModelShape small_model() {
  ModelSpec s;
  s.name = "small";
  s.n_layers = 4;
  s.n_embd = 512;
  s.n_heads = 8;
  s.n_kv_heads = 2;
  s.head_dim = 64;
  s.n_ff = 1536;
  s.n_vocab = 8000;
  s.n_ctx_train = 4096;
  return shape_from_spec(s, "fp16");
}

StepShape decode(int64_t b, int64_t ctx) {
  StepShape s;
  s.decode_tokens = b;
  s.n_seqs = b;
  s.kv_tokens_read = b * ctx;
  s.attn_pairs = b * ctx;
  return s;
}

StepShape prefill(int64_t n) {
  StepShape s;
  s.prefill_tokens = n;
  s.n_seqs = 1;
  s.kv_tokens_read = n;
  s.attn_pairs = n * (n + 1) / 2;
  return s;
}

std::vector<StepShape> grid() {
  std::vector<StepShape> g;
  for (int64_t ctx : {32, 1024})
    for (int64_t b : {1, 2, 4, 8, 16, 32}) g.push_back(decode(b, ctx));
  for (int64_t n : {16, 64, 256}) g.push_back(prefill(n));
  return g;
}

}  // namespace

TEST(PlanCalibrate, NelderMeadFindsAKnownMinimum) {
  const auto x = nelder_mead([](const std::vector<double>& v) { return std::pow(v[0] - 3, 2) + 2 * std::pow(v[1] + 1, 2); },
                             {0, 0}, 1.0, 2000);
  EXPECT_NEAR(x[0], 3, 1e-4);
  EXPECT_NEAR(x[1], -1, 1e-4);
}

TEST(PlanCalibrate, LinkFromExactTimes) {
  // 10 GB/s, 5 us: an all-reduce of B bytes over 2 ranks takes B / 10e9 + 2 x 5 us,
  // a message B / 10e9 + 5 us.
  std::vector<CommSample> s;
  for (double b : {256.0, 65536.0, 4194304.0}) {
    s.push_back({CommSample::kAllReduce, 2, b, b / 10e9 + 10e-6});
    s.push_back({CommSample::kSend, 2, b, b / 10e9 + 5e-6});
  }
  const LinkFit f = fit_link("l", s);
  EXPECT_NEAR(f.link.bw_Bps, 10e9, 1e3);
  EXPECT_NEAR(f.link.latency_s, 5e-6, 1e-12);
  EXPECT_LT(f.max_rel_error, 1e-9);
  EXPECT_EQ(f.link.name, "l");
  EXPECT_THROW(fit_link("l", {{CommSample::kSend, 2, 256, 1e-5}, {CommSample::kSend, 2, 256, 1e-5}}), Error);
  EXPECT_THROW(fit_link("l", {{CommSample::kSend, 2, 256, 1e-3}, {CommSample::kSend, 2, 4096, 1e-5}}), Error);
}

TEST(PlanCalibrate, EfficienciesReproduceStepsOfAKnownDevice) {
  // Steps of a made-up device (100 GB/s, 1 TFLOPS) at known efficiencies, a
  // flops fraction that rises with the batch, and fixed costs.
  const ModelShape m = small_model();
  Hardware truth;
  truth.dev = {"d", 100e9, 1e12, 16e9};
  truth.eff.mem = 0.7;
  truth.eff.attn = 0.3;
  truth.eff.step_overhead_s = 50e-6;
  truth.eff.per_layer_overhead_s = 5e-6;
  truth.eff.flops_curve = {{1, 0.2}, {8, 0.5}, {64, 0.9}, {256, 0.95}};
  const CostModel cm(m, Layout{1, 1, {}}, truth);
  std::vector<StepSample> samples;
  for (const StepShape& s : grid()) samples.push_back({s, cm.step(s).stage_s[0]});
  const EfficiencyFit fit = fit_efficiency(m, truth.dev, samples);
  EXPECT_LT(fit.max_rel_error, 0.03);
  EXPECT_LT(fit.rms_log_error, 0.015);
  EXPECT_LE(fit.eff.mem, 1.0);
  EXPECT_LE(fit.eff.attn, 1.0);
  ASSERT_EQ(fit.predicted_s.size(), samples.size());
  // Long-context decode is attention-bound here: its fraction is found.
  EXPECT_NEAR(fit.eff.attn, 0.3, 0.03);
  EXPECT_THROW(fit_efficiency(m, truth.dev, {samples[0], samples[1]}), Error);
  samples[0].seconds = 0;
  EXPECT_THROW(fit_efficiency(m, truth.dev, samples), Error);
}

TEST(PlanCalibrate, TransportFromTensorParallelSteps) {
  // TP=2 steps over a link of 2 GB/s and 40 us per ring step, the device known:
  // starting from a probe that says 8 GB/s and 1 us, the fit finds the link's figures.
  const ModelShape m = small_model();
  Hardware h;
  h.dev = {"d", 100e9, 1e12, 16e9};
  h.eff.mem = h.eff.flops = h.eff.comm = 1;
  h.devices_per_node = 2;
  h.intra = {"t", 2e9, 40e-6};
  const CostModel cm(m, Layout{2, 1, {}}, h);
  std::vector<StepSample> samples;
  for (const StepShape& s : grid()) samples.push_back({s, cm.step(s).stage_s[0]});
  h.intra = {"t", 8e9, 1e-6};
  const Link l = fit_tp_link(m, h, 2, samples, 0.0);
  EXPECT_NEAR(l.latency_s, 40e-6, 0.4e-6);
  EXPECT_NEAR(l.bw_Bps, 2e9, 0.05e9);
  EXPECT_EQ(l.name, "t");
}

TEST(PlanCost, FlopsCurveInterpolatesInLogTokens) {
  Efficiency e;
  e.flops = 0.6;
  EXPECT_DOUBLE_EQ(e.flops_at(7), 0.6);  // no curve: the constant
  e.flops_curve = {{1, 0.2}, {16, 0.6}};
  EXPECT_DOUBLE_EQ(e.flops_at(1), 0.2);
  EXPECT_DOUBLE_EQ(e.flops_at(0.5), 0.2);  // held flat beyond the ends
  EXPECT_DOUBLE_EQ(e.flops_at(100), 0.6);
  EXPECT_NEAR(e.flops_at(4), 0.4, 1e-12);  // log 4 / log 16 = 1/2 of the way
  EXPECT_NEAR(e.flops_at(2), 0.3, 1e-12);  // 1/4 of the way
  nlohmann::json j = e;
  const Efficiency back = j.get<Efficiency>();
  ASSERT_EQ(back.flops_curve.size(), 2u);
  EXPECT_DOUBLE_EQ(back.flops_at(4), e.flops_at(4));
  j["flops_curve"] = {{16, 0.6}, {1, 0.2}};
  EXPECT_THROW(j.get<Efficiency>(), Error);
  j["flops_curve"] = {{1, 0.0}};
  EXPECT_THROW(j.get<Efficiency>(), Error);
}

TEST(PlanCost, TokenOverheadIsPaidOnTheFirstStage) {
  // 3 sequences sampling at 100 us each: stage 0 costs 300 us more, stage 1 nothing more.
  const ModelShape m = small_model();
  Hardware h;
  h.dev = {"d", 100e9, 1e12, 16e9};
  h.devices_per_node = 2;
  const CostModel base(m, Layout{1, 2, {}}, h);
  h.eff.token_overhead_s = 100e-6;
  const CostModel with(m, Layout{1, 2, {}}, h);
  const StepCost a = base.step(decode(3, 64)), b = with.step(decode(3, 64));
  EXPECT_NEAR(b.stage_s[0] - a.stage_s[0], 300e-6, 1e-12);
  EXPECT_DOUBLE_EQ(b.stage_s[1], a.stage_s[1]);
}

TEST(PlanCost, RanksMappedByNodeSpreadTensorParallelGroups) {
  // tp=2 x pp=2 on 2 nodes of 2: by slot ranks 0,1 | 2,3 share nodes, so TP
  // stays inside a node and the stage boundary crosses; by node ranks 0,2 | 1,3
  // share nodes, so each TP group crosses and the boundary stays inside.
  const ModelShape m = small_model();
  Hardware h;
  h.dev = {"d", 100e9, 1e12, 16e9};
  h.devices_per_node = 2;
  h.nodes = 2;
  h.intra = {"intra", 10e9, 1e-6};
  h.inter = {"inter", 1e9, 1e-5};
  const CostModel slot(m, Layout{2, 2, {}, false}, h);
  EXPECT_EQ(slot.tp_link(0).name, "intra");
  EXPECT_EQ(slot.tp_link(1).name, "intra");
  EXPECT_EQ(slot.send_link(0).name, "inter");
  const CostModel node(m, Layout{2, 2, {}, true}, h);
  EXPECT_EQ(node.tp_link(0).name, "inter");
  EXPECT_EQ(node.tp_link(1).name, "inter");
  EXPECT_EQ(node.send_link(0).name, "intra");
}
