// Every tensor type end to end against llama.cpp: the synthetic models of
// tools/make_synthetic_fixtures.py are rebuilt here from the same spec and
// seed; greedy continuations must match token for token (up to a near-tie of
// the reference, margin < 0.2) and first-step logits must agree.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "engine/engine.h"
#include "serve/generate.h"
#include "model/synthetic_model.h"
#include "test_util.h"

using namespace parallama;
using nlohmann::json;

namespace {

GgmlType parse_type(const std::string& s) {
  for (uint32_t id = 0; id < 64; ++id) {
    TypeTraits t = type_traits(id);
    if (t.name && s == t.name) return static_cast<GgmlType>(id);
  }
  throw Error("unknown type " + s);
}

SyntheticModelSpec spec_of(const json& j) {
  SyntheticModelSpec s;
  s.weight_type = parse_type(j["type"]);
  s.n_layer = j["layers"];
  s.n_head = j["heads"];
  s.n_head_kv = j["kv_heads"];
  s.head_dim = j["head_dim"];
  s.n_ff = j["ff"];
  s.arch = j["arch"];
  s.qkv_bias = j["qkv_bias"];
  s.tied_output = j["tied_output"];
  s.seed = j["seed"];
  return s;
}

json cases() {
  std::ifstream in(test::fixture_path("model/synthetic_greedy.json"));
  return json::parse(in)["cases"];
}

// thread_shards 1: one model, matrices split by rows over the 2 threads; -1:
// two thread shards where the split is exact (engine.h), else the same as 1.
void check_case(const json& c, const std::string& path, int thread_shards) {
  const std::string name = std::string(c["name"]) + (thread_shards == 1 ? "" : " (auto thread shards)");
  EngineOptions opt;
  opt.threads = 2;
  opt.n_ctx = 256;
  opt.thread_shards = thread_shards;
  auto e = Engine::load(path, opt);

  Request r;
  r.prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
  r.max_tokens = static_cast<int32_t>(c["steps"].size());
  r.ignore_eos = true;
  auto res = generate(*e, {r});
  int agreed = 0;
  for (size_t i = 0; i < c["steps"].size(); ++i) {
    const int32_t want = c["steps"][i]["token"];
    const float margin = c["steps"][i]["margin"];
    if (res[0].tokens[i] != want) {
      EXPECT_LT(margin, 0.2f) << name << ": step " << i << " got " << res[0].tokens[i]
                              << ", llama.cpp " << want;
      break;
    }
    ++agreed;
  }

  // Logits of the first step (prefill) and of the last step (after decoding
  // over the cache). F32/F16 weights: only summation order and llama.cpp's f16
  // KV cache and f16 activations differ. BF16: llama.cpp rounds activations to
  // bf16 (8-bit mantissa, 0.4% steps) where we keep f32. Quantized weights: both
  // quantize activations to 8 bits, and a rounding flip moves a logit by a few
  // hundredths at these sizes.
  const GgmlType t = spec_of(c["spec"]).weight_type;
  const double tol = t == GgmlType::F32 || t == GgmlType::F16 ? 2e-3
                     : t == GgmlType::BF16                    ? 1e-2
                                                              : 3e-2;
  std::vector<int32_t> seq = r.prompt;
  seq.insert(seq.end(), res[0].tokens.begin(), res[0].tokens.end() - 1);
  for (const char* which : {"first_logits", "last_logits"}) {
    const bool first = std::string(which) == "first_logits";
    if (!first && agreed < int(c["steps"].size())) continue;  // diverged at a near-tie
    const int32_t n = first ? int32_t(r.prompt.size()) : int32_t(seq.size());
    std::vector<int32_t> table;
    BlockAllocator alloc(e->kv().shape().n_blocks);
    ASSERT_TRUE(alloc.reserve(table, n, 16));
    Batch b;
    std::vector<float> logits;
    if (first) {
      b.add_seq(seq.data(), n, 0, &table);
      e->forward(b, logits);
    } else {  // prompt as one batch, then one token per step as generation did
      const int32_t np = int32_t(r.prompt.size());
      b.add_seq(seq.data(), np, 0, &table);
      e->forward(b, logits);
      for (int32_t i = np; i < n; ++i) {
        b.clear();
        b.add_seq(&seq[i], 1, i, &table);
        e->forward(b, logits);
      }
    }
    alloc.release(table);
    const auto want = c[which].get<std::vector<float>>();
    ASSERT_EQ(want.size(), logits.size());
    double max_diff = 0, scale = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(double(logits[i]) - want[i]));
      scale = std::max(scale, std::fabs(double(want[i])));
    }
    std::printf("%s %s: %d/%zu greedy steps agree, max |dlogit| %.5f (max |logit| %.3f)\n",
                name.c_str(), which, agreed, c["steps"].size(), max_diff, scale);
    EXPECT_LT(max_diff, tol * std::max(1.0, scale)) << name << " " << which;
  }
}

class SyntheticMatch : public ::testing::TestWithParam<int> {};

TEST_P(SyntheticMatch, GreedyAndLogitsMatchLlamaCpp) {
  const json c = cases()[GetParam()];
  const std::string path = test::temp_path("synth_" + std::string(c["name"]) + ".gguf");
  write_synthetic_model(path, spec_of(c["spec"]));
  for (int shards : {1, -1}) check_case(c, path, shards);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, SyntheticMatch, ::testing::Range(0, int(cases().size())),
                         [](const ::testing::TestParamInfo<int>& i) {
                           return cases()[i.param]["name"].get<std::string>();
                         });

}  // namespace
