// End to end against llama.cpp: greedy continuations and first-step logits of
// the default model must match the fixtures made by tools/make_model_fixtures.py
// (llama-cpp-python). A token may differ only at a step where llama.cpp's top-2
// logit margin is below kNearTie; a free-running comparison stops there, a
// teacher-forced one (fed llama.cpp's tokens) goes on to the end.
//
// Why kNearTie is 0.5 and not 0.2: both engines quantize activations to 8 bits
// before every matmul, and this 30-layer model amplifies last-bit differences
// of summation order through those rounding steps. Changing only the order of
// one 64-element dot product in our attention moves the mean |dlogit| against
// llama.cpp anywhere between 0.10 and 0.58; an exact float64 forward pass of
// the same weights (numpy) is itself 0.66 (max) / 0.165 (mean) away from
// llama.cpp. Flips happen below margin 0.5 (one at 0.263 with earlier
// kernels). A wrong RoPE, norm, head mapping or cache position
// moves logits by several units and flips steps with large margins.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "serve/generate.h"
#include "test_util.h"

using namespace parallama;
using nlohmann::json;

namespace {

constexpr float kNearTie = 0.5f;
// A Q8_0 KV cache rounds every K and V value to 8 bits as well, so a last-bit
// difference upstream can move a cached value by a whole step. Measured against
// the Q8_0 fixture (teacher-forced, 448 steps): mean |dlogit| 0.20 and max 1.00
// on the AVX2 path, 0.20 and 0.92 on the scalar one (f16 cache: 0.17 / 0.67 and
// 0.16 / 0.96); the AVX2 path flips a step of llama.cpp margin 0.618 where its
// own margin is 0.001. Margins under 1.0 are near-ties for that cache.
constexpr float kNearTieQ8Cache = 1.0f;

struct Fixture {
  json cases;
  std::unique_ptr<Engine> engine;
  float near_tie = kNearTie;
};

Fixture* load_fixture(const char* file, KvType kv_type) {
  auto* fx = new Fixture();
  fx->near_tie = kv_type == KvType::kQ8_0 ? kNearTieQ8Cache : kNearTie;
  const std::string model = test::default_model_path();
  if (model.empty()) return fx;
  std::ifstream in(test::fixture_path(std::string("model/") + file));
  fx->cases = json::parse(in)["cases"];
  EngineOptions opt;
  opt.threads = 2;
  opt.n_ctx = 8192;
  opt.kv_type = kv_type;
  fx->engine = Engine::load(model, opt);
  return fx;
}
// llama.cpp's defaults (f16 KV cache).
Fixture* load() {
  static Fixture* f = load_fixture("smollm2_greedy.json", KvType::kF16);
  return f;
}
// llama.cpp with a Q8_0 K and V cache (and its flash attention), against ours with one.
Fixture* load_kv_q8_0() {
  static Fixture* f = load_fixture("smollm2_greedy_kv_q8_0.json", KvType::kQ8_0);
  return f;
}

#define REQUIRE_MODEL(fx)                                                  \
  do {                                                                     \
    if (!(fx)->engine) FAIL() << test::missing_model_message();            \
  } while (0)

// Number of steps that agree; fails the test if a disagreement is not a near-tie.
int compare_greedy(const json& c, const std::vector<int32_t>& got, float near_tie) {
  const json& steps = c["steps"];
  int agreed = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const int32_t want = steps[i]["token"];
    const float margin = steps[i]["margin"];
    if (i >= got.size()) {
      ADD_FAILURE() << c["name"] << ": stopped after " << got.size() << " tokens";
      break;
    }
    if (got[i] != want) {
      EXPECT_LT(margin, near_tie) << c["name"] << ": step " << i << " got " << got[i]
                                  << ", llama.cpp " << want << " with margin " << margin;
      break;
    }
    ++agreed;
  }
  return agreed;
}

Request greedy_request(const json& c) {
  Request r;
  r.prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
  r.max_tokens = static_cast<int32_t>(c["steps"].size());
  r.ignore_eos = true;  // the reference decodes through end-of-generation tokens
  return r;
}

}  // namespace

TEST(LlamaCppMatch, TokenizerGivesTheSamePromptIds) {
  Fixture* fx = load();
  REQUIRE_MODEL(fx);
  for (const json& c : fx->cases) {
    const auto want = c["prompt_tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(fx->engine->tokenizer().encode(c["text"].get<std::string>(), true, c["special"]), want)
        << c["name"];
  }
}

// Each prompt generated alone, compared step by step until a near-tie.
// min_agreed: a floor just under the lowest count measured over the kernel
// paths (PARALLAMA_ISA=avx512vnni/avx512/avx2/scalar, 2 threads): a near-tie
// flip early in a prompt ends that prompt's comparison, so the count moves by
// tens of steps between paths.
void greedy_one_by_one(Fixture* fx, const char* label, int min_agreed) {
  int total = 0, agreed = 0;
  for (const json& c : fx->cases) {
    auto res = generate(*fx->engine, {greedy_request(c)});
    agreed += compare_greedy(c, res[0].tokens, fx->near_tie);
    total += static_cast<int>(c["steps"].size());
  }
  std::printf("%s: agreed on %d of %d greedy steps (the rest follow a near-tie)\n", label, agreed, total);
  EXPECT_GE(agreed, min_agreed) << label;
}

TEST(LlamaCppMatch, GreedyContinuationsOneByOne) {
  Fixture* fx = load();
  REQUIRE_MODEL(fx);
  // Measured (of 448): 284 avx512vnni, 284 avx512, 257 avx2, 233 scalar.
  greedy_one_by_one(fx, "f16 cache", 230);
}

// Fed llama.cpp's own tokens, our argmax must be llama.cpp's at every step of
// every prompt whose margin is not a near-tie (checks all 32 positions, not
// only those before a first divergence).
void teacher_forced_argmax(Fixture* fx) {
  Engine& e = *fx->engine;
  const int32_t V = e.config().n_vocab;
  int checked = 0, exempt = 0;
  for (const json& c : fx->cases) {
    auto seq = c["prompt_tokens"].get<std::vector<int32_t>>();
    const int32_t n_prompt = static_cast<int32_t>(seq.size());
    for (const json& st : c["steps"]) seq.push_back(st["token"]);
    std::vector<int32_t> table;
    BlockAllocator alloc(e.kv().shape().n_blocks);
    ASSERT_TRUE(alloc.reserve(table, int32_t(seq.size()), e.kv().block_size()));
    Batch b;
    b.add_seq(seq.data(), n_prompt, 0, &table);
    std::vector<float> logits;
    for (size_t i = 0; i < c["steps"].size(); ++i) {
      e.forward(b, logits);
      const int32_t got = static_cast<int32_t>(
          std::max_element(logits.begin(), logits.begin() + V) - logits.begin());
      const int32_t want = c["steps"][i]["token"];
      const float margin = c["steps"][i]["margin"];
      if (margin < fx->near_tie) {
        ++exempt;
      } else {
        EXPECT_EQ(got, want) << c["name"] << " step " << i << " (llama.cpp margin " << margin << ")";
        ++checked;
      }
      b.clear();
      b.add_seq(&seq[n_prompt + i], 1, n_prompt + static_cast<int32_t>(i), &table);
    }
    alloc.release(table);
  }
  std::printf("teacher forced: %d steps checked, %d near-ties exempt\n", checked, exempt);
  EXPECT_GT(checked, exempt);
}

TEST(LlamaCppMatch, TeacherForcedArgmaxEveryStep) {
  Fixture* fx = load();
  REQUIRE_MODEL(fx);
  teacher_forced_argmax(fx);
}

// The same two checks with a Q8_0 KV cache on both sides.
TEST(LlamaCppMatch, Q8_0CacheTeacherForcedArgmaxEveryStep) {
  Fixture* fx = load_kv_q8_0();
  REQUIRE_MODEL(fx);
  teacher_forced_argmax(fx);
}

TEST(LlamaCppMatch, Q8_0CacheGreedyContinuations) {
  Fixture* fx = load_kv_q8_0();
  REQUIRE_MODEL(fx);
  // Measured (of 448): 178 avx512vnni, 216 avx512, 187 avx2, 196 scalar.
  greedy_one_by_one(fx, "q8_0 cache", 175);
}

// All prompts in one batch (different lengths, shared paged cache) give the
// same continuations as llama.cpp did one at a time.
TEST(LlamaCppMatch, GreedyContinuationsAsOneBatch) {
  Fixture* fx = load();
  REQUIRE_MODEL(fx);
  std::vector<Request> reqs;
  for (const json& c : fx->cases) reqs.push_back(greedy_request(c));
  auto res = generate(*fx->engine, reqs);
  ASSERT_EQ(res.size(), fx->cases.size());
  int agreed = 0;
  for (size_t i = 0; i < res.size(); ++i)
    agreed += compare_greedy(fx->cases[i], res[i].tokens, fx->near_tie);
  // Measured (of 448), as one by one: 284 avx512vnni, 284 avx512, 257 avx2, 233 scalar.
  EXPECT_GE(agreed, 230);
}

// First-step logits over the whole vocabulary, within the noise floor
// described at the top (summation-order changes alone reach mean 0.58).
TEST(LlamaCppMatch, FirstStepLogits) {
  Fixture* fx = load();
  REQUIRE_MODEL(fx);
  int checked = 0;
  for (const json& c : fx->cases) {
    if (!c.contains("logits_file") || c["logits_file"].is_null()) continue;
    std::ifstream in(test::fixture_path("model/" + c["logits_file"].get<std::string>()),
                     std::ios::binary);
    const int32_t V = fx->engine->config().n_vocab;
    std::vector<float> want(V);
    in.read(reinterpret_cast<char*>(want.data()), V * sizeof(float));
    ASSERT_TRUE(in.good()) << "short logits file";

    std::vector<int32_t> table;
    const auto prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
    BlockAllocator alloc(fx->engine->kv().shape().n_blocks);
    ASSERT_TRUE(alloc.reserve(table, static_cast<int32_t>(prompt.size()), 16));
    Batch b;
    b.add_seq(prompt.data(), static_cast<int32_t>(prompt.size()), 0, &table);
    std::vector<float> logits;
    fx->engine->forward(b, logits);
    alloc.release(table);

    double max_diff = 0, sum_diff = 0;
    for (int32_t i = 0; i < V; ++i) {
      const double d = std::fabs(double(logits[i]) - want[i]);
      max_diff = std::max(max_diff, d);
      sum_diff += d;
    }
    std::printf("%s: max |Δlogit| %.4f, mean %.5f\n", c["name"].get<std::string>().c_str(),
                max_diff, sum_diff / V);
    EXPECT_LT(max_diff, 1.5) << c["name"];
    EXPECT_LT(sum_diff / V, 0.6) << c["name"];
    for (const json& p : c["top16"]) EXPECT_NEAR(logits[p[0].get<int>()], p[1].get<float>(), 1.0);
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}
