#include "tokenizer/unicode.h"

#include <algorithm>

#include <array>

namespace parallama {

size_t utf8_seq_len(uint8_t lead) {
  // Indexed by the high nibble: 0xxx -> 1, 10xx (continuation) -> 1, 110x -> 2, 1110 -> 3, 1111 -> 4.
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

namespace {
bool is_cont(uint8_t c) { return (c & 0xC0) == 0x80; }
}  // namespace

std::vector<uint32_t> utf8_to_cpts(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      out.push_back(c);
      i += 1;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < n && is_cont(p[i + 1])) {
      out.push_back((uint32_t(c & 0x1F) << 6) | (p[i + 1] & 0x3F));
      i += 2;
    } else if ((c & 0xF0) == 0xE0 && i + 2 < n && is_cont(p[i + 1]) && is_cont(p[i + 2])) {
      out.push_back((uint32_t(c & 0x0F) << 12) | (uint32_t(p[i + 1] & 0x3F) << 6) | (p[i + 2] & 0x3F));
      i += 3;
    } else if ((c & 0xF8) == 0xF0 && i + 3 < n && is_cont(p[i + 1]) && is_cont(p[i + 2]) &&
               is_cont(p[i + 3])) {
      out.push_back((uint32_t(c & 0x07) << 18) | (uint32_t(p[i + 1] & 0x3F) << 12) |
                    (uint32_t(p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F));
      i += 4;
    } else {
      out.push_back(0xFFFD);  // malformed: skip one byte
      i += 1;
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cpt) {
  if (cpt > 0x10FFFF) cpt = 0xFFFD;
  if (cpt < 0x80) {
    out.push_back(char(cpt));
  } else if (cpt < 0x800) {
    out.push_back(char(0xC0 | (cpt >> 6)));
    out.push_back(char(0x80 | (cpt & 0x3F)));
  } else if (cpt < 0x10000) {
    out.push_back(char(0xE0 | (cpt >> 12)));
    out.push_back(char(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cpt & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cpt >> 18)));
    out.push_back(char(0x80 | ((cpt >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cpt & 0x3F)));
  }
}

std::string cpt_to_utf8(uint32_t cpt) {
  std::string s;
  append_utf8(s, cpt);
  return s;
}

size_t utf8_complete_prefix(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  // Only the last three bytes can belong to an unfinished sequence.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t c = p[n - back];
    if (is_cont(c)) continue;
    if (c >= 0xC0) {
      const size_t need = utf8_seq_len(c);
      if (need > back) return n - back;  // lead byte still waiting for continuation bytes
    }
    return n;
  }
  return n;
}

namespace {
struct ByteMap {
  std::array<std::string, 256> to_char;
  std::array<int, 512> to_byte;  // mapped code points are all below 0x144
  ByteMap() {
    to_byte.fill(-1);
    std::array<bool, 256> printable{};
    for (int b = 0x21; b <= 0x7E; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t cpt = printable[b] ? uint32_t(b) : uint32_t(256 + next++);
      to_char[b] = cpt_to_utf8(cpt);
      to_byte[cpt] = b;
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}
}  // namespace

const std::string& byte_to_bpe_char(uint8_t b) { return byte_map().to_char[b]; }

int bpe_cpt_to_byte(uint32_t cpt) {
  return cpt < 512 ? byte_map().to_byte[cpt] : -1;
}

std::vector<MergeSymbol> utf8_symbols(std::string_view s) {
  std::vector<MergeSymbol> sym;
  for (size_t off = 0; off < s.size();) {
    const size_t len = std::min(s.size() - off, utf8_seq_len(uint8_t(s[off])));
    const int idx = int(sym.size());
    sym.push_back({idx - 1, off + len == s.size() ? -1 : idx + 1, off, len});
    off += len;
  }
  return sym;
}

}  // namespace parallama
