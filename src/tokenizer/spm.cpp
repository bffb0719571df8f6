#include "tokenizer/spm.h"

#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"

namespace parallama {

namespace {

using Symbol = MergeSymbol;

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;  // bytes of left + right when queued
};

// Highest score first; on ties, leftmost first (llama.cpp's order).
struct BigramBefore {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SpmModel::SpmModel(const std::unordered_map<std::string, int32_t>& token_to_id,
                   const std::vector<float>& scores, int32_t unk_id)
    : token_to_id_(token_to_id), scores_(scores) {
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const std::string name = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
    auto it = token_to_id.find(name);
    if (it == token_to_id.end()) it = token_to_id.find(std::string(1, char(b)));
    byte_ids_[b] = it != token_to_id.end() ? it->second : unk_id;
  }
}

void SpmModel::encode(std::string_view t, std::vector<int32_t>& out) const {
  if (t.empty()) return;
  std::vector<Symbol> sym = utf8_symbols(t);

  std::priority_queue<Bigram, std::vector<Bigram>, BigramBefore> queue;
  std::string buf;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    buf.assign(t.substr(sym[l].off, sym[l].len + sym[r].len));
    auto it = token_to_id_.find(buf);
    if (it == token_to_id_.end() || size_t(it->second) >= scores_.size()) return;
    queue.push({l, r, scores_[it->second], buf.size()});
  };
  for (int i = 1; i < int(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& L = sym[b.left];
    Symbol& R = sym[b.right];
    if (L.len == 0 || R.len == 0 || L.len + R.len != b.size) continue;  // stale
    L.len += R.len;
    R.len = 0;
    L.next = R.next;
    if (R.next >= 0) sym[R.next].prev = b.left;
    try_add(L.prev, b.left);
    try_add(b.left, L.next);
  }

  // Every surviving symbol is either a vocab piece or a single character; the
  // latter falls back to its bytes.
  for (int i = 0; i != -1; i = sym[i].next) {
    const std::string piece(t.substr(sym[i].off, sym[i].len));
    auto it = token_to_id_.find(piece);
    if (it != token_to_id_.end()) {
      out.push_back(it->second);
      continue;
    }
    for (char c : piece) {
      const int32_t id = byte_ids_[uint8_t(c)];
      if (id >= 0) out.push_back(id);
    }
  }
}

}  // namespace parallama
