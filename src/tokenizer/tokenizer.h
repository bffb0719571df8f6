// Tokenizer built from a GGUF file's tokenizer.* metadata, matching llama.cpp
// token for token. Two vocab types are supported:
//   "gpt2"  byte-level BPE with a regex pre-tokenizer chosen by tokenizer.ggml.pre
//   "llama" SentencePiece-style score merging with <0xXX> byte fallback
// Special tokens (control, user-defined, unknown) are split out of the text
// first, longest first, like llama.cpp's tokenizer_st_partition.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/stream_decoder.h"  // StreamDecoder comes with the Tokenizer API

namespace parallama {

class GgufFile;
class PreTokenizer;
class BpeModel;
class SpmModel;

// Token attributes, as llama.cpp derives them from tokenizer.ggml.token_type.
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrLstrip = 1u << 7,  // swallow whitespace before the token when splitting specials
  kAttrRstrip = 1u << 8,  // ... and after it
};

class Tokenizer {
 public:
  enum class Type { Bpe, Spm };

  // Throws Error on a missing or inconsistent vocabulary.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& f);
  ~Tokenizer();

  // add_special: prepend BOS / append EOS where the model asks for them
  // (tokenizer.ggml.add_bos_token / add_eos_token, llama.cpp's defaults otherwise).
  // parse_special: recognise control-token texts such as "<|im_start|>" in `text`;
  // user-defined tokens are always recognised, as in llama.cpp.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // Bytes the token stands for; special tokens render as their text, unused ones
  // as "". The bytes may be part of a UTF-8 character. Throws Error on a bad id.
  std::string token_to_piece(int32_t id) const;
  // Concatenated pieces; drops the leading space an SPM vocab's encoder added
  // (llama_detokenize with special tokens rendered, without space clean-up).
  std::string decode(const std::vector<int32_t>& ids) const;

  int32_t n_vocab() const { return int32_t(texts_.size()); }
  int32_t bos_id() const { return bos_; }  // -1 if none
  int32_t eos_id() const { return eos_; }
  int32_t eot_id() const { return eot_; }
  bool is_eog(int32_t id) const { return eog_.count(id) > 0; }
  const std::unordered_set<int32_t>& eog_ids() const { return eog_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  int32_t token_id(std::string_view text) const;  // -1 if absent
  const std::string& token_text(int32_t id) const;  // raw vocab entry; throws on a bad id
  uint32_t token_attr(int32_t id) const;            // TokenAttr bits; throws on a bad id
  Type type() const { return type_; }
  const std::string& pre_name() const { return pre_name_; }

 private:
  Tokenizer();
  struct Fragment {
    int32_t token;  // >= 0: a special token; -1: raw text [off, off + len)
    size_t off;
    size_t len;
  };
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  std::string make_piece(int32_t id) const;
  void check_id(int32_t id) const;

  Type type_ = Type::Bpe;
  std::string pre_name_;
  std::vector<std::string> texts_;   // [n_vocab]
  std::vector<float> scores_;        // [n_vocab]
  std::vector<uint32_t> attrs_;      // [n_vocab] TokenAttr bits
  std::vector<std::string> pieces_;  // [n_vocab] token_to_piece cache
  std::unordered_map<std::string, int32_t> token_to_id_;
  std::vector<int32_t> special_;     // control/user-defined/unknown ids, longest text first
  std::unordered_set<int32_t> eog_;

  int32_t bos_ = -1, eos_ = -1, eot_ = -1, eom_ = -1, unk_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;

  std::unique_ptr<PreTokenizer> pre_;  // BPE only
  std::unique_ptr<BpeModel> bpe_;      // BPE only
  std::unique_ptr<SpmModel> spm_;      // SPM only
};

}  // namespace parallama
