// Token sampler: turns one step's logits into the next token id.
//
// Stages, in llama.cpp's common-sampler order (stages that are "off" are skipped):
//   1. penalties   repeat (llama.cpp: logit>0 ? logit/p : logit*p) then presence/frequency
//                  (OpenAI: logit -= presence*(count>0) + frequency*count), both over the
//                  distinct tokens of the last repeat_last_n history tokens
//   2. top_k       keep the k highest logits
//   3. top_p       keep the smallest highest-probability prefix whose mass reaches top_p
//   4. min_p       keep tokens with p >= min_p * p_max
//   5. temperature divide the surviving logits by T
//   6. draw        softmax over the survivors, one draw from std::mt19937_64
// top_p and min_p see probabilities at temperature 1 (temperature comes after them), as
// in llama.cpp. temperature <= 0 means greedy: argmax of the penalised logits, lowest id
// on ties (truncation stages cannot change the argmax, so they are skipped).
// Ties in the ranking stages are broken by lower id first, so results are deterministic.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace parallama {

struct SamplingParams {
  float temperature = 0.0f;    // <= 0: greedy (argmax, lowest id on ties)
  int top_k = 0;               // 0: off; must be >= 0
  float top_p = 1.0f;          // 1: off; must be in (0, 1]
  float min_p = 0.0f;          // 0: off; must be in [0, 1]
  float repeat_penalty = 1.0f; // 1: off; must be > 0
  int repeat_last_n = 64;      // penalty window; 0: penalties off, -1: whole history
  float presence_penalty = 0.0f;   // 0: off
  float frequency_penalty = 0.0f;  // 0: off
  uint64_t seed = 0;           // same seed + same logits -> same tokens
};

// Throws parallama::Error if a field is out of range (see the comments above).
void validate(const SamplingParams& p);

class Sampler {
 public:
  // Throws parallama::Error on invalid params or n_vocab <= 0.
  Sampler(const SamplingParams& p, int32_t n_vocab);

  // logits: [n_vocab] f32 (not modified); history: tokens seen so far (prompt + generated);
  // ids in the penalty window must be in [0, n_vocab) (else parallama::Error).
  int32_t sample(const float* logits, std::span<const int32_t> history);

  // Restarts the random stream; the sequence after reset(s) equals a fresh Sampler with seed s.
  void reset(uint64_t seed);

  const SamplingParams& params() const { return params_; }
  int32_t n_vocab() const { return n_vocab_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
  };

  bool penalties_active() const;
  // Copies logits into work_ and applies the penalties; returns work_.data().
  const float* apply_penalties(const float* logits, std::span<const int32_t> history);
  void select_top_k(const float* logits);  // fills candidates_ with the top_k, sorted
  void sort_candidates();
  void truncate_top_p();
  void truncate_min_p();
  int32_t draw();
  double uniform01();  // [0, 1), 53 random bits: same on every platform

  SamplingParams params_;
  int32_t n_vocab_;
  std::mt19937_64 rng_;
  bool sorted_ = false;               // candidates_ sorted by (logit desc, id asc)
  std::vector<float> work_;           // [n_vocab] f32, penalised logits
  std::vector<Candidate> candidates_; // surviving tokens, reused across calls
  std::vector<int32_t> window_;       // scratch: last repeat_last_n history tokens
};

}  // namespace parallama
