// Pre-tokenizer for byte-level BPE: splits text into words with the regex list
// llama.cpp uses for the model's `tokenizer.ggml.pre`, before BPE merges run.
//
// Regexes run in sequence: each one splits every fragment left by the previous
// one into matches and the unmatched gaps between them (both kept), the way
// llama.cpp's unicode_regex_split does. Matching uses PCRE2 in UTF mode; `\s`
// is rewritten to llama.cpp's whitespace set so both agree on U+0085, U+00A0...
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace parallama {

// What a `tokenizer.ggml.pre` name implies besides its regexes.
struct PreTokenizerConfig {
  std::string pre_name;               // as found in the file ("" if absent)
  std::vector<std::string> regexes;   // llama.cpp's list, in order
  bool ignore_merges = false;         // a whole word that is a token skips BPE
  bool add_bos_default = false;       // llama.cpp's default before tokenizer.ggml.add_bos_token
  bool clean_spaces = true;           // llama.cpp's clean_up_tokenization_spaces default
  bool no_bos = false;                // the name disables the BOS token (chatglm)
  bool known = true;                  // false: unknown name, fell back to "default"
};

// Looks the name up; unknown names fall back to "default" with known = false.
PreTokenizerConfig pre_tokenizer_config(const std::string& pre_name);

class PreTokenizer {
 public:
  explicit PreTokenizer(const std::vector<std::string>& regexes);  // throws Error on a bad regex
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Splits `text` into words (raw UTF-8, not byte-encoded). Malformed UTF-8 is
  // replaced by U+FFFD first, as llama.cpp does.
  std::vector<std::string> split(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Rewrites `\s` / `\S` to an explicit class of llama.cpp's whitespace code points.
std::string rewrite_whitespace_classes(const std::string& regex);

}  // namespace parallama
