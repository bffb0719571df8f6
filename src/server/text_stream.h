// The text side of a streamed completion: generated token ids become text as
// it turns final, and OpenAI `stop` strings end it. Text is held back while it
// could still be the start of a stop string (streamed text never shows part of
// a stop string that is then taken back) and while a UTF-8 character is
// incomplete (tokenizer/stream_decoder.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace parallama {

class TextStream {
 public:
  TextStream(const Tokenizer& tok, std::vector<std::string> stop);
  // Feeds one generated token; returns the text that may be shown now. Once a
  // stop string appears in the generated text (it may span tokens; the earliest
  // occurrence of any wins), stopped() is true, the text before it is released
  // and the rest dropped; later calls return "".
  std::string push(int32_t token);
  // End of generation: releases what was held back.
  std::string finish();
  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }
  const std::string& text() const { return released_; }

 private:
  std::string release(size_t n);  // moves the first n bytes of held_ out

  StreamDecoder dec_;
  std::vector<std::string> stop_;
  std::string held_;      // decoded, not yet released
  std::string released_;  // everything released
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace parallama
