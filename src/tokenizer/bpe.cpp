#include "tokenizer/bpe.h"

#include <queue>

#include "core/check.h"
#include "tokenizer/unicode.h"

namespace parallama {

namespace {

constexpr size_t kMaxCacheEntries = 1 << 16;

using Symbol = MergeSymbol;

struct Bigram {
  int left;
  int right;
  int rank;
  std::string text;  // left + right at the time it was queued
};

// Lowest rank first; on ties, leftmost first (llama.cpp's order).
struct BigramAfter {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

BpeModel::BpeModel(const std::vector<std::string>& merges,
                   const std::unordered_map<std::string, int32_t>& token_to_id, bool ignore_merges)
    : token_to_id_(token_to_id), n_merges_(merges.size()), ignore_merges_(ignore_merges) {
  ranks_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i];
    // Split at the first space after position 0, as llama.cpp does (a part may start with ' ').
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (sp == std::string::npos || sp + 1 >= m.size())
      PL_THROW("tokenizer.ggml.merges[" << i << "] = '" << m << "' is not of the form 'left right'");
    const std::string left = m.substr(0, sp), right = m.substr(sp + 1);
    if (!token_to_id.count(left))
      PL_THROW("tokenizer.ggml.merges[" << i << "] = '" << m << "' refers to '" << left
                                        << "', which is not in tokenizer.ggml.tokens");
    if (!token_to_id.count(right))
      PL_THROW("tokenizer.ggml.merges[" << i << "] = '" << m << "' refers to '" << right
                                        << "', which is not in tokenizer.ggml.tokens");
    std::string key = left;
    key.push_back('\0');
    key += right;
    ranks_.emplace(std::move(key), int32_t(i));  // first occurrence keeps the best rank
  }
}

int BpeModel::rank(std::string_view left, std::string_view right) const {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key.append(left);
  key.push_back('\0');
  key.append(right);
  auto it = ranks_.find(key);
  return it == ranks_.end() ? -1 : it->second;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  std::string encoded;
  encoded.reserve(word.size() * 2);
  for (char c : word) encoded += byte_to_bpe_char(uint8_t(c));

  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(encoded);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(encoded, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(std::move(encoded), std::move(ids));
}

void BpeModel::merge_word(const std::string& w, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    auto it = token_to_id_.find(w);
    if (it != token_to_id_.end()) {
      out.push_back(it->second);
      return;
    }
  }

  // One symbol per UTF-8 character of the encoded word (= one per input byte).
  std::vector<Symbol> sym = utf8_symbols(w);
  auto text = [&](int i) { return std::string_view(w).substr(sym[i].off, sym[i].len); };

  std::priority_queue<Bigram, std::vector<Bigram>, BigramAfter> queue;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const int rk = rank(text(l), text(r));
    if (rk < 0) return;
    std::string t(text(l));
    t += text(r);
    queue.push({l, r, rk, std::move(t)});
  };
  for (int i = 1; i < int(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    Bigram b = queue.top();
    queue.pop();
    Symbol& L = sym[b.left];
    Symbol& R = sym[b.right];
    if (L.len == 0 || R.len == 0) continue;
    // Stale entry: one side has changed since it was queued.
    if (L.len + R.len != b.text.size() || w.compare(L.off, L.len + R.len, b.text) != 0) continue;
    if (L.off + L.len != R.off) continue;
    L.len += R.len;
    R.len = 0;
    L.next = R.next;
    if (R.next >= 0) sym[R.next].prev = b.left;
    try_add(L.prev, b.left);
    try_add(b.left, L.next);
  }

  for (int i = 0; i != -1 && !sym.empty(); i = sym[i].next) {
    if (sym[i].len == 0) continue;
    const std::string piece(text(i));
    auto it = token_to_id_.find(piece);
    if (it != token_to_id_.end()) {
      out.push_back(it->second);
      continue;
    }
    // llama.cpp's fallback: look each byte of the (encoded) text up on its own; skip misses.
    for (char c : piece) {
      auto bt = token_to_id_.find(std::string(1, c));
      if (bt != token_to_id_.end()) out.push_back(bt->second);
    }
  }
}

}  // namespace parallama
