#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace parallama {

namespace {

// Argmax with the lowest id winning ties; NaN never wins. Two passes: a 16-lane max
// (the ternary maps onto vmaxps, so it vectorises without -ffast-math), then the first
// index holding that max. Both stream the 196 KB vector from L2.
int32_t argmax(const float* x, int32_t n) {
  constexpr int32_t kLanes = 16;
  float lane[kLanes];
  for (float& m : lane) m = -INFINITY;
  int32_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int32_t j = 0; j < kLanes; ++j) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
  float best = -INFINITY;
  for (float m : lane) best = m > best ? m : best;
  for (; i < n; ++i) best = x[i] > best ? x[i] : best;
  for (int32_t k = 0; k < n; ++k)
    if (x[k] == best) return k;
  return 0;  // every logit is NaN or -inf
}

struct ByLogitDesc {
  template <class C>
  bool operator()(const C& a, const C& b) const {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  }
};

}  // namespace

void validate(const SamplingParams& p) {
  if (!std::isfinite(p.temperature)) PL_THROW("sampling: temperature must be finite, got " << p.temperature);
  if (p.top_k < 0) PL_THROW("sampling: top_k must be >= 0 (0 = off), got " << p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    PL_THROW("sampling: top_p must be in (0, 1] (1 = off), got " << p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
    PL_THROW("sampling: min_p must be in [0, 1] (0 = off), got " << p.min_p);
  if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty))
    PL_THROW("sampling: repeat_penalty must be > 0 (1 = off), got " << p.repeat_penalty);
  if (p.repeat_last_n < -1)
    PL_THROW("sampling: repeat_last_n must be >= -1 (-1 = whole history, 0 = off), got "
             << p.repeat_last_n);
  if (!std::isfinite(p.presence_penalty))
    PL_THROW("sampling: presence_penalty must be finite, got " << p.presence_penalty);
  if (!std::isfinite(p.frequency_penalty))
    PL_THROW("sampling: frequency_penalty must be finite, got " << p.frequency_penalty);
}

Sampler::Sampler(const SamplingParams& p, int32_t n_vocab) : params_(p), n_vocab_(n_vocab) {
  validate(p);
  if (n_vocab <= 0) PL_THROW("sampling: n_vocab must be > 0, got " << n_vocab);
  reset(p.seed);
}

void Sampler::reset(uint64_t seed) {
  params_.seed = seed;
  rng_.seed(seed);
}

double Sampler::uniform01() {
  // std::uniform_real_distribution is implementation-defined; this is not.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

bool Sampler::penalties_active() const {
  if (params_.repeat_last_n == 0) return false;
  return params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f ||
         params_.frequency_penalty != 0.0f;
}

const float* Sampler::apply_penalties(const float* logits, std::span<const int32_t> history) {
  work_.assign(logits, logits + n_vocab_);
  size_t n = history.size();
  if (params_.repeat_last_n >= 0) n = std::min(n, static_cast<size_t>(params_.repeat_last_n));
  window_.assign(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  for (int32_t t : window_)  // only the window is read, so only it must be in range
    if (t < 0 || t >= n_vocab_)
      PL_THROW("sampling: history token " << t << " outside vocab [0, " << n_vocab_ << ")");
  // Sorting the (small) window groups equal ids, giving each distinct token and its count.
  std::sort(window_.begin(), window_.end());
  for (size_t i = 0; i < window_.size();) {
    const int32_t tok = window_[i];
    size_t j = i;
    while (j < window_.size() && window_[j] == tok) ++j;
    const float count = static_cast<float>(j - i);
    float& l = work_[static_cast<size_t>(tok)];
    if (params_.repeat_penalty != 1.0f)
      l = l > 0.0f ? l / params_.repeat_penalty : l * params_.repeat_penalty;
    l -= params_.presence_penalty + params_.frequency_penalty * count;
    i = j;
  }
  return work_.data();
}

int32_t Sampler::sample(const float* logits, std::span<const int32_t> history) {
  PL_CHECK_MSG(logits != nullptr, "sampling: logits is null");

  const float* l = penalties_active() ? apply_penalties(logits, history) : logits;
  if (params_.temperature <= 0.0f) return argmax(l, n_vocab_);

  // Survivors exclude NaN and -inf: probability 0, and NaN would break the ordering.
  sorted_ = false;
  candidates_.clear();
  const int32_t k = params_.top_k;
  if (k > 0 && k < n_vocab_) {
    select_top_k(l);
  } else {
    candidates_.reserve(static_cast<size_t>(n_vocab_));
    for (int32_t i = 0; i < n_vocab_; ++i)
      if (l[i] > -INFINITY) candidates_.push_back({i, l[i]});
  }
  if (candidates_.empty()) return argmax(l, n_vocab_);
  float max_l = -INFINITY;
  for (const Candidate& c : candidates_) max_l = std::max(max_l, c.logit);
  if (max_l == INFINITY) return argmax(l, n_vocab_);  // softmax is a point mass there

  if (params_.top_p < 1.0f) truncate_top_p();
  if (params_.min_p > 0.0f) truncate_min_p();
  return draw();
}

void Sampler::select_top_k(const float* l) {
  // One pass with a k-entry heap whose top is the worst kept token: for k << n_vocab almost
  // every logit is rejected by a single compare, and no 49k-entry candidate list is built.
  const size_t k = static_cast<size_t>(params_.top_k);
  candidates_.reserve(k);
  const ByLogitDesc better;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    const float v = l[i];
    if (!(v > -INFINITY)) continue;
    const Candidate c{i, v};
    if (candidates_.size() < k) {
      candidates_.push_back(c);
      std::push_heap(candidates_.begin(), candidates_.end(), better);
    } else if (better(c, candidates_.front())) {  // later ids lose ties: lowest id kept
      std::pop_heap(candidates_.begin(), candidates_.end(), better);
      candidates_.back() = c;
      std::push_heap(candidates_.begin(), candidates_.end(), better);
    }
  }
  sort_candidates();
}

void Sampler::sort_candidates() {
  std::sort(candidates_.begin(), candidates_.end(), ByLogitDesc{});
  sorted_ = true;
}

void Sampler::truncate_top_p() {
  // Probabilities at temperature 1, normalised over the current survivors.
  float max_l = -INFINITY;
  for (const Candidate& c : candidates_) max_l = std::max(max_l, c.logit);
  double total = 0.0;
  for (const Candidate& c : candidates_) total += static_cast<double>(std::exp(c.logit - max_l));
  const double target = static_cast<double>(params_.top_p) * total;

  // Rank a growing prefix only as far as needed: usually a few hundred tokens carry the
  // mass, so most of the 49k vocab is never sorted. Each later round selects the next slice
  // with nth_element (O(n)) and sorts only that slice; everything past `done` ranks below it.
  const size_t n = candidates_.size();
  size_t done = 0;
  size_t chunk = std::min<size_t>(n, 256);
  double cum = 0.0;
  for (;;) {
    if (!sorted_) {
      const auto first = candidates_.begin() + static_cast<std::ptrdiff_t>(done);
      const auto mid = candidates_.begin() + static_cast<std::ptrdiff_t>(chunk);
      if (done == 0) {
        // First, small slice: a heap scan rejects most tokens with one compare.
        std::partial_sort(first, mid, candidates_.end(), ByLogitDesc{});
      } else {
        if (chunk < n) std::nth_element(first, mid, candidates_.end(), ByLogitDesc{});
        std::sort(first, mid, ByLogitDesc{});
      }
    }
    for (size_t i = done; i < chunk; ++i) {
      cum += static_cast<double>(std::exp(candidates_[i].logit - max_l));
      if (cum >= target) {  // keep the token that reaches the mass (llama.cpp keeps it too)
        candidates_.resize(i + 1);
        sorted_ = true;
        return;
      }
    }
    if (chunk == n) break;  // rounding: mass never quite reached, keep everything
    done = chunk;
    chunk = std::min(n, chunk * 4);
  }
  sorted_ = true;
}

void Sampler::truncate_min_p() {
  // p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p); no normalisation needed.
  float max_l = -INFINITY;
  for (const Candidate& c : candidates_) max_l = std::max(max_l, c.logit);
  const float threshold = max_l + std::log(params_.min_p);
  // remove_if keeps the relative order, so a sorted list stays sorted.
  candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(),
                                   [&](const Candidate& c) { return c.logit < threshold; }),
                    candidates_.end());
}

int32_t Sampler::draw() {
  // Temperature, then softmax over the survivors (in a fixed order: sorted, or by id).
  const float inv_t = 1.0f / params_.temperature;
  float max_l = -INFINITY;
  for (const Candidate& c : candidates_) max_l = std::max(max_l, c.logit);
  double total = 0.0;
  for (Candidate& c : candidates_) {
    // Reuse the logit slot for the unnormalised weight.
    c.logit = std::exp((c.logit - max_l) * inv_t);
    total += static_cast<double>(c.logit);
  }
  const double u = uniform01() * total;
  double cum = 0.0;
  int32_t last_positive = candidates_.front().id;
  for (const Candidate& c : candidates_) {
    if (c.logit <= 0.0f) continue;
    cum += static_cast<double>(c.logit);
    last_positive = c.id;
    if (u < cum) return c.id;
  }
  return last_positive;  // u landed on the rounding slack at the top end
}

}  // namespace parallama
