#include "server/http_server.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <random>

#include "core/check.h"
#include "core/clock.h"
#include "server/assets.h"
#include "server/metrics.h"
#include "server/text_stream.h"

namespace parallama {

using json = nlohmann::json;

// One HTTP request's choices (prompts x n) and the tokens the engine thread
// hands them. The engine's callbacks only append events under the mutex; the
// HTTP thread turns them into text.
struct ApiServer::Exchange {
  struct Choice {
    uint64_t req_id = 0;
    size_t prompt = 0;
    bool submitted = false;
    std::deque<TokenEvent> events;  // engine thread -> HTTP thread, under mu
    // HTTP thread only.
    std::unique_ptr<TextStream> text;
    struct Piece {
      std::string text;  // text one token released (several when a held-back stop-string prefix gives way)
      size_t lp_end;     // logprobs entries up to and including that token
    };
    std::deque<Piece> pieces;  // released, not yet sent
    std::string all;       // all text (non-streamed answers)
    json logprobs = json::array();
    size_t logprobs_sent = 0;
    int32_t n_prompt = 0, n_gen = 0;
    std::string finish;    // "" while it runs
    bool done = false, reported = false;
    double queue_s = 0, t_first = -1, t_last = 0;
    std::vector<double> itl;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Choice> choices;
  ApiJob job;
  std::string id;
  int64_t created = 0;
  double t_arrival = 0;
};

ApiServer::ApiServer(const ServerOptions& opt) : opt_(opt), http_(std::make_unique<httplib::Server>()) {}

ApiServer::~ApiServer() { stop(); }

void ApiServer::start() {
  const int threads = opt_.threads > 0 ? opt_.threads : opt_.max_queue + 8;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(opt_.max_body_bytes);
  http_->set_read_timeout(30, 0);
  // One request per connection: httplib answers a method it does not know
  // without reading that request's body, which on a kept-alive connection
  // would then be parsed as the next request (found by schemathesis). Each
  // request of a streaming client is long; a new connection costs little.
  http_->set_keep_alive_max_count(1);
  routes();
  if (opt_.port == 0) {
    port_ = http_->bind_to_any_port(opt_.host);
    if (port_ < 0) PL_THROW("cannot bind " << opt_.host << " to a free port");
  } else {
    if (!http_->bind_to_port(opt_.host, opt_.port)) PL_THROW("cannot bind " << opt_.host << ":" << opt_.port);
    port_ = opt_.port;
  }
  listener_ = std::thread([this] { http_->listen_after_bind(); });
}

void ApiServer::stop() {
  if (http_) http_->stop();
  if (listener_.joinable()) listener_.join();
}

void ApiServer::attach(ServingEngine& engine, const Tokenizer& tok, const ChatTemplate& chat, Metrics* metrics) {
  engine_ = &engine;
  metrics_ = metrics;
  ctx_.tokenizer = &tok;
  ctx_.chat_template = &chat;
  ctx_.model_name = opt_.served_model_name;
  ctx_.max_model_len = engine.max_model_len();
  state_ = State::kReady;
}

namespace {

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  if (e.status == 429) res.set_header("Retry-After", "1");
  send_json(res, e.status, e.body());
}

std::string random_hex() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

std::shared_ptr<ApiServer::Exchange> ApiServer::submit(const ApiJob& job, bool chat) {
  auto ex = std::make_shared<Exchange>();
  ex->job = job;
  ex->id = (chat ? "chatcmpl-" : "cmpl-") + random_hex();
  ex->created = static_cast<int64_t>(std::time(nullptr));
  ex->t_arrival = now_seconds();
  ex->choices.resize(job.prompts.size() * job.n);
  for (size_t i = 0; i < ex->choices.size(); ++i) {
    auto& c = ex->choices[i];
    c.prompt = i / job.n;
    c.n_prompt = static_cast<int32_t>(job.prompts[c.prompt].size());
    c.text = std::make_unique<TextStream>(*ctx_.tokenizer, job.stop);
  }
  return ex;
}

namespace {

// The engine request of choice i (index k of its prompt's n).
Request request_of(const ApiJob& job, size_t prompt, int32_t k) {
  Request r = job.base;
  r.prompt = job.prompts[prompt];
  if (job.seed_given) r.sampling.seed += static_cast<uint64_t>(k);
  else r.sampling.seed = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
  return r;
}

}  // namespace

void ApiServer::emit_usage_and_log(Exchange& ex) {
  for (auto& c : ex.choices) {
    if (!c.done || c.reported) continue;
    c.reported = true;
    if (metrics_) {
      RequestRecord rec;
      rec.finish_reason = c.finish;
      rec.prompt_tokens = c.n_prompt;
      rec.generation_tokens = c.n_gen;
      rec.queue_s = c.queue_s;
      rec.ttft_s = c.t_first >= 0 ? c.t_first - ex.t_arrival : -1;
      rec.e2e_s = now_seconds() - ex.t_arrival;
      rec.itl_s = c.itl;
      metrics_->observe_request(rec);
    }
    if (opt_.log_requests)
      std::fprintf(stderr, "%s/%llu: prompt %d, output %d tokens, ttft %.3f s, total %.3f s, %s\n", ex.id.c_str(),
                   static_cast<unsigned long long>(c.req_id), c.n_prompt, c.n_gen,
                   c.t_first >= 0 ? c.t_first - ex.t_arrival : -1.0, now_seconds() - ex.t_arrival, c.finish.c_str());
  }
}

namespace {

void add_piece(ApiServer::Exchange::Choice& c, std::string text) {
  if (!text.empty()) c.pieces.push_back({std::move(text), c.logprobs.size()});
}

// Moves the engine's events into text, logprobs and finish reasons; submits the
// other n - 1 choices of a prompt once its first choice has its first token (its
// prompt blocks are then in the prefix cache, which they share). Waits up to
// wait for an event. Returns whether every choice is done.
bool pump(ApiServer::Exchange& ex, ServingEngine& se, const Tokenizer& tok, std::chrono::milliseconds wait,
          const std::function<void(size_t)>& submit_choice) {
  std::vector<std::deque<TokenEvent>> evs(ex.choices.size());
  {
    std::unique_lock<std::mutex> lock(ex.mu);
    auto any = [&] {
      for (auto& c : ex.choices)
        if (!c.events.empty()) return true;
      return false;
    };
    ex.cv.wait_for(lock, wait, any);
    for (size_t i = 0; i < ex.choices.size(); ++i) evs[i].swap(ex.choices[i].events);
  }
  const double now = now_seconds();
  bool all_done = true;
  const int32_t n = ex.job.n;
  for (size_t i = 0; i < ex.choices.size(); ++i) {
    auto& c = ex.choices[i];
    for (const TokenEvent& ev : evs[i]) {
      if (c.done) break;
      c.queue_s = ev.queue_s;
      if (ev.token >= 0) {
        c.n_gen = ev.n_generated;
        if (c.t_first < 0) c.t_first = now;
        else c.itl.push_back(now - c.t_last);
        c.t_last = now;
        if (ex.job.base.logprobs >= 0) {
          json top = json::array();
          for (const auto& [id, lp] : ev.top_logprobs) top.push_back({tok.token_to_piece(id), lp});
          c.logprobs.push_back({{"token", tok.token_to_piece(ev.token)}, {"logprob", ev.logprob}, {"top", top}});
        }
        const bool eog = tok.is_eog(ev.token) && !ex.job.base.ignore_eos;
        if (!eog) add_piece(c, c.text->push(ev.token));
        if (c.text->stopped()) {
          c.finish = "stop";
          c.done = true;
          if (ev.finish == FinishReason::kNone) se.abort(c.req_id);
          break;
        }
      }
      if (ev.finish != FinishReason::kNone) {
        add_piece(c, c.text->finish());
        c.finish = finish_reason_name(ev.finish);
        c.done = true;
      }
    }
    all_done = all_done && c.done;
    // The first choice of a prompt has started: its siblings may share its blocks.
    if (i % n == 0 && (c.n_gen > 0 || c.done))
      for (int32_t k = 1; k < n; ++k)
        if (!ex.choices[i + k].submitted) submit_choice(i + k);
  }
  return all_done;
}

json usage_of(const ApiServer::Exchange& ex) {
  int64_t prompt = 0, gen = 0;
  for (const auto& p : ex.job.prompts) prompt += static_cast<int64_t>(p.size());
  for (const auto& c : ex.choices) gen += c.n_gen;
  return {{"prompt_tokens", prompt}, {"completion_tokens", gen}, {"total_tokens", prompt + gen}};
}

// OpenAI's logprobs objects from [first, last) of a choice's entries.
json logprobs_of(const ApiServer::Exchange& ex, const json& entries, size_t first, size_t last) {
  if (ex.job.base.logprobs < 0) return nullptr;
  if (ex.job.chat) {
    json content = json::array();
    for (size_t i = first; i < last; ++i) {
      const json& e = entries[i];
      json top = json::array();
      for (const auto& t : e["top"]) top.push_back({{"token", t[0]}, {"logprob", t[1]}});
      content.push_back({{"token", e["token"]}, {"logprob", e["logprob"]}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json tokens = json::array(), lps = json::array(), tops = json::array();
  for (size_t i = first; i < last; ++i) {
    const json& e = entries[i];
    tokens.push_back(e["token"]);
    lps.push_back(e["logprob"]);
    json top = json::object();
    for (const auto& t : e["top"]) top[t[0].get<std::string>()] = t[1];
    tops.push_back(top);
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}};
}

}  // namespace

void ApiServer::handle_completion(const std::string& body_text, bool chat, const std::string& auth, void* res_ptr) {
  auto& res = *static_cast<httplib::Response*>(res_ptr);
  if (state_ != State::kReady)
    return send_error(res, ApiError(503, state_ == State::kLoading    ? "the model is still loading"
                                         : state_ == State::kFailed ? "the server has failed: " + failure_
                                                                    : "the server is shutting down",
                                    "", "service_unavailable"));
  if (!opt_.api_key.empty() && auth != "Bearer " + opt_.api_key)
    return send_error(res, ApiError(401, "a valid API key is required (Authorization: Bearer KEY)"));
  ApiJob job;
  try {
    json body = json::parse(body_text);
    job = parse_job(body, chat, ctx_);
  } catch (const json::parse_error& e) {
    return send_error(res, ApiError(400, std::string("the body is not valid JSON: ") + e.what()));
  } catch (const ApiError& e) {
    return send_error(res, e);
  }
  const int32_t n_choices = static_cast<int32_t>(job.prompts.size()) * job.n;
  if (in_flight_.fetch_add(n_choices) + n_choices > opt_.max_queue) {
    in_flight_ -= n_choices;
    return send_error(res, ApiError(429, "too many requests in flight (" + std::to_string(opt_.max_queue) +
                                             "); retry later"));
  }
  auto ex = submit(job, chat);
  std::weak_ptr<Exchange> weak = ex;
  auto submit_choice = [this, ex_raw = ex.get(), weak](size_t i) {
    auto& c = ex_raw->choices[i];
    c.submitted = true;
    auto keep = weak.lock();
    c.req_id = engine_->add_request(request_of(ex_raw->job, c.prompt, static_cast<int32_t>(i % ex_raw->job.n)),
                                    [keep, i](const TokenEvent& ev) {
                                      {
                                        std::lock_guard<std::mutex> lock(keep->mu);
                                        keep->choices[i].events.push_back(ev);
                                      }
                                      // After unlocking: the woken HTTP thread does not block on the mutex.
                                      keep->cv.notify_all();
                                    });
  };
  // Ends the exchange however the handler leaves: the in-flight count drops,
  // and choices still running (a vanished client) are aborted.
  auto finish_exchange = [this, n_choices](Exchange& e) {
    for (auto& c : e.choices)
      if (c.submitted && !c.done) {
        engine_->abort(c.req_id);
        c.finish = "abort";
        c.done = true;
      }
    emit_usage_and_log(e);
    in_flight_ -= n_choices;
  };
  try {
    for (size_t i = 0; i < ex->choices.size(); i += job.n) submit_choice(i);
  } catch (const Error& e) {  // validated already; the engine's own checks
    finish_exchange(*ex);
    return send_error(res, ApiError(400, e.what()));
  }

  const char* object = chat ? "chat.completion" : "text_completion";
  if (!job.stream) {
    while (!pump(*ex, *engine_, *ctx_.tokenizer, std::chrono::milliseconds(100), submit_choice)) {
      if (state_ == State::kFailed) {
        finish_exchange(*ex);
        return send_error(res, ApiError(500, "the request failed: " + failure_, "", "server_error"));
      }
    }
    json choices = json::array();
    for (size_t i = 0; i < ex->choices.size(); ++i) {
      auto& c = ex->choices[i];
      for (auto& piece : c.pieces) c.all += piece.text;
      c.pieces.clear();
      json ch = {{"index", i}, {"finish_reason", c.finish == "abort" ? json() : json(c.finish)},
                 {"logprobs", logprobs_of(*ex, c.logprobs, 0, c.logprobs.size())}};
      if (chat) ch["message"] = {{"role", "assistant"}, {"content", c.all}};
      else ch["text"] = c.all;
      choices.push_back(ch);
    }
    emit_usage_and_log(*ex);
    finish_exchange(*ex);
    return send_json(res, 200, {{"id", ex->id}, {"object", object}, {"created", ex->created},
                                {"model", ctx_.model_name}, {"choices", choices}, {"usage", usage_of(*ex)}});
  }

  res.set_header("Cache-Control", "no-cache");
  auto state = std::make_shared<std::shared_ptr<Exchange>>(ex);
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, state, submit_choice, chat](size_t, httplib::DataSink& sink) {
        Exchange& e = **state;
        const char* obj = chat ? "chat.completion.chunk" : "text_completion";
        auto write = [&](const json& j) {
          const std::string s = "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        std::vector<bool> sent_role(e.choices.size(), false);
        bool all = false;
        while (!all) {
          all = pump(e, *engine_, *ctx_.tokenizer, std::chrono::milliseconds(50), submit_choice);
          if (state_ == State::kFailed && !all) {  // the engine is gone: tell the client, end the stream
            write(ApiError(500, "the request failed: " + failure_, "", "server_error").body());
            sink.done();
            return true;
          }
          for (size_t i = 0; i < e.choices.size(); ++i) {
            auto& c = e.choices[i];
            const bool finishing = c.done && !c.reported;
            if (c.pieces.empty() && !finishing && c.logprobs_sent == c.logprobs.size()) continue;
            if (finishing && c.finish == "abort") {  // ended by the server (shutdown), not by the client
              write(ApiError(503, "the request was aborted: the server is shutting down", "", "server_error").body());
              emit_usage_and_log(e);
              continue;
            }
            // One event per released piece (one per token, so a client's inter-token
            // gaps are the engine's), the finish reason on the last.
            do {
              const bool last = c.pieces.size() <= 1;
              std::string text;
              size_t lp_end = c.logprobs.size();
              if (!c.pieces.empty()) {
                text = std::move(c.pieces.front().text);
                if (!last) lp_end = c.pieces.front().lp_end;
                c.pieces.pop_front();
              }
              const bool fin = finishing && last;
              json ch = {{"index", i}, {"finish_reason", fin ? json(c.finish) : json()},
                         {"logprobs", logprobs_of(e, c.logprobs, c.logprobs_sent, lp_end)}};
              c.logprobs_sent = lp_end;
              if (chat) {
                ch["delta"] = json::object();
                if (!sent_role[i]) ch["delta"]["role"] = "assistant", sent_role[i] = true;
                if (!text.empty() || !fin) ch["delta"]["content"] = text;
              } else {
                ch["text"] = text;
              }
              if (!write({{"id", e.id}, {"object", obj}, {"created", e.created}, {"model", ctx_.model_name},
                          {"choices", json::array({ch})}})) {
                return false;  // the client went away: the releaser aborts what still runs
              }
              if (fin) emit_usage_and_log(e);
            } while (!c.pieces.empty());
          }
          if (!all && !sink.is_writable()) {  // the client went away while nothing was sent
            return false;
          }
        }
        if (e.job.include_usage)
          write({{"id", e.id}, {"object", obj}, {"created", e.created}, {"model", ctx_.model_name},
                 {"choices", json::array()}, {"usage", usage_of(e)}});
        const std::string done = "data: [DONE]\n\n";
        sink.write(done.data(), done.size());
        sink.done();
        return true;
      },
      [this, state, finish_exchange](bool) { finish_exchange(**state); });
}

void ApiServer::fail(const std::string& why) {
  std::lock_guard<std::mutex> lock(fail_mu_);
  if (state_ == State::kFailed) return;
  failure_ = why;
  state_ = State::kFailed;
}

void ApiServer::routes() {
  auto& s = *http_;
  auto completion = [this](bool chat) {
    return [this, chat](const httplib::Request& req, httplib::Response& res) {
      handle_completion(req.body, chat, req.get_header_value("Authorization"), &res);
    };
  };
  s.Post("/v1/completions", completion(false));
  s.Post("/v1/chat/completions", completion(true));
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    res.status = state_ == State::kReady ? 200 : 503;
  });
  s.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    if (!opt_.api_key.empty() && req.get_header_value("Authorization") != "Bearer " + opt_.api_key)
      return send_error(res, ApiError(401, "a valid API key is required (Authorization: Bearer KEY)"));
    send_json(res, 200,
              {{"object", "list"},
               {"data", json::array({{{"id", ctx_.model_name}, {"object", "model"}, {"created", 0},
                                      {"owned_by", "parallama"}, {"root", ctx_.model_name},
                                      {"max_model_len", ctx_.max_model_len}}})}});
  });
  s.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (state_ == State::kLoading) return send_error(res, ApiError(503, "the model is still loading"));
    try {
      const auto ids = parse_tokenize(json::parse(req.body), ctx_);
      send_json(res, 200, {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", ctx_.max_model_len}});
    } catch (const json::parse_error& e) {
      send_error(res, ApiError(400, std::string("the body is not valid JSON: ") + e.what()));
    } catch (const ApiError& e) {
      send_error(res, e);
    }
  });
  s.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (state_ == State::kLoading) return send_error(res, ApiError(503, "the model is still loading"));
    try {
      const json body = json::parse(req.body);
      if (body.is_object()) check_model(body, ctx_);
      if (!body.is_object() || !body.contains("tokens") || !body["tokens"].is_array())
        throw ApiError(400, "'tokens' must be a list of token ids", "tokens");
      std::vector<int32_t> ids;
      for (const json& t : body["tokens"]) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= ctx_.tokenizer->n_vocab())
          throw ApiError(400, "'tokens' must hold ids in [0, " + std::to_string(ctx_.tokenizer->n_vocab()) + ")",
                         "tokens");
        ids.push_back(t.get<int32_t>());
      }
      send_json(res, 200, {{"prompt", ctx_.tokenizer->decode(ids)}});
    } catch (const json::parse_error& e) {
      send_error(res, ApiError(400, std::string("the body is not valid JSON: ") + e.what()));
    } catch (const ApiError& e) {
      send_error(res, e);
    }
  });
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(assets::chat_page()), "text/html; charset=utf-8");
  });
  s.Get("/openapi.json", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(assets::openapi()), "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    if (!metrics_) return send_error(res, ApiError(503, "the model is still loading"));
    res.set_content(metrics_->render(), "text/plain; version=0.0.4");
  });
  // httplib's own refusals (unknown path 404, body too large 413, ...) in OpenAI's form.
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    // A known route asked with another method: 405 with the methods it has.
    static const std::map<std::string, std::string> allowed = {
        {"/v1/completions", "POST"}, {"/v1/chat/completions", "POST"}, {"/tokenize", "POST"},
        {"/detokenize", "POST"},     {"/v1/models", "GET"},           {"/health", "GET"},
        {"/metrics", "GET"},         {"/openapi.json", "GET"},        {"/", "GET"}};
    // (A method httplib does not know leaves the path unparsed: take the target.)
    const std::string path = req.path.empty() ? req.target.substr(0, req.target.find('?')) : req.path;
    auto route = allowed.find(path);
    const bool other_method = req.method != "GET" && req.method != "POST";
    if ((res.status == 400 || res.status == 404) &&
        ((route != allowed.end() && req.method != route->second) || (route == allowed.end() && other_method))) {
      // (httplib refuses some methods with a body before it parses the path.)
      const std::string allow = route != allowed.end() ? route->second : "GET, POST";
      res.status = 405;
      res.set_header("Allow", allow);
      res.set_header("Connection", "close");  // its body may still be unread: the connection cannot go on
      return send_json(res, 405,
                       ApiError(405, req.method + " is not allowed on " + path + " (allowed: " + allow + ")").body());
    }
    const std::string msg = res.status == 413 ? "the request body is too large"
                            : res.status == 404 ? "no route for " + req.method + " " + req.path
                                                : "request refused (HTTP " + std::to_string(res.status) + ")";
    send_json(res, res.status, ApiError(res.status, msg).body());
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_json(res, 500, ApiError(500, what).body());
  });
}

}  // namespace parallama
