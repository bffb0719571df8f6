#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/spm.h"
#include "tokenizer/unicode.h"

namespace parallama {

namespace {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
uint32_t attr_from_type(int64_t t) {
  switch (t) {
    case 1: return kAttrNormal;
    case 2: return kAttrUnknown;
    case 3: return kAttrControl;
    case 4: return kAttrUserDefined;
    case 5: return kAttrUnused;
    case 6: return kAttrByte;
    default: return kAttrUndefined;
  }
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

const char* const kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

// Texts llama.cpp treats as end of generation (llama_vocab::impl::load).
const char* const kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~[",
};
const char* const kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>",
};
const char* const kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
const char* const kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
const char* const kFimSepTexts[] = {"<|file_sep|>"};

template <size_t N>
bool in_list(const std::string& s, const char* const (&list)[N]) {
  for (const char* t : list)
    if (s == t) return true;
  return false;
}

// Reads an optional token id key; out-of-range values keep the default, as llama.cpp does.
void read_id(const GgufFile& f, const char* key, int32_t n_vocab, int32_t& id) {
  const GgufValue* v = f.find(key);
  if (!v) return;
  if (!v->is_integer()) PL_THROW(f.path() << ": " << key << " is not an integer");
  const int64_t x = v->as_int();
  if (x < 0 || x >= n_vocab) {
    std::fprintf(stderr, "warning: %s: %s = %lld is out of the vocab range, using %d\n",
                 f.path().c_str(), key, static_cast<long long>(x), id);
    return;
  }
  id = int32_t(x);
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  const std::string& path = f.path();

  if (!f.has("tokenizer.ggml.model"))
    PL_THROW(path << ": tokenizer.ggml.model is missing: the file has no tokenizer");
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (!f.has("tokenizer.ggml.tokens"))
    PL_THROW(path << ": tokenizer.ggml.tokens is missing: the file has no vocabulary");
  std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (tokens.empty()) PL_THROW(path << ": tokenizer.ggml.tokens is empty");
  if (tokens.size() > size_t(INT32_MAX)) PL_THROW(path << ": tokenizer.ggml.tokens is too large");
  const auto n = int32_t(tokens.size());

  std::vector<double> scores;
  if (f.has("tokenizer.ggml.scores")) {
    scores = f.get_float_array("tokenizer.ggml.scores");
    if (scores.size() != tokens.size())
      PL_THROW(path << ": tokenizer.ggml.scores has " << scores.size() << " entries but there are "
                    << tokens.size() << " tokens");
  }
  std::vector<int64_t> types;
  if (f.has("tokenizer.ggml.token_type")) {
    types = f.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != tokens.size())
      PL_THROW(path << ": tokenizer.ggml.token_type has " << types.size()
                    << " entries but there are " << tokens.size() << " tokens");
  }

  // Per-type defaults (llama_vocab::impl::load), before the file's keys override them.
  PreTokenizerConfig pre;
  if (model == "gpt2") {
    t->type_ = Type::Bpe;
    t->bos_ = 11;
    t->eos_ = 11;
    t->pre_name_ = f.get_string("tokenizer.ggml.pre", "");
    pre = pre_tokenizer_config(t->pre_name_);
    if (t->pre_name_.empty()) {
      std::fprintf(stderr, "warning: %s: tokenizer.ggml.pre is missing, using the 'default' "
                   "pre-tokenizer (tokenization may be degraded)\n", path.c_str());
    } else if (!pre.known) {
      std::fprintf(stderr, "warning: %s: unknown tokenizer.ggml.pre '%s', using the 'default' "
                   "pre-tokenizer\n", path.c_str(), t->pre_name_.c_str());
    }
    t->add_bos_ = pre.add_bos_default;
    if (pre.no_bos) t->bos_ = -1;
  } else if (model == "llama") {
    t->type_ = Type::Spm;
    t->bos_ = 1;
    t->eos_ = 2;
    t->unk_ = 0;
    t->add_bos_ = true;
    t->add_space_prefix_ = true;
  } else {
    PL_THROW(path << ": unsupported tokenizer.ggml.model '" << model
                  << "' (supported: gpt2, llama)");
  }
  t->add_space_prefix_ = f.get_bool("tokenizer.ggml.add_space_prefix", t->add_space_prefix_);

  t->texts_.resize(n);
  t->scores_.assign(n, 0.0f);
  t->attrs_.assign(n, kAttrNormal);
  t->token_to_id_.reserve(n);
  for (int32_t i = 0; i < n; ++i) {
    std::string& w = tokens[i];
    if (w.empty()) w = "[EMPTY_" + std::to_string(i) + "]";  // llama.cpp's placeholder
    t->token_to_id_[w] = i;  // a duplicate text maps to its last id
    t->texts_[i] = std::move(w);
    if (!scores.empty()) t->scores_[i] = float(scores[i]);
    if (!types.empty()) t->attrs_[i] = attr_from_type(types[i]);
  }

  for (int32_t* id : {&t->bos_, &t->eos_, &t->unk_})
    if (*id >= n) *id = -1;
  int32_t fim_pad = -1, fim_rep = -1, fim_sep = -1;
  read_id(f, "tokenizer.ggml.bos_token_id", n, t->bos_);
  read_id(f, "tokenizer.ggml.eos_token_id", n, t->eos_);
  read_id(f, "tokenizer.ggml.eot_token_id", n, t->eot_);
  read_id(f, "tokenizer.ggml.eom_token_id", n, t->eom_);
  read_id(f, "tokenizer.ggml.unknown_token_id", n, t->unk_);
  read_id(f, "tokenizer.ggml.fim_pad_token_id", n, fim_pad);
  read_id(f, "tokenizer.ggml.fim_rep_token_id", n, fim_rep);
  read_id(f, "tokenizer.ggml.fim_sep_token_id", n, fim_sep);
  t->add_bos_ = f.get_bool("tokenizer.ggml.add_bos_token", t->add_bos_);
  t->add_eos_ = f.get_bool("tokenizer.ggml.add_eos_token", t->add_eos_);

  // Find special tokens by their text where the metadata does not name them, and
  // make sure they are control tokens (llama.cpp does the same). Id order keeps
  // the choice deterministic when several texts qualify.
  auto& attrs = t->attrs_;
  for (int32_t i = 0; i < n; ++i) {
    const std::string& s = t->texts_[i];
    if (t->token_to_id_.at(s) != i) continue;  // shadowed duplicate
    auto detect = [&](int32_t& id, bool match) {
      if (id == -1 && match) {
        id = i;
        attrs[i] |= kAttrControl;
      }
    };
    detect(t->eot_, in_list(s, kEotTexts));
    detect(t->eom_, s == "<|eom_id|>");
    detect(fim_pad, in_list(s, kFimPadTexts));
    detect(fim_rep, in_list(s, kFimRepTexts));
    detect(fim_sep, in_list(s, kFimSepTexts));
  }
  for (int32_t i = 0; i < n; ++i)  // control tokens named "...unused..." are unused
    if ((attrs[i] & kAttrControl) && t->texts_[i].find("unused") != std::string::npos)
      attrs[i] |= kAttrUnused;

  // End-of-generation set.
  auto& eog = t->eog_;
  for (int32_t id : {fim_pad, fim_rep, fim_sep})
    if (id >= 0) eog.insert(id);
  for (int32_t i = 0; i < n; ++i) {
    const std::string& s = t->texts_[i];
    if (t->token_to_id_.at(s) != i) continue;
    if (in_list(s, kEogTexts)) {
      eog.insert(i);
      attrs[i] |= kAttrControl;
    }
    // gpt-oss: these must always be rendered.
    if (s == "<|channel|>" || s == "<|message|>" || s == "<|start|>" || s == "<|constrain|>")
      attrs[i] = kAttrUserDefined;
  }
  for (int32_t id : {t->eos_, t->eot_, t->eom_})
    if (id >= 0) eog.insert(id);
  {
    // o200k_harmony / solar-open: "<|end|>" ends a message, not the generation.
    bool has_return = false, has_call = false, has_flush = false;
    int32_t end_id = -1;
    for (int32_t id : eog) {
      const std::string& s = t->texts_[id];
      if (s == "<|return|>") has_return = true;
      else if (s == "<|call|>" || s == "<|calls|>") has_call = true;
      else if (s == "<|flush|>") has_flush = true;
      else if (s == "<|end|>") end_id = id;
    }
    if (end_id >= 0 && has_call && (has_return || has_flush)) {
      eog.erase(end_id);
      attrs[end_id] = kAttrUserDefined;
    }
    // gemma4 / plamo: "</s>" is an ordinary token there.
    bool normal_s = false;
    int32_t s_id = -1;
    for (int32_t id : eog) {
      const std::string& s = t->texts_[id];
      if (s == "<|tool_response>" || s == "<|plamo:eos|>") normal_s = true;
      else if (s == "</s>") s_id = id;
    }
    if (normal_s && s_id >= 0) {
      eog.erase(s_id);
      attrs[s_id] = kAttrNormal;
    }
  }

  // Special tokens split out before tokenization, longest text first.
  for (int32_t i = 0; i < n; ++i)
    if (attrs[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) t->special_.push_back(i);
  std::stable_sort(t->special_.begin(), t->special_.end(), [&](int32_t a, int32_t b) {
    return t->texts_[a].size() > t->texts_[b].size();
  });

  if (t->type_ == Type::Bpe) {
    if (!f.has("tokenizer.ggml.merges"))
      PL_THROW(path << ": tokenizer.ggml.merges is missing: a gpt2 (BPE) tokenizer needs merges");
    t->pre_ = std::make_unique<PreTokenizer>(pre.regexes);
    t->bpe_ = std::make_unique<BpeModel>(f.get_string_array("tokenizer.ggml.merges"),
                                         t->token_to_id_, pre.ignore_merges);
  } else {
    t->spm_ = std::make_unique<SpmModel>(t->token_to_id_, t->scores_, t->unk_);
  }

  t->pieces_.resize(n);
  for (int32_t i = 0; i < n; ++i) t->pieces_[i] = t->make_piece(i);

  // Phi-3 GGUFs lack the strip flags its special tokens need (llama.cpp sets them by name).
  std::string name = f.get_string("general.name", "");
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (int32_t id : t->special_) attrs[id] |= kAttrRstrip;
    if (int32_t id = t->token_id("</s>"); id >= 0) attrs[id] |= kAttrRstrip;
    for (const char* s : {"<unk>", "<s>", "<|endoftext|>"})
      if (int32_t id = t->token_id(s); id >= 0) attrs[id] &= ~uint32_t(kAttrRstrip);
  }
  return t;
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= n_vocab())
    PL_THROW("token id " << id << " is out of range (vocab has " << n_vocab() << " tokens)");
}

int32_t Tokenizer::token_id(std::string_view text) const {
  auto it = token_to_id_.find(std::string(text));
  return it == token_to_id_.end() ? -1 : it->second;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(id);
  return texts_[id];
}

uint32_t Tokenizer::token_attr(int32_t id) const {
  check_id(id);
  return attrs_[id];
}

std::string Tokenizer::make_piece(int32_t id) const {
  const uint32_t a = attrs_[id];
  const std::string& text = texts_[id];
  if (a & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return text;
  if (a & kAttrNormal) {
    if (type_ == Type::Spm) {
      std::string s = text;
      replace_all(s, kSpace, " ");
      return s;
    }
    // Byte-level BPE: every code point stands for one byte.
    std::string s;
    for (uint32_t c : utf8_to_cpts(text)) {
      const int b = bpe_cpt_to_byte(c);
      if (b >= 0) {
        s.push_back(char(b));
      } else {  // not a byte-level vocab entry: llama.cpp's marker
        const std::string u = cpt_to_utf8(c);
        s += "[UNK_BYTE_0x";
        for (unsigned char x : u) {
          char hex[3];
          std::snprintf(hex, sizeof(hex), "%02x", x);
          s += hex;
        }
        s += text + "]";
      }
    }
    return s;
  }
  if (a & kAttrByte) {  // "<0xAB>"
    if (text.size() >= 5 && std::isxdigit((unsigned char)text[3]) && std::isxdigit((unsigned char)text[4]))
      return std::string(1, char(std::stoi(text.substr(3, 2), nullptr, 16)));
    return "";
  }
  return "";  // unused / undefined tokens render as nothing
}

std::string Tokenizer::token_to_piece(int32_t id) const {
  check_id(id);
  return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  bool strip = add_space_prefix_;  // only the very first piece loses a leading space
  for (int32_t id : ids) {
    check_id(id);
    const std::string& p = pieces_[id];
    if (strip && !p.empty() && p[0] == ' ') {
      out.append(p, 1, std::string::npos);
    } else {
      out += p;
    }
    strip = false;
  }
  return out;
}

std::vector<Tokenizer::Fragment> Tokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});
  auto is_space = [](char c) { return std::isspace((unsigned char)c) != 0; };
  for (int32_t sid : special_) {
    const uint32_t a = attrs_[sid];
    // Control and unknown tokens only count when asked; user-defined ones always do.
    if (!parse_special && (a & (kAttrControl | kAttrUnknown))) continue;
    const std::string& st = texts_[sid];
    std::vector<Fragment> next;
    next.reserve(frags.size() + 2);
    for (const Fragment& fr : frags) {
      if (fr.token >= 0) {
        next.push_back(fr);
        continue;
      }
      size_t off = fr.off, len = fr.len;
      while (len > 0) {
        const size_t hit = text.substr(0, off + len).find(st, off);
        if (hit == std::string_view::npos) break;
        size_t left_len = hit - off;
        if (a & kAttrLstrip)
          while (left_len > 0 && is_space(text[off + left_len - 1])) --left_len;
        if (left_len > 0) next.push_back({-1, off, left_len});
        next.push_back({sid, 0, 0});
        size_t r_off = hit + st.size();
        size_t r_len = off + len - r_off;
        if (a & kAttrRstrip)
          while (r_len > 0 && is_space(text[r_off])) ++r_off, --r_len;
        off = r_off;
        len = r_len;
      }
      if (len > 0) next.push_back({-1, off, len});
    }
    frags.swap(next);
  }
  return frags;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  const std::vector<Fragment> frags = partition(text, parse_special);
  if (add_special && add_bos_ && bos_ >= 0) out.push_back(bos_);

  if (type_ == Type::Spm) {
    bool prev_special = true;  // the text start counts as "after a special token"
    for (const Fragment& fr : frags) {
      if (fr.token >= 0) {
        out.push_back(fr.token);
        prev_special = true;
        continue;
      }
      std::string s;
      if (add_space_prefix_ && prev_special) s = " ";
      s.append(text.substr(fr.off, fr.len));
      replace_all(s, " ", kSpace);
      spm_->encode(s, out);
      prev_special = false;
    }
  } else {
    for (const Fragment& fr : frags) {
      if (fr.token >= 0) {
        out.push_back(fr.token);
        continue;
      }
      for (const std::string& w : pre_->split(text.substr(fr.off, fr.len))) bpe_->encode_word(w, out);
    }
  }

  if (add_special && add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

}  // namespace parallama
