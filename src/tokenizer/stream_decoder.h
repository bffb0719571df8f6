// Incremental detokenization for streamed output.
#pragma once

#include <cstdint>
#include <string>

namespace parallama {

class Tokenizer;

// Streams decoded text without ever splitting a UTF-8 character: bytes of an
// unfinished character are held back until the token that completes it. The
// concatenation of all push() results and flush() equals Tokenizer::decode().
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);  // text that is now safe to emit (may be empty)
  std::string flush();           // whatever is held back (end of stream)

 private:
  const Tokenizer& tok_;
  std::string pending_;  // bytes of a character still waiting for its continuation
  bool first_ = true;
};

}  // namespace parallama
