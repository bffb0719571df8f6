// SentencePiece-style tokenizer (tokenizer.ggml.model == "llama"): greedy merging
// of adjacent pieces by vocab score, as llama.cpp's llm_tokenizer_spm_session does,
// with <0xXX> byte fallback for characters missing from the vocab.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace parallama {

class SpmModel {
 public:
  // `token_to_id` and `scores` must outlive the model. `unk_id` (or -1) stands in
  // for a byte that has neither a <0xXX> nor a single-character token.
  SpmModel(const std::unordered_map<std::string, int32_t>& token_to_id,
           const std::vector<float>& scores, int32_t unk_id);

  // `text` must already have spaces escaped to U+2581 (and the prefix space added).
  void encode(std::string_view text, std::vector<int32_t>& out) const;

  int32_t byte_token(uint8_t b) const { return byte_ids_[b]; }  // -1 if none

 private:
  const std::unordered_map<std::string, int32_t>& token_to_id_;
  const std::vector<float>& scores_;
  std::array<int32_t, 256> byte_ids_{};
};

}  // namespace parallama
