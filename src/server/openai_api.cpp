#include "server/openai_api.h"

#include <climits>
#include <cmath>

namespace parallama {

using json = nlohmann::json;

ApiError::ApiError(int st, std::string message, std::string p, std::string t)
    : std::runtime_error(std::move(message)), status(st), type(std::move(t)), param(std::move(p)) {
  if (type.empty())
    type = st == 401 ? "authentication_error" : st == 404 ? "not_found_error" : st == 429 ? "rate_limit_error"
           : st >= 500 ? "server_error" : "invalid_request_error";
}

json ApiError::body() const {
  return {{"error", {{"message", what()}, {"type", type}, {"param", param.empty() ? json() : json(param)},
                     {"code", status}}}};
}

namespace {

// A present, non-null field.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& body, const char* name, double def, double lo, double hi) {
  const json* f = field(body, name);
  if (!f) return def;
  if (!f->is_number()) throw ApiError(400, std::string("'") + name + "' must be a number", name);
  const double v = f->get<double>();
  if (!(v >= lo && v <= hi))
    throw ApiError(400, std::string("'") + name + "' must be in [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "], got " + f->dump(),
                   name);
  return v;
}

int64_t integer(const json& body, const char* name, int64_t def, int64_t lo, int64_t hi) {
  const json* f = field(body, name);
  if (!f) return def;
  auto out_of_range = [&] {
    return ApiError(400, std::string("'") + name + "' must be in [" + std::to_string(lo) + ", " +
                             std::to_string(hi) + "], got " + f->dump(),
                    name);
  };
  // Compared exactly in the integer type JSON gave (non-negative integers parse
  // as unsigned): a double comparison would let 2^63 through and its cast is undefined.
  if (f->is_number_unsigned()) {
    const uint64_t v = f->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX) || static_cast<int64_t>(v) > hi || static_cast<int64_t>(v) < lo)
      throw out_of_range();
    return static_cast<int64_t>(v);
  }
  if (f->is_number_integer()) {
    const int64_t v = f->get<int64_t>();
    if (v < lo || v > hi) throw out_of_range();
    return v;
  }
  if (!f->is_number_float() || std::floor(f->get<double>()) != f->get<double>())
    throw ApiError(400, std::string("'") + name + "' must be an integer", name);
  const double v = f->get<double>();
  if (!(v > -9223372036854775808.0 && v < 9223372036854775808.0) || v < double(lo) || v > double(hi))
    throw out_of_range();
  return static_cast<int64_t>(v);
}

bool boolean(const json& body, const char* name, bool def) {
  const json* f = field(body, name);
  if (!f) return def;
  if (!f->is_boolean()) throw ApiError(400, std::string("'") + name + "' must be true or false", name);
  return f->get<bool>();
}

std::vector<int32_t> token_ids(const json& a, const ApiContext& ctx, const char* name) {
  std::vector<int32_t> out;
  for (const json& t : a) {
    if (!t.is_number_integer()) throw ApiError(400, std::string("'") + name + "' must hold token ids", name);
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= ctx.tokenizer->n_vocab())
      throw ApiError(400, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                              std::to_string(ctx.tokenizer->n_vocab()) + ")",
                     name);
    out.push_back(static_cast<int32_t>(id));
  }
  return out;
}

// "prompt": a string, a list of strings, a list of ids or a list of lists of ids.
std::vector<std::vector<int32_t>> completion_prompts(const json& body, const ApiContext& ctx) {
  const json* p = field(body, "prompt");
  if (!p) throw ApiError(400, "'prompt' is required", "prompt");
  auto encode = [&](const json& s) { return ctx.tokenizer->encode(s.get<std::string>(), true, true); };
  std::vector<std::vector<int32_t>> out;
  if (p->is_string()) {
    out.push_back(encode(*p));
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    out.push_back(token_ids(*p, ctx, "prompt"));
  } else if (p->is_array() && !p->empty()) {
    for (const json& e : *p) {
      if (e.is_string()) out.push_back(encode(e));
      else if (e.is_array()) out.push_back(token_ids(e, ctx, "prompt"));
      else throw ApiError(400, "'prompt' must be a string, a list of strings or token ids", "prompt");
    }
  } else {
    throw ApiError(400, "'prompt' must be a non-empty string, list of strings or token ids", "prompt");
  }
  for (const auto& q : out)
    if (q.empty()) throw ApiError(400, "the prompt is empty", "prompt");
  return out;
}

std::vector<int32_t> chat_prompt(const json& body, const ApiContext& ctx, bool add_generation_prompt) {
  const json* m = field(body, "messages");
  if (!m || !m->is_array() || m->empty()) throw ApiError(400, "'messages' must be a non-empty list", "messages");
  std::vector<ChatMessage> msgs;
  for (const json& e : *m) {
    if (!e.is_object() || !e.contains("role") || !e["role"].is_string())
      throw ApiError(400, "each message needs a string 'role'", "messages");
    ChatMessage cm;
    cm.role = e["role"].get<std::string>();
    const json* c = field(e, "content");
    if (c && c->is_string()) {
      cm.content = c->get<std::string>();
    } else if (c && c->is_array()) {  // content parts: the text ones, concatenated
      for (const json& part : *c) {
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
            !part["text"].is_string())
          throw ApiError(400, "only text content parts are supported", "messages");
        cm.content += part["text"].get<std::string>();
      }
    } else if (c) {
      throw ApiError(400, "message 'content' must be a string or a list of text parts", "messages");
    }
    msgs.push_back(std::move(cm));
  }
  std::string text;
  try {
    text = ctx.chat_template->apply(msgs, add_generation_prompt);
  } catch (const Error& e) {
    throw ApiError(400, std::string("chat template: ") + e.what(), "messages");
  }
  auto ids = ctx.tokenizer->encode(text, false, true);
  if (ids.empty()) throw ApiError(400, "the rendered conversation is empty", "messages");
  return ids;
}

}  // namespace

void check_model(const json& body, const ApiContext& ctx) {
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) throw ApiError(400, "'model' must be a string", "model");
    if (m->get<std::string>() != ctx.model_name)
      throw ApiError(404, "the model '" + m->get<std::string>() + "' does not exist; this server serves '" +
                              ctx.model_name + "'",
                     "model", "not_found_error");
  }
}

ApiJob parse_job(const json& body, bool chat, const ApiContext& ctx) {
  if (!body.is_object()) throw ApiError(400, "the body must be a JSON object");
  ApiJob j;
  j.chat = chat;
  check_model(body, ctx);
  j.stream = boolean(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) throw ApiError(400, "'stream_options' must be an object", "stream_options");
    if (!j.stream) throw ApiError(400, "'stream_options' needs 'stream': true", "stream_options");
    j.include_usage = boolean(*so, "include_usage", false);
  }
  j.prompts = chat ? std::vector<std::vector<int32_t>>{chat_prompt(body, ctx, boolean(body, "add_generation_prompt", true))}
                   : completion_prompts(body, ctx);
  Request& r = j.base;
  SamplingParams& sp = r.sampling;
  sp.temperature = static_cast<float>(number(body, "temperature", 1.0, 0.0, 2.0));
  sp.top_p = static_cast<float>(number(body, "top_p", 1.0, 0.0, 1.0));
  if (sp.top_p <= 0) throw ApiError(400, "'top_p' must be in (0, 1]", "top_p");
  const int64_t top_k = integer(body, "top_k", -1, -1, 1 << 20);
  sp.top_k = top_k <= 0 ? 0 : static_cast<int>(top_k);
  sp.min_p = static_cast<float>(number(body, "min_p", 0.0, 0.0, 1.0));
  sp.presence_penalty = static_cast<float>(number(body, "presence_penalty", 0.0, -2.0, 2.0));
  sp.frequency_penalty = static_cast<float>(number(body, "frequency_penalty", 0.0, -2.0, 2.0));
  sp.repeat_penalty = static_cast<float>(number(body, "repetition_penalty", 1.0, 0.01, 10.0));
  sp.repeat_last_n = -1;  // penalties see the whole history, as OpenAI's and vLLM's do
  j.seed_given = field(body, "seed") != nullptr;
  sp.seed = static_cast<uint64_t>(integer(body, "seed", 0, INT64_MIN, INT64_MAX));
  j.n = static_cast<int32_t>(integer(body, "n", 1, 1, ctx.max_n));
  r.ignore_eos = boolean(body, "ignore_eos", false);
  // Both are checked; max_completion_tokens wins when both are given.
  const int64_t def_tokens = chat ? ctx.max_model_len : 16;
  const int64_t mt = integer(body, "max_tokens", def_tokens, 1, ctx.max_model_len);
  const int64_t mct = integer(body, "max_completion_tokens", mt, 1, ctx.max_model_len);
  r.max_tokens = static_cast<int32_t>(mct);
  if (chat) {
    if (boolean(body, "logprobs", false))
      r.logprobs = static_cast<int32_t>(integer(body, "top_logprobs", 0, 0, kMaxTopLogprobs));
    else if (field(body, "top_logprobs"))
      throw ApiError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
  } else {
    r.logprobs = static_cast<int32_t>(integer(body, "logprobs", -1, 0, 5));
  }
  if (const json* st = field(body, "stop")) {
    if (st->is_string()) {
      j.stop.push_back(st->get<std::string>());
    } else if (st->is_array()) {
      for (const json& s : *st) {
        if (!s.is_string()) throw ApiError(400, "'stop' must be a string or a list of strings", "stop");
        j.stop.push_back(s.get<std::string>());
      }
    } else {
      throw ApiError(400, "'stop' must be a string or a list of strings", "stop");
    }
    if (static_cast<int32_t>(j.stop.size()) > ctx.max_stop_strings)
      throw ApiError(400, "at most " + std::to_string(ctx.max_stop_strings) + " stop strings", "stop");
  }
  if (const json* ids = field(body, "stop_token_ids")) {
    if (!ids->is_array()) throw ApiError(400, "'stop_token_ids' must be a list of token ids", "stop_token_ids");
    r.stop_token_ids = token_ids(*ids, ctx, "stop_token_ids");
  }
  for (const auto& p : j.prompts)
    if (static_cast<int64_t>(p.size()) >= ctx.max_model_len)
      throw ApiError(400, "this model's maximum context length is " + std::to_string(ctx.max_model_len) +
                              " tokens; the prompt has " + std::to_string(p.size()) +
                              " (and at least one token must be generated)",
                     chat ? "messages" : "prompt");
  return j;
}

std::vector<int32_t> parse_tokenize(const json& body, const ApiContext& ctx) {
  if (!body.is_object()) throw ApiError(400, "the body must be a JSON object");
  check_model(body, ctx);
  const bool add_special = boolean(body, "add_special_tokens", true);
  const bool add_generation = boolean(body, "add_generation_prompt", true);
  const json* p = field(body, "prompt");
  if (p && !p->is_string()) throw ApiError(400, "'prompt' must be a string", "prompt");
  if (field(body, "messages")) return chat_prompt(body, ctx, add_generation);
  if (!p || !p->is_string()) throw ApiError(400, "'prompt' (a string) or 'messages' is required", "prompt");
  return ctx.tokenizer->encode(p->get<std::string>(), add_special, true);
}

}  // namespace parallama
