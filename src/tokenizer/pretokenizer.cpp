#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdio>
#include <unordered_map>

#include "core/check.h"
#include "tokenizer/unicode.h"

namespace parallama {

namespace {

// Regex lists as llama.cpp (llama-vocab.cpp) uses them, per pre-tokenizer family.
// They are data taken from the models' tokenizer.json files; llama.cpp's edits
// (case-insensitive groups spelled out) are kept so the splits agree.
const char* const kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
const char* const kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen35 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kJais2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1})";
const char* const kDeepseekLetters = "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";
const char* const kDeepseekPunct = "\\s?[!-/:-~！-／：-～‘-‟　-。]+";
const char* const kDeepseek3Main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kPoro = R"( ?[^(\s|.,!?…。，、।۔،)]+)";
const char* const kTekken =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kGpt4o =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kSeedCoder =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kBailing =
    R"('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";
const char* const kUfakzeka =
    R"([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kExaoneMoe =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)";
const char* const kMinicpm5 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class Family {
  Default, Gpt2, Llama3, DeepseekLlm, DeepseekCoder, Deepseek3, Falcon, Starcoder, Qwen2, Qwen35,
  Poro, Viking, Tekken, Gpt4o, SeedCoder, Bailing, Ufakzeka, ExaoneMoe, Minicpm5, Jais2, Laguna,
};

std::vector<std::string> family_regexes(Family f) {
  switch (f) {
    case Family::Default:
      return {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"};
    case Family::Gpt2: return {kGpt2};
    case Family::Llama3: return {kLlama3};
    case Family::DeepseekLlm:
      return {"[\r\n]", kDeepseekLetters, kDeepseekPunct, R"(\s+$)", "[一-龥ࠀ-一가-퟿]+", R"(\p{N}+)"};
    case Family::DeepseekCoder:
      return {"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", "[一-龥ࠀ-一가-퟿]+", R"(\p{N})"};
    case Family::Deepseek3: return {R"(\p{N}{1,3})", "[一-龥぀-ゟ゠-ヿ]+", kDeepseek3Main};
    case Family::Falcon:
      return {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"};
    case Family::Starcoder: return {R"(\p{N})", kGpt2};
    case Family::Qwen2: return {kQwen2};
    case Family::Qwen35: return {kQwen35};
    case Family::Poro: return {kPoro};
    case Family::Viking: return {kPoro, R"(\p{N})"};
    case Family::Tekken: return {kTekken};
    case Family::Gpt4o: return {kGpt4o};
    case Family::SeedCoder: return {kSeedCoder};
    case Family::Bailing: return {kBailing};
    case Family::Ufakzeka: return {kUfakzeka};
    case Family::ExaoneMoe: return {kExaoneMoe};
    case Family::Minicpm5: return {R"(\p{N}{1,3})", kMinicpm5};
    case Family::Jais2: return {kJais2};
    case Family::Laguna: return {R"([^\n]+|[\n]+)", kQwen2};
  }
  return {};
}

struct NameInfo {
  Family family;
  bool clean_spaces = true;
  bool ignore_merges = false;
  bool add_bos = false;
  bool no_bos = false;
};

// Name -> family and flags, following llama_vocab::impl::load.
const std::unordered_map<std::string, NameInfo>& name_table() {
  static const std::unordered_map<std::string, NameInfo> t = [] {
    std::unordered_map<std::string, NameInfo> m;
    auto add = [&](std::initializer_list<const char*> names, NameInfo info) {
      for (const char* n : names) m.emplace(n, info);
    };
    add({"default"}, {Family::Default});
    add({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
         "jina-v5-nano"},
        {Family::Llama3, true, true, true});
    add({"dbrx", "smaug-bpe"}, {Family::Llama3});
    add({"deepseek-llm"}, {Family::DeepseekLlm, false});
    add({"deepseek-coder"}, {Family::DeepseekCoder, false});
    add({"deepseek-v3", "hunyuan-dense", "hy_v4", "joyai-llm"}, {Family::Deepseek3, false});
    add({"falcon"}, {Family::Falcon});
    add({"mpt", "olmo", "jais", "exaone4", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat",
         "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "jina-v1-en",
         "jina-v2-code", "roberta-bpe"},
        {Family::Gpt2});
    add({"trillion", "granite-docling"}, {Family::Gpt2, false});
    add({"starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"}, {Family::Starcoder});
    add({"command-r", "smollm"}, {Family::Starcoder, false});
    add({"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open"},
        {Family::Qwen2, false});
    add({"megrez", "stablelm2"}, {Family::Qwen2});
    add({"qwen35"}, {Family::Qwen35, false});
    add({"poro-chat"}, {Family::Poro, false});
    add({"bloom", "gpt3-finnish"}, {Family::Poro});
    add({"chatglm-bpe"}, {Family::Llama3, true, false, false, true});
    add({"glm4", "glm5"}, {Family::Llama3, true, true, false, true});
    add({"viking"}, {Family::Viking, false});
    add({"tekken"}, {Family::Tekken, false, true, true});
    add({"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, {Family::Gpt4o, false});
    add({"seed-coder"}, {Family::SeedCoder, false});
    add({"bailingmoe", "bailingmoe2", "llada-moe"}, {Family::Bailing, false});
    add({"grok-2"}, {Family::Qwen2, false});
    add({"ufakzeka"}, {Family::Ufakzeka, false});
    add({"exaone-moe"}, {Family::ExaoneMoe});
    add({"minicpm5"}, {Family::Minicpm5, true, true});
    add({"jais-2"}, {Family::Jais2});
    add({"laguna"}, {Family::Laguna, false});
    return m;
  }();
  return t;
}

// llama.cpp's whitespace set (Unicode White_Space), as class items.
const char* const kWhitespaceItems =
    R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

}  // namespace

PreTokenizerConfig pre_tokenizer_config(const std::string& pre_name) {
  PreTokenizerConfig c;
  c.pre_name = pre_name;
  const auto& t = name_table();
  auto it = t.find(pre_name);
  NameInfo info{Family::Default};
  if (it != t.end()) {
    info = it->second;
  } else {
    c.known = false;
  }
  c.regexes = family_regexes(info.family);
  c.clean_spaces = info.clean_spaces;
  c.ignore_merges = info.ignore_merges;
  c.add_bos_default = info.add_bos;
  c.no_bos = info.no_bos;
  return c;
}

std::string rewrite_whitespace_classes(const std::string& re) {
  std::string out;
  out.reserve(re.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < re.size(); ++i) {
    const char c = re[i];
    if (c == '\\' && i + 1 < re.size()) {
      const char n = re[i + 1];
      if (n == 's') {
        if (in_class) {
          out += kWhitespaceItems;
        } else {
          out += '[';
          out += kWhitespaceItems;
          out += ']';
        }
      } else if (n == 'S') {
        PL_CHECK_MSG(!in_class, "\\S inside a character class is not supported: " << re);
        out += "[^";
        out += kWhitespaceItems;
        out += ']';
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < re.size() && re[i + 1] == '^') out += re[++i];
      if (i + 1 < re.size() && re[i + 1] == ']') out += re[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

struct PreTokenizer::Impl {
  std::vector<pcre2_code*> codes;
  ~Impl() {
    for (auto* c : codes) pcre2_code_free(c);
  }
};

PreTokenizer::PreTokenizer(const std::vector<std::string>& regexes) : impl_(std::make_unique<Impl>()) {
  for (const auto& re : regexes) {
    const std::string pattern = rewrite_whitespace_classes(re);
    int err = 0;
    PCRE2_SIZE err_off = 0;
    // UTF for code points and \p{..}; no UCP: llama.cpp's \d and [a-z] stay ASCII, and
    // \s is spelled out above. DOLLAR_ENDONLY: '$' must not match before a final '\n'.
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      PL_THROW("pre-tokenizer regex failed to compile at offset " << err_off << ": "
                                                                  << reinterpret_cast<char*>(msg)
                                                                  << " (regex: " << re << ")");
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back to the interpreter
    impl_->codes.push_back(code);
  }
}

PreTokenizer::~PreTokenizer() = default;

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  const std::vector<uint32_t> cpts = utf8_to_cpts(text);
  const size_t n = cpts.size();

  // Subject for PCRE2: valid UTF-8 of the decoded code points (surrogates, which
  // the lenient decoder lets through, are matched as U+FFFD). byte_of[i] is where
  // code point i starts; cpt_at maps a byte boundary back to a code point index.
  std::string subj;
  subj.reserve(text.size() + 8);
  std::vector<size_t> byte_of(n + 1);
  for (size_t i = 0; i < n; ++i) {
    byte_of[i] = subj.size();
    const uint32_t c = cpts[i];
    append_utf8(subj, (c >= 0xD800 && c <= 0xDFFF) ? 0xFFFD : c);
  }
  byte_of[n] = subj.size();
  std::vector<uint32_t> cpt_at(subj.size() + 1, 0);
  for (size_t i = 0; i <= n; ++i) cpt_at[byte_of[i]] = uint32_t(i);

  // Fragments as [start, end) code point ranges.
  std::vector<std::pair<size_t, size_t>> frags;
  if (n > 0) frags.emplace_back(0, n);

  for (pcre2_code* code : impl_->codes) {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
    PL_CHECK(md != nullptr);
    std::vector<std::pair<size_t, size_t>> next;
    next.reserve(frags.size() * 2);
    for (const auto& [fs, fe] : frags) {
      // Each fragment is its own subject: lookarounds and '$' must not see past it.
      const auto* base = reinterpret_cast<PCRE2_SPTR>(subj.data() + byte_of[fs]);
      const size_t len = byte_of[fe] - byte_of[fs];
      size_t pos = 0;    // byte offset inside the fragment
      size_t emitted = 0;
      while (pos < len) {
        const int rc = pcre2_match(code, base, len, pos, PCRE2_NOTEMPTY | PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        PL_CHECK_MSG(rc >= 0, "pre-tokenizer regex match failed with PCRE2 error " << rc);
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t ms = ov[0], me = ov[1];
        if (ms > emitted) next.emplace_back(cpt_at[byte_of[fs] + emitted], cpt_at[byte_of[fs] + ms]);
        next.emplace_back(cpt_at[byte_of[fs] + ms], cpt_at[byte_of[fs] + me]);
        emitted = pos = me;
      }
      if (emitted < len) next.emplace_back(cpt_at[byte_of[fs] + emitted], fe);
    }
    pcre2_match_data_free(md);
    frags.swap(next);
  }

  std::vector<std::string> words;
  words.reserve(frags.size());
  for (const auto& [fs, fe] : frags) {
    std::string w;
    for (size_t i = fs; i < fe; ++i) append_utf8(w, cpts[i]);
    words.push_back(std::move(w));
  }
  return words;
}

}  // namespace parallama
