#include "cli/serve_options.h"

#include <cctype>

#include "core/check.h"

namespace parallama::cli {

void add_serve_options(CLI::App* c, ServeArgs& a) {
  c->add_option("--kv-cache-memory", a.kv_cache_memory,
                "KV pool size in bytes for the whole model (suffix K, M, G, KiB, MiB, GiB), instead of --ctx");
  c->add_option("--kv-blocks", a.kv_blocks, "KV pool size in blocks of 16 tokens, instead of --ctx");
  c->add_option("--max-model-len", a.max_model_len,
                "Longest sequence, prompt + output (default: the model's trained context, capped by the pool)");
  c->add_option("--max-num-seqs", a.max_num_seqs, "Sequences running at once")->capture_default_str();
  c->add_option("--max-num-batched-tokens", a.max_num_batched_tokens,
                "Tokens per engine step (decode first, then prefill chunks)")
      ->capture_default_str();
  c->add_flag("--no-prefix-caching", a.no_prefix_caching, "Do not share cached prompt-prefix blocks");
  c->add_option("--thread-shards", a.thread_shards,
                "Tensor-parallel shards over the threads (1: one model, rows split over threads; "
                "-1: as many as threads when the split is exact)")
      ->capture_default_str();
  c->add_option("--kv-type", a.kv_type, "KV cache element type: f16, f32 or q8_0")->capture_default_str();
}

int64_t parse_bytes(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || i > 18) PL_THROW("'" << s << "' is not a size in bytes (e.g. 512M, 2GiB)");
  int64_t v = std::stoll(s.substr(0, i));
  std::string unit = s.substr(i);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  int64_t mul = 1;
  if (unit.empty() || unit == "B") mul = 1;
  else if (unit == "K" || unit == "KB") mul = 1000;
  else if (unit == "M" || unit == "MB") mul = 1000 * 1000;
  else if (unit == "G" || unit == "GB") mul = 1000LL * 1000 * 1000;
  else if (unit == "KIB") mul = 1024;
  else if (unit == "MIB") mul = 1024 * 1024;
  else if (unit == "GIB") mul = 1024LL * 1024 * 1024;
  else PL_THROW("'" << s << "': unknown size unit '" << s.substr(i) << "' (K, M, G, KiB, MiB, GiB)");
  if (v > (int64_t(1) << 50) / mul) PL_THROW("'" << s << "' is too large");
  return v * mul;
}

ServeConfig apply_serve_options(const ServeArgs& a, EngineOptions& opt) {
  if (!a.kv_cache_memory.empty() && a.kv_blocks > 0)
    PL_THROW("give --kv-cache-memory or --kv-blocks, not both");
  if (a.kv_blocks < 0) PL_THROW("--kv-blocks must be positive, got " << a.kv_blocks);
  if (!a.kv_cache_memory.empty()) opt.kv_cache_memory = parse_bytes(a.kv_cache_memory);
  opt.kv_blocks = a.kv_blocks;
  opt.thread_shards = a.thread_shards;
  opt.kv_type = parse_kv_type(a.kv_type);
  ServeConfig cfg;
  cfg.max_model_len = a.max_model_len;
  cfg.prefix_caching = !a.no_prefix_caching;
  cfg.sched.max_num_seqs = a.max_num_seqs;
  cfg.sched.max_num_batched_tokens = a.max_num_batched_tokens;
  return cfg;
}

}  // namespace parallama::cli
