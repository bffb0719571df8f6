#include "tokenizer/stream_decoder.h"

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace parallama {

std::string StreamDecoder::push(int32_t id) {
  std::string piece = tok_.token_to_piece(id);
  // Same leading-space rule as Tokenizer::decode.
  if (first_ && tok_.add_space_prefix() && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  first_ = false;
  pending_ += piece;
  const size_t n = utf8_complete_prefix(pending_);
  std::string out = pending_.substr(0, n);
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace parallama
