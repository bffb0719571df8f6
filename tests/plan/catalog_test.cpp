// The planner's catalogues (data/plan/*.json): they load, every entry names
// its source, figures match the datasheets and config.json files they cite
// (values copied from those documents into the comments), and bad input is
// refused with a message that says what is wrong.
#include "plan/catalog.h"

#include <gtest/gtest.h>

#include <set>

#include "core/check.h"
#include "plan/cost_model.h"

using namespace parallama;
using namespace parallama::plan;
using nlohmann::json;

namespace {

const std::string kDir = std::string(PARALLAMA_SOURCE_DIR) + "/data/plan";

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

json one_accelerator() {
  return json::parse(R"({"accelerators": [{"name": "x", "mem_bw_GBps": 1, "bf16_tflops": 1, "memory_GiB": 1,
                          "source": "made up"}]})");
}
json one_link() {
  return json::parse(R"({"links": [{"name": "l", "bw_GBps": 1, "latency_us": 1, "source": "made up",
                          "latency_source": "assumed"}]})");
}
json one_model() {
  return json::parse(R"({"models": [{"name": "m", "n_layers": 2, "n_embd": 64, "n_heads": 4, "n_kv_heads": 2,
                          "head_dim": 16, "n_ff": 128, "n_vocab": 100, "tied": true, "n_ctx_train": 256,
                          "source": "made up"}]})");
}

}  // namespace

TEST(PlanCatalog, LoadsTheDataFilesWithTheExpectedEntries) {
  const Catalog c = Catalog::load(kDir);
  std::set<std::string> acc, links, models;
  for (const auto& a : c.accelerators()) acc.insert(a.name);
  for (const auto& l : c.links()) links.insert(l.name);
  for (const auto& m : c.models()) models.insert(m.name);
  EXPECT_EQ(acc, (std::set<std::string>{"a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "l40s"}));
  EXPECT_EQ(links, (std::set<std::string>{"nvlink3", "nvlink4", "pcie4", "pcie5", "ib-hdr", "ib-ndr", "25gbe",
                                          "100gbe", "shm"}));
  EXPECT_EQ(models, (std::set<std::string>{"llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b",
                                           "smollm2-135m"}));
}

TEST(PlanCatalog, EveryEntryNamesItsSource) {
  const Catalog c = Catalog::load(kDir);
  for (const auto& a : c.accelerators()) EXPECT_FALSE(a.source.empty()) << a.name;
  for (const auto& l : c.links()) {
    EXPECT_FALSE(l.source.empty()) << l.name;
    EXPECT_FALSE(l.latency_source.empty()) << l.name;
  }
  for (const auto& m : c.models()) {
    EXPECT_FALSE(m.source.empty()) << m.name;
    // Each model's figures come from its Hugging Face config.json.
    EXPECT_NE(m.source.find("huggingface.co"), std::string::npos) << m.name;
    EXPECT_NE(m.source.find("config.json"), std::string::npos) << m.name;
  }
}

TEST(PlanCatalog, FiguresMatchTheirSources) {
  const Catalog c = Catalog::load(kDir);
  // A100 datasheet: 40GB SXM 1,555 GB/s, 80GB SXM 2,039 GB/s, BF16 312 TFLOPS dense (624 sparse).
  EXPECT_EQ(c.accelerator("a100-40gb").mem_bw_GBps, 1555);
  EXPECT_EQ(c.accelerator("a100-80gb").mem_bw_GBps, 2039);
  EXPECT_EQ(c.accelerator("a100-80gb").bf16_tflops, 312);
  // H100 datasheet: SXM 3.35 TB/s, BF16 1,979 TFLOPS with sparsity -> 989 dense; PCIe 2 TB/s, 1,513 -> 756.
  EXPECT_EQ(c.accelerator("h100-sxm").mem_bw_GBps, 3350);
  EXPECT_EQ(c.accelerator("h100-sxm").bf16_tflops, 989);
  EXPECT_EQ(c.accelerator("h100-pcie").mem_bw_GBps, 2000);
  EXPECT_EQ(c.accelerator("h100-pcie").bf16_tflops, 756);
  // H200: 141 GB, 4.8 TB/s. L40S: 48 GB, 864 GB/s, BF16 362.05 dense.
  EXPECT_EQ(c.accelerator("h200").memory_GiB, 141);
  EXPECT_EQ(c.accelerator("h200").mem_bw_GBps, 4800);
  EXPECT_EQ(c.accelerator("l40s").bf16_tflops, 362.05);
  // NVLink 3: 600 GB/s both directions -> 300 per direction; NVLink 4: 900 -> 450.
  EXPECT_EQ(c.link("nvlink3").bw_GBps, 300);
  EXPECT_EQ(c.link("nvlink4").bw_GBps, 450);
  // 200 Gb/s / 8 = 25 GB/s; 400 Gb/s / 8 = 50 GB/s; 25 Gb/s / 8 = 3.125 GB/s.
  EXPECT_EQ(c.link("ib-hdr").bw_GBps, 25);
  EXPECT_EQ(c.link("ib-ndr").bw_GBps, 50);
  EXPECT_EQ(c.link("25gbe").bw_GBps, 3.125);
  // Llama-2-13b config.json: hidden 5120, 40 layers, 40 heads, intermediate 13824, vocab 32000.
  const ModelSpec& m = c.model("llama-2-13b");
  EXPECT_EQ(m.n_layers, 40);
  EXPECT_EQ(m.n_embd, 5120);
  EXPECT_EQ(m.n_heads, 40);
  EXPECT_EQ(m.n_kv_heads, 40);
  EXPECT_EQ(m.head_dim, 128);
  EXPECT_EQ(m.n_ff, 13824);
  EXPECT_EQ(m.n_vocab, 32000);
  EXPECT_FALSE(m.tied);
  // Llama-3-70B: 8 KV heads (GQA), vocab 128256, 8192 positions. SmolLM2-135M: tied, 9 heads, 3 KV heads.
  EXPECT_EQ(c.model("llama-3-70b").n_kv_heads, 8);
  EXPECT_EQ(c.model("llama-3-70b").n_vocab, 128256);
  EXPECT_EQ(c.model("llama-3-70b").n_ctx_train, 8192);
  EXPECT_TRUE(c.model("smollm2-135m").tied);
  EXPECT_EQ(c.model("smollm2-135m").n_heads, 9);
  EXPECT_EQ(c.model("smollm2-135m").n_kv_heads, 3);
}

TEST(PlanCatalog, ConvertsToSiUnits) {
  const Catalog c = Catalog::load(kDir);
  const Device d = device_of(c.accelerator("h100-sxm"));
  EXPECT_DOUBLE_EQ(d.mem_bw_Bps, 3.35e12);             // 3350 GB/s
  EXPECT_DOUBLE_EQ(d.peak_flops, 9.89e14);             // 989 TFLOPS
  EXPECT_DOUBLE_EQ(d.mem_bytes, 80.0 * 1073741824.0);  // 80 GiB = 85899345920 B
  const Link l = link_of(c.link("nvlink3"));
  EXPECT_DOUBLE_EQ(l.bw_Bps, 3e11);
  EXPECT_DOUBLE_EQ(l.latency_s, 0.47e-6);
}

TEST(PlanCatalog, UnknownNamesListTheKnownOnes) {
  const Catalog c = Catalog::load(kDir);
  EXPECT_THROW(c.accelerator("tpu-v5"), Error);
  const std::string acc = error_of([&] { c.accelerator("tpu-v5"); });
  EXPECT_NE(acc.find("tpu-v5"), std::string::npos) << acc;
  EXPECT_NE(acc.find("a100-40gb"), std::string::npos) << acc;
  EXPECT_NE(acc.find("l40s"), std::string::npos) << acc;
  const std::string link = error_of([&] { c.link("nvlink9"); });
  EXPECT_NE(link.find("ib-ndr"), std::string::npos) << link;
  const std::string model = error_of([&] { c.model("gpt-5"); });
  EXPECT_NE(model.find("llama-2-70b"), std::string::npos) << model;
  EXPECT_NE(model.find("smollm2-135m"), std::string::npos) << model;
}

TEST(PlanCatalog, RefusesBadDocuments) {
  EXPECT_NO_THROW(Catalog::from_json(one_accelerator(), one_link(), one_model()));
  // No source.
  json a = one_accelerator();
  a["accelerators"][0].erase("source");
  EXPECT_NE(error_of([&] { Catalog::from_json(a, one_link(), one_model()); }).find("'source' is missing"),
            std::string::npos);
  a = one_accelerator();
  a["accelerators"][0]["source"] = "  ";
  EXPECT_NE(error_of([&] { Catalog::from_json(a, one_link(), one_model()); }).find("empty"), std::string::npos);
  // A link's latency must say where it comes from too.
  json l = one_link();
  l["links"][0].erase("latency_source");
  EXPECT_NE(error_of([&] { Catalog::from_json(one_accelerator(), l, one_model()); }).find("latency_source"),
            std::string::npos);
  // Non-positive and mistyped figures, duplicates, heads not a multiple of KV heads.
  a = one_accelerator();
  a["accelerators"][0]["mem_bw_GBps"] = 0;
  EXPECT_NE(error_of([&] { Catalog::from_json(a, one_link(), one_model()); }).find("mem_bw_GBps"), std::string::npos);
  json m = one_model();
  m["models"][0]["n_layers"] = "two";
  EXPECT_NE(error_of([&] { Catalog::from_json(one_accelerator(), one_link(), m); }).find("n_layers"),
            std::string::npos);
  m = one_model();
  m["models"].push_back(m["models"][0]);
  EXPECT_NE(error_of([&] { Catalog::from_json(one_accelerator(), one_link(), m); }).find("twice"), std::string::npos);
  m = one_model();
  m["models"][0]["n_kv_heads"] = 3;
  EXPECT_NE(error_of([&] { Catalog::from_json(one_accelerator(), one_link(), m); }).find("multiple"),
            std::string::npos);
  EXPECT_THROW(Catalog::from_json(json::object(), one_link(), one_model()), Error);
  // A missing directory names the file.
  EXPECT_NE(error_of([] { Catalog::load("/nonexistent-plan-dir"); }).find("accelerators.json"), std::string::npos);
}
