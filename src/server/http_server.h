// The OpenAI-compatible HTTP front end (cpp-httplib). HTTP threads never touch
// the model: they parse a request, queue it in the serving engine (whose loop
// runs on the main thread) and read its tokens back through a per-request
// exchange. Routes: /v1/completions, /v1/chat/completions (JSON or server-sent
// events), /v1/models, /health, /tokenize, /detokenize, /metrics, /openapi.json
// and the chat page at /.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "serve/engine_loop.h"
#include "server/openai_api.h"

namespace httplib {
class Server;
}

namespace parallama {

class Metrics;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string served_model_name;   // default: the GGUF's file name without .gguf
  std::string api_key;             // empty: no authentication
  int32_t max_queue = 256;         // requests in flight (waiting or running) before 429
  size_t max_body_bytes = 4 << 20;
  int threads = 0;                 // HTTP worker threads; 0: max_queue + 8
  bool log_requests = true;        // one line per request on stderr
};

class ApiServer {
 public:
  enum class State { kLoading, kReady, kDraining, kFailed };

  explicit ApiServer(const ServerOptions& opt);
  ~ApiServer();

  // Binds and starts serving on background threads (/health answers 503 until
  // attach()). Throws parallama::Error if the address cannot be bound.
  void start();
  int port() const { return port_; }
  // The engine is loaded: requests are accepted from now on.
  void attach(ServingEngine& engine, const Tokenizer& tok, const ChatTemplate& chat, Metrics* metrics);
  // Shutdown: new requests get 503; in_flight() counts down as they finish.
  void drain() { state_ = State::kDraining; }
  int32_t in_flight() const { return in_flight_; }
  // The engine cannot go on (a rank died or hangs): open requests end with an
  // error naming `why` (streams get a `data: {"error": ...}` event) within
  // about 0.1 s, and new ones get 503. Any thread.
  void fail(const std::string& why);
  // Stops listening; open streams end.
  void stop();

  struct Exchange;  // one request's choices and their tokens (http_server.cpp)

 private:
  void routes();
  void handle_completion(const std::string& body, bool chat, const std::string& auth, void* res);
  std::shared_ptr<Exchange> submit(const ApiJob& job, bool chat);
  void emit_usage_and_log(Exchange& ex);

  ServerOptions opt_;
  int port_ = 0;
  std::atomic<State> state_{State::kLoading};
  std::mutex fail_mu_;
  std::string failure_;  // set once, under fail_mu_, before state_ becomes kFailed
  std::atomic<int32_t> in_flight_{0};
  std::atomic<uint64_t> next_id_{1};
  ServingEngine* engine_ = nullptr;
  Metrics* metrics_ = nullptr;
  ApiContext ctx_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
};

}  // namespace parallama
