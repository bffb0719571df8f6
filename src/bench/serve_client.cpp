#include "bench/serve_client.h"

#include <httplib.h>

#include <chrono>

#include "core/check.h"

namespace parallama::bench {

std::string endpoint_path(const std::string& name) {
  if (name == "completions") return "/v1/completions";
  if (name == "chat") return "/v1/chat/completions";
  if (!name.empty() && name[0] == '/') return name;
  PL_THROW("--endpoint must be completions, chat or a path such as /v1/completions, got '" << name << "'");
}

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// "http://h:p/v1" -> ("http://h:p", "/v1"); the path prefix is dropped when the
// endpoint path already starts with it.
std::pair<std::string, std::string> split_url(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (slash == std::string::npos) return {url, ""};
  std::string prefix = url.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return {url.substr(0, slash), prefix};
}

}  // namespace

std::string first_model_id(const Endpoint& ep) {
  auto [host, prefix] = split_url(ep.base_url);
  if (prefix != "/v1") prefix += "/v1";
  httplib::Client cli(host);
  cli.set_connection_timeout(std::chrono::seconds(10));
  httplib::Headers h;
  if (!ep.api_key.empty()) h.emplace("Authorization", "Bearer " + ep.api_key);
  auto res = cli.Get((prefix + "/models").c_str(), h);
  if (!res) PL_THROW("cannot reach " << ep.base_url << ": " << httplib::to_string(res.error()));
  const auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 200 || j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].contains("id") || !j["data"][0]["id"].is_string())
    PL_THROW(host << prefix << "/models answered " << res->status << " without a model id; give --model");
  return j["data"][0]["id"].get<std::string>();
}

StreamResult run_stream(const Endpoint& ep, nlohmann::json body, int64_t prompt_len) {
  StreamResult out;
  RequestRecord& r = out.record;
  r.prompt_len = prompt_len;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto [host, prefix] = split_url(ep.base_url);
  std::string path = ep.path;
  if (!prefix.empty() && path.rfind(prefix, 0) != 0) path = prefix + path;

  httplib::Client cli(host);
  const auto timeout = std::chrono::duration<double>(ep.timeout_s);
  cli.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
  cli.set_connection_timeout(std::chrono::seconds(10));
  httplib::Headers headers;
  if (!ep.api_key.empty()) headers.emplace("Authorization", "Bearer " + ep.api_key);

  std::string buf, error_body;
  double last = 0;
  bool first = true;
  int status = 0;
  const double t0 = now_s();
  auto on_line = [&](const std::string& line) {
    if (line.rfind("data:", 0) != 0) return;
    std::string payload = line.substr(5);
    if (!payload.empty() && payload[0] == ' ') payload.erase(0, 1);
    if (payload == "[DONE]") return;
    const auto ev = nlohmann::json::parse(payload, nullptr, false);
    if (ev.is_discarded()) return;
    if (ev.contains("error")) {
      const auto& e = ev["error"];
      r.error = "stream error: " + (e.is_object() && e.contains("message") ? e["message"].dump() : e.dump());
      return;
    }
    if (ev.contains("choices") && ev["choices"].is_array() && !ev["choices"].empty()) {
      const double t = now_s();
      if (first) {
        r.ttft_s = t - t0;
        first = false;
      } else {
        r.itl_s.push_back(t - last);
      }
      last = t;
      const auto& c = ev["choices"][0];
      const auto* text = c.contains("text") ? &c["text"] : (c.contains("delta") && c["delta"].contains("content")
                                                                 ? &c["delta"]["content"]
                                                                 : nullptr);
      if (text && text->is_string() && !text->get<std::string>().empty()) ++out.text_events;
    }
    if (ev.contains("usage") && ev["usage"].is_object() && ev["usage"].contains("completion_tokens")) {
      r.output_len = ev["usage"]["completion_tokens"].get<int64_t>();
      if (ev["usage"].contains("prompt_tokens")) r.prompt_len = ev["usage"]["prompt_tokens"].get<int64_t>();
      out.usage_seen = true;
    }
  };
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = headers;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (status != 200) {
      error_body.append(data, std::min<size_t>(n, 2000));
      return true;
    }
    buf.append(data, n);
    size_t start = 0;
    for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string line = buf.substr(start, nl - start);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      on_line(line);
    }
    buf.erase(0, start);
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool ok = cli.send(req, res, err);
  if (!ok) {
    r.error = "connection: " + httplib::to_string(err);
  } else if (status != 200) {
    r.error = "HTTP " + std::to_string(status) + ": " + error_body.substr(0, 300);
  } else if (r.error.empty() && first) {
    r.error = "no token in the stream";
  } else if (r.error.empty() && !out.usage_seen) {
    r.error = "no usage in the stream (stream_options.include_usage)";
  }
  r.latency_s = first ? now_s() - t0 : last - t0;
  r.success = r.error.empty();
  return out;
}

}  // namespace parallama::bench
