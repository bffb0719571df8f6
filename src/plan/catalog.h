// The planner's catalogues: accelerators, links and model shapes, loaded from
// the JSON files in data/plan/ (accelerators.json, links.json, models.json).
// Every entry names its public source (a vendor datasheet, a standard, a
// model's config.json); a link's latency names its own source or says
// "assumed". The figures stay in the files' units here; cost_model.h turns
// them into SI (Device, Link) and model_shape.h into byte counts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace parallama::plan {

struct AcceleratorSpec {
  std::string name;         // "h100-sxm"
  std::string description;  // "NVIDIA H100 SXM5 80GB (HBM3)"
  double mem_bw_GBps = 0;   // GB/s (1e9 bytes/s), datasheet peak
  double bf16_tflops = 0;   // dense BF16/FP16 tensor TFLOPS (1e12 flop/s), no sparsity
  double memory_GiB = 0;    // GiB (2^30 bytes): the datasheet's "80GB"
  std::string source;
};

struct LinkSpec {
  std::string name;         // "nvlink4"
  std::string description;
  double bw_GBps = 0;       // GB/s (1e9 bytes/s), per direction per device
  double latency_us = 0;    // one message, or one step of a ring collective
  std::string source;          // of the bandwidth
  std::string latency_source;  // of the latency, or "assumed ..."
};

// A decoder's dimensions: what a catalogue entry gives and the planner's
// ModelShape (model_shape.h) carries.
struct ModelDims {
  int64_t n_layers = 0;
  int64_t n_embd = 0;
  int64_t n_heads = 0;      // query heads
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t n_ff = 0;
  int64_t n_vocab = 0;
  bool tied = false;        // output head shares the token embedding
  int64_t n_ctx_train = 0;  // max_position_embeddings
};

struct ModelSpec : ModelDims {
  std::string name;         // "llama-2-13b"
  std::string hf_repo;      // "meta-llama/Llama-2-13b-hf"
  std::string source;       // the config.json
};

class Catalog {
 public:
  // Reads dir/accelerators.json, dir/links.json and dir/models.json. Throws
  // parallama::Error naming the file and the entry on a missing file, a
  // missing or mistyped field, a non-positive figure, an empty source or a
  // duplicate name.
  static Catalog load(const std::string& dir);
  // The same from parsed documents; `origin` names them in errors.
  static Catalog from_json(const nlohmann::json& accelerators, const nlohmann::json& links,
                           const nlohmann::json& models, const std::string& origin = "catalogue");

  // By name; an unknown name throws parallama::Error listing the known ones.
  const AcceleratorSpec& accelerator(std::string_view name) const;
  const LinkSpec& link(std::string_view name) const;
  const ModelSpec& model(std::string_view name) const;

  const std::vector<AcceleratorSpec>& accelerators() const { return accelerators_; }
  const std::vector<LinkSpec>& links() const { return links_; }
  const std::vector<ModelSpec>& models() const { return models_; }

 private:
  std::vector<AcceleratorSpec> accelerators_;
  std::vector<LinkSpec> links_;
  std::vector<ModelSpec> models_;
};

}  // namespace parallama::plan
