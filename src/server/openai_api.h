// The OpenAI API's request side: JSON bodies of /v1/completions and
// /v1/chat/completions checked field by field and turned into engine requests,
// and the error object every failure is answered with. Pure functions: no
// sockets, no engine, testable alone.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "serve/request.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace parallama {

// An answer with OpenAI's error object {"error": {message, type, param, code}}.
struct ApiError : std::runtime_error {
  int status;         // HTTP status, also the object's "code"
  std::string type;   // "invalid_request_error", "authentication_error", ...
  std::string param;  // the offending field, or ""
  ApiError(int status, std::string message, std::string param = "", std::string type = "");
  nlohmann::json body() const;
};

// What a request may refer to.
struct ApiContext {
  const Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat_template = nullptr;
  std::string model_name;     // the served model name
  int32_t max_model_len = 0;
  int32_t max_stop_strings = 16;
  int32_t max_n = 16;
};

// A parsed completion or chat request.
struct ApiJob {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;               // stream_options.include_usage
  std::vector<std::vector<int32_t>> prompts;  // completions: one per prompt; chat: one
  Request base;                             // sampling, max_tokens, logprobs, ignore_eos, stop ids
  int32_t n = 1;                            // choices per prompt
  std::vector<std::string> stop;            // stop strings
  bool seed_given = false;
};

// Throws ApiError (400 with the field in param, 404 for an unknown model).
ApiJob parse_job(const nlohmann::json& body, bool chat, const ApiContext& ctx);

// Throws ApiError 400 for a "model" that is not a string, 404 for another model's name.
void check_model(const nlohmann::json& body, const ApiContext& ctx);

// The prompt of a /tokenize body: "prompt" (a string) or "messages".
std::vector<int32_t> parse_tokenize(const nlohmann::json& body, const ApiContext& ctx);

}  // namespace parallama
