#include "server/text_stream.h"

#include <algorithm>

namespace parallama {

TextStream::TextStream(const Tokenizer& tok, std::vector<std::string> stop) : dec_(tok) {
  for (auto& s : stop)
    if (!s.empty()) stop_.push_back(std::move(s));
}

std::string TextStream::release(size_t n) {
  std::string out = held_.substr(0, n);
  held_.erase(0, n);
  released_ += out;
  return out;
}

std::string TextStream::push(int32_t token) {
  if (stopped_) return "";
  held_ += dec_.push(token);
  // Every stop string is searched from where it could first start: a match may
  // begin in the held text only (the released text was checked before).
  size_t best = std::string::npos;
  for (const auto& s : stop_) {
    const size_t at = held_.find(s);
    if (at != std::string::npos && (best == std::string::npos || at < best)) {
      best = at;
      matched_ = s;
    }
  }
  if (best != std::string::npos) {
    stopped_ = true;
    std::string out = release(best);
    held_.clear();
    return out;
  }
  // Keep back the longest tail that is a proper prefix of a stop string.
  size_t keep = 0;
  for (const auto& s : stop_)
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
  return release(held_.size() - keep);
}

std::string TextStream::finish() {
  if (stopped_) return "";
  held_ += dec_.flush();
  return release(held_.size());
}

}  // namespace parallama
