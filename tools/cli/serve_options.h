// The serving engine's options, shared by every command that runs it
// (generate, bench throughput, and the server to come).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "engine/engine.h"
#include "serve/engine_loop.h"

namespace parallama::cli {

struct ServeArgs {
  std::string kv_cache_memory;  // bytes, with an optional K/M/G/KiB/MiB/GiB suffix
  int32_t kv_blocks = 0;
  int32_t max_model_len = 0;
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 2048;
  bool no_prefix_caching = false;
  int thread_shards = -1;         // EngineOptions::thread_shards
  std::string kv_type = "f16";    // EngineOptions::kv_type
};

void add_serve_options(CLI::App* cmd, ServeArgs& a);
// Sets the KV pool size, thread shards and KV type of `opt` (leaves n_ctx as the
// fallback for the pool) and returns the
// scheduler's configuration. Throws parallama::Error on a bad value.
ServeConfig apply_serve_options(const ServeArgs& a, EngineOptions& opt);
// "512M", "2GiB", "1000000" -> bytes; throws parallama::Error otherwise.
int64_t parse_bytes(const std::string& s);

}  // namespace parallama::cli
