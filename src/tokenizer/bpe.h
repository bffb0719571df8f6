// Byte-level BPE (GPT-2 style, tokenizer.ggml.model == "gpt2"), merging by rank
// exactly as llama.cpp's llm_tokenizer_bpe_session does.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace parallama {

class BpeModel {
 public:
  // `merges` are "left right" strings, rank = index. Throws Error if a merge is
  // malformed or names a token missing from `token_to_id`. `token_to_id` must
  // outlive the model.
  BpeModel(const std::vector<std::string>& merges,
           const std::unordered_map<std::string, int32_t>& token_to_id, bool ignore_merges);

  // Encodes one pre-tokenized word (raw UTF-8): GPT-2 byte mapping, then merges.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  size_t n_merges() const { return n_merges_; }

 private:
  int rank(std::string_view left, std::string_view right) const;  // -1 if not a merge
  void merge_word(const std::string& encoded, std::vector<int32_t>& out) const;

  const std::unordered_map<std::string, int32_t>& token_to_id_;
  std::unordered_map<std::string, int32_t> ranks_;  // key: left + '\0' + right
  size_t n_merges_ = 0;
  bool ignore_merges_ = false;

  // Words repeat a lot; remember their ids (cleared when it grows too large).
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace parallama
