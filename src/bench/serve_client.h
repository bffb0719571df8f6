// One streaming request of a serving benchmark against any OpenAI-compatible
// server (ours, llama-server, vLLM), timed as vLLM's `bench serve` times it:
// every server-sent event that carries choices is a token event; TTFT is the
// first one's time after sending, ITL the gaps between the next ones, and the
// latency the last one's time. Output tokens come from the final usage event
// (stream_options.include_usage), compared with the events that carried text.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "bench/serve_metrics.h"

namespace parallama::bench {

struct Endpoint {
  std::string base_url;  // http://host:port (a trailing /v1 is accepted)
  std::string path;      // /v1/completions or /v1/chat/completions
  std::string api_key;   // "" for none
  double timeout_s = 600;
};

// "completions" / "chat" or a path starting with '/'; throws parallama::Error.
std::string endpoint_path(const std::string& name);

struct StreamResult {
  RequestRecord record;
  int64_t text_events = 0;   // events whose text was not empty
  bool usage_seen = false;
};

// The first model id the server lists at /v1/models; throws parallama::Error
// when the server cannot be reached or lists none.
std::string first_model_id(const Endpoint& ep);

// Sends body (stream and include_usage are added) and reads the stream to its
// end. Never throws: a failure is a record with success = false and the reason.
StreamResult run_stream(const Endpoint& ep, nlohmann::json body, int64_t prompt_len);

}  // namespace parallama::bench
