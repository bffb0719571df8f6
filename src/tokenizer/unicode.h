// UTF-8 and GPT-2 byte-level helpers shared by the tokenizers.
//
// Decoding follows llama.cpp's lenient rules on purpose (tokenization must match
// it byte for byte): a malformed sequence yields U+FFFD and skips one byte, while
// overlong forms and surrogates are decoded without complaint.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parallama {

// Length of the UTF-8 sequence announced by a lead byte (1 for stray continuation bytes).
size_t utf8_seq_len(uint8_t lead);

// A node of the doubly linked symbol list that BPE and SPM merge pairwise.
struct MergeSymbol {
  int prev;    // index of the left neighbour, -1 at the start
  int next;    // index of the right neighbour, -1 at the end
  size_t off;  // byte offset into the text
  size_t len;  // 0 once merged into its left neighbour
};

// One symbol per UTF-8 character of `s` (the lead byte decides the length, as in llama.cpp).
std::vector<MergeSymbol> utf8_symbols(std::string_view s);

// Lenient decode of a whole string (see above).
std::vector<uint32_t> utf8_to_cpts(std::string_view s);

// Appends the UTF-8 form of `cpt`; values above U+10FFFF become U+FFFD.
void append_utf8(std::string& out, uint32_t cpt);
std::string cpt_to_utf8(uint32_t cpt);

// Number of leading bytes of `s` that can be emitted without cutting a UTF-8
// character: everything except a trailing sequence that is still incomplete.
// Bytes that can never start or continue a valid sequence count as complete.
size_t utf8_complete_prefix(std::string_view s);

// GPT-2 byte-level BPE alphabet: every byte maps to one printable code point.
const std::string& byte_to_bpe_char(uint8_t b);  // UTF-8 of the mapped code point
// Reverse map; returns -1 if `cpt` is not one of the 256 mapped code points.
int bpe_cpt_to_byte(uint32_t cpt);

}  // namespace parallama
