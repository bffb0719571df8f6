// TextStream: streamed text with stop strings, against expectations worked out
// from the strings themselves (token boundaries come from the tokenizer).
#include "server/text_stream.h"

#include <gtest/gtest.h>

#include "gguf/gguf_file.h"
#include "test_util.h"

using namespace parallama;

namespace {

struct Tok {
  std::unique_ptr<GgufFile> f;
  std::unique_ptr<Tokenizer> t;
  Tok() {
    const std::string m = test::default_model_path();
    if (m.empty()) throw std::runtime_error(test::missing_model_message());
    f = GgufFile::open(m);
    t = Tokenizer::from_gguf(*f);
  }
};

// Pushes the tokens of `text` one by one; checks at every step that what was
// released never contains a stop string and is a prefix of `want`.
std::string stream(const Tokenizer& tok, const std::string& text, std::vector<std::string> stop,
                   const std::string& want, bool* stopped) {
  TextStream ts(tok, stop);
  std::string out;
  for (int32_t id : tok.encode(text, false, false)) {
    out += ts.push(id);
    for (const auto& s : stop) EXPECT_EQ(out.find(s), std::string::npos) << out;
    EXPECT_EQ(want.compare(0, out.size(), out), 0) << "released '" << out << "' is not a prefix of '" << want << "'";
  }
  out += ts.finish();
  *stopped = ts.stopped();
  EXPECT_EQ(out, ts.text());
  return out;
}

}  // namespace

TEST(TextStream, StopStringsAcrossTokensAndHeldBackPrefixes) {
  Tok k;
  const Tokenizer& t = *k.t;
  bool stopped = false;
  const std::string text = "The quick brown fox jumps over the lazy dog. Done!";
  EXPECT_EQ(stream(t, text, {}, text, &stopped), text);
  EXPECT_FALSE(stopped);
  // Spanning several tokens.
  EXPECT_EQ(stream(t, text, {"over the lazy"}, "The quick brown fox jumps ", &stopped), "The quick brown fox jumps ");
  EXPECT_TRUE(stopped);
  // Inside one token, and at the very start.
  EXPECT_EQ(stream(t, text, {"uic"}, "The q", &stopped), "The q");
  EXPECT_EQ(stream(t, text, {"The"}, "", &stopped), "");
  // The earliest occurrence wins, whichever is listed first.
  EXPECT_EQ(stream(t, text, {"dog", "brown"}, "The quick ", &stopped), "The quick ");
  // A prefix that never completes is released at the end.
  EXPECT_EQ(stream(t, text, {"Done!?"}, text, &stopped), text);
  EXPECT_FALSE(stopped);
  // A multi-byte character right before the stop string.
  const std::string u = "Caf\xc3\xa9 au lait \xf0\x9f\x98\x80 end";
  EXPECT_EQ(stream(t, u, {" end"}, "Caf\xc3\xa9 au lait \xf0\x9f\x98\x80", &stopped), "Caf\xc3\xa9 au lait \xf0\x9f\x98\x80");
  EXPECT_TRUE(stopped);
  // After a stop nothing more comes out.
  TextStream ts(t, {"b"});
  const auto ids = t.encode("a b c", false, false);
  std::string out;
  for (int32_t id : ids) out += ts.push(id);
  EXPECT_EQ(out, "a ");
  EXPECT_EQ(ts.matched(), "b");
  EXPECT_EQ(ts.push(ids[0]), "");
  EXPECT_EQ(ts.finish(), "");
}

// Token by token, with every fragment one token of SmolLM2's vocabulary (checked
// first), so each push's expected output is worked out from the strings alone.
namespace {

class TextStreamTokens : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = test::default_model_path();
    if (path.empty()) return;
    file_ = GgufFile::open(path).release();
    tok_ = Tokenizer::from_gguf(*file_).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete file_;
    tok_ = nullptr;
    file_ = nullptr;
  }
  void SetUp() override {
    if (!tok_) FAIL() << test::missing_model_message();
  }

  // One token per fragment: "\xC3"-style single bytes go by their GPT-2 byte
  // character (`byte_chars`, same order), anything else through encode().
  static void tokens(std::vector<int32_t>* ids, const std::vector<std::string>& frags) {
    for (const auto& f : frags) {
      std::vector<int32_t> one;
      if (f == "\xC3") one = {tok_->token_id("\xC3\x83")};       // 'Ã' stands for byte 0xC3
      else if (f == "\xA9") one = {tok_->token_id("\xC2\xA9")};  // '©' stands for byte 0xA9
      else one = tok_->encode(f, false, false);
      ASSERT_EQ(one.size(), 1u) << "'" << f << "' is not one token (the test expects SmolLM2's vocabulary)";
      ASSERT_GE(one[0], 0) << "no byte token for '" << f << "'";
      ASSERT_EQ(tok_->token_to_piece(one[0]), f);
      ids->push_back(one[0]);
    }
  }

  struct Run {
    std::vector<std::string> pushed;  // what each push returned
    std::string finished;             // what finish() returned
    std::string text;
    bool stopped = false;
    std::string matched;
  };
  // Pushes `ids` one by one, then finishes. At every point the released text is
  // text(), holds no stop string, and is a prefix of the final text.
  static Run run(const std::vector<int32_t>& ids, const std::vector<std::string>& stop) {
    TextStream ts(*tok_, stop);
    Run r;
    std::string all;
    std::vector<std::string> snapshots;
    for (int32_t id : ids) {
      r.pushed.push_back(ts.push(id));
      all += r.pushed.back();
      snapshots.push_back(all);
      EXPECT_EQ(ts.text(), all);
      for (const auto& s : stop) {
        if (!s.empty()) {
          EXPECT_EQ(all.find(s), std::string::npos) << "'" << all << "' shows stop '" << s << "'";
        }
      }
    }
    r.finished = ts.finish();
    all += r.finished;
    EXPECT_EQ(ts.text(), all);
    for (const auto& snap : snapshots)
      EXPECT_EQ(all.compare(0, snap.size(), snap), 0) << "'" << snap << "' is not a prefix of '" << all << "'";
    r.text = ts.text();
    r.stopped = ts.stopped();
    r.matched = ts.matched();
    return r;
  }
  using V = std::vector<std::string>;

  static GgufFile* file_;
  static Tokenizer* tok_;
};
GgufFile* TextStreamTokens::file_ = nullptr;
Tokenizer* TextStreamTokens::tok_ = nullptr;

}  // namespace

TEST_F(TextStreamTokens, NoStopStringsGivesTheDecodedText) {
  const std::string s = "The quick brown fox jumps over the lazy dog. H\xC3\xA9llo \xF0\x9F\xA6\x99!";
  const auto ids = tok_->encode(s, false, false);
  for (const V& stop : {V{}, V{""}}) {  // empty stop strings are ignored
    const Run r = run(ids, stop);
    std::string all;
    for (const auto& p : r.pushed) all += p;
    EXPECT_EQ(all + r.finished, tok_->decode(ids));
    EXPECT_EQ(r.text, s);
    EXPECT_FALSE(r.stopped);
    EXPECT_EQ(r.matched, "");
  }
}

TEST_F(TextStreamTokens, StopInsideOneToken) {
  std::vector<int32_t> ids;
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"Hello", " world", "!"}));
  const Run r = run(ids, {"orl"});
  // "Hello": its "o" may start "orl". " world": "o world" holds "orl" at 3.
  EXPECT_EQ(r.pushed, (V{"Hell", "o w", ""}));
  EXPECT_EQ(r.finished, "");
  EXPECT_EQ(r.text, "Hello w");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.matched, "orl");
}

TEST_F(TextStreamTokens, StopSpanningTwoTokens) {
  std::vector<int32_t> ids;
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"Hello", " world", "!"}));
  const Run r = run(ids, {"lo wo"});
  EXPECT_EQ(r.pushed, (V{"Hel", "", ""}));
  EXPECT_EQ(r.finished, "");
  EXPECT_EQ(r.text, "Hel");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.matched, "lo wo");
}

TEST_F(TextStreamTokens, StopSpanningThreeTokens) {
  std::vector<int32_t> ids;
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"Hello", " big", " world", "!"}));
  TextStream ts(*tok_, {"o big w"});
  EXPECT_EQ(ts.push(ids[0]), "Hell");
  EXPECT_EQ(ts.push(ids[1]), "");  // "o big" may still become "o big w"
  EXPECT_FALSE(ts.stopped());
  EXPECT_EQ(ts.push(ids[2]), "");
  EXPECT_TRUE(ts.stopped());
  EXPECT_EQ(ts.matched(), "o big w");
  EXPECT_EQ(ts.push(ids[3]), "");
  EXPECT_EQ(ts.finish(), "");
  EXPECT_EQ(ts.text(), "Hell");
  const Run r = run(ids, {"o big w"});  // the invariants along the way
  EXPECT_EQ(r.text, "Hell");
}

TEST_F(TextStreamTokens, StopAtTheVeryStart) {
  std::vector<int32_t> ids;
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"Hello", " world"}));
  const Run r = run(ids, {"Hello"});
  EXPECT_EQ(r.pushed, (V{"", ""}));
  EXPECT_EQ(r.finished, "");
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.matched, "Hello");
}

TEST_F(TextStreamTokens, StopThatNeverMatchesHoldsBackOnlyWhileItCould) {
  std::vector<int32_t> ids;
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"Hello", " w", "o", "r", "ld", "!"}));
  const Run r = run(ids, {" wow"});
  // " w" and " wo" may start " wow"; "r" rules it out.
  EXPECT_EQ(r.pushed, (V{"Hello", "", "", " wor", "ld", "!"}));
  EXPECT_EQ(r.finished, "");
  EXPECT_EQ(r.text, "Hello world!");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.matched, "");
}

TEST_F(TextStreamTokens, PartialStopAtTheEndIsReleasedByFinish) {
  std::vector<int32_t> ids;
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"Until", " the"}));
  const Run r = run(ids, {" the end"});
  EXPECT_EQ(r.pushed, (V{"Until", ""}));
  EXPECT_EQ(r.finished, " the");
  EXPECT_EQ(r.text, "Until the");
  EXPECT_FALSE(r.stopped);
}

TEST_F(TextStreamTokens, EarliestOccurrenceWinsOverListOrder) {
  std::vector<int32_t> ids;
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"cat", " and", " dog"}));
  // "and" is held back; " dog" completes both, "and dog" (listed second) at 0, "dog" at 4.
  Run r = run(ids, {"dog", "and dog"});
  EXPECT_EQ(r.pushed, (V{"cat", " ", ""}));
  EXPECT_EQ(r.text, "cat ");
  EXPECT_EQ(r.matched, "and dog");
  // Both inside one token: " world" has "wor" at 1 and "ld" at 3.
  ids.clear();
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"Hello", " world"}));
  r = run(ids, {"ld", "wor"});
  EXPECT_EQ(r.pushed, (V{"Hello", " "}));
  EXPECT_EQ(r.text, "Hello ");
  EXPECT_EQ(r.matched, "wor");
}

TEST_F(TextStreamTokens, CharacterSplitAcrossTokensThenStop) {
  std::vector<int32_t> ids;
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"c", "af", "\xC3", "\xA9", "!"}));  // "café!", é as two byte tokens
  Run r = run(ids, {"!"});
  EXPECT_EQ(r.pushed, (V{"c", "af", "", "\xC3\xA9", ""}));
  EXPECT_EQ(r.text, "caf\xC3\xA9");
  EXPECT_EQ(r.matched, "!");
  // The stop string starts with the split character: held back once complete.
  r = run(ids, {"\xC3\xA9!"});
  EXPECT_EQ(r.pushed, (V{"c", "af", "", "", ""}));
  EXPECT_EQ(r.text, "caf");
  EXPECT_EQ(r.matched, "\xC3\xA9!");
  // ... and released by finish when the stop never completes.
  const std::vector<int32_t> cafe(ids.begin(), ids.end() - 1);
  r = run(cafe, {"\xC3\xA9!"});
  EXPECT_EQ(r.pushed, (V{"c", "af", "", ""}));
  EXPECT_EQ(r.finished, "\xC3\xA9");
  EXPECT_FALSE(r.stopped);
  // An emoji made of byte tokens, then the stop string.
  ids = tok_->encode("\xF0\x9F\xA6\x99", false, false);
  ASSERT_GT(ids.size(), 1u);
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"!"}));
  r = run(ids, {"!"});
  for (size_t i = 0; i + 2 < ids.size(); ++i) EXPECT_EQ(r.pushed[i], "") << i;
  EXPECT_EQ(r.pushed[ids.size() - 2], "\xF0\x9F\xA6\x99");
  EXPECT_EQ(r.pushed.back(), "");
  EXPECT_EQ(r.text, "\xF0\x9F\xA6\x99");
  EXPECT_TRUE(r.stopped);
}

TEST_F(TextStreamTokens, AfterStopEverythingIsDropped) {
  std::vector<int32_t> ids;
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"Hello", " world", "!"}));
  TextStream ts(*tok_, {" world"});
  EXPECT_EQ(ts.push(ids[0]), "Hello");
  EXPECT_EQ(ts.push(ids[1]), "");
  ASSERT_TRUE(ts.stopped());
  for (int32_t id : ids) EXPECT_EQ(ts.push(id), "");
  EXPECT_EQ(ts.finish(), "");
  EXPECT_EQ(ts.text(), "Hello");
  EXPECT_EQ(ts.matched(), " world");
}

TEST_F(TextStreamTokens, SpecialTokenCountsAsItsText) {
  std::vector<int32_t> ids;
  ASSERT_NO_FATAL_FAILURE(tokens(&ids, {"Hello"}));
  const int32_t im_end = tok_->token_id("<|im_end|>");
  ASSERT_GE(im_end, 0);
  ids.push_back(im_end);
  Run r = run(ids, {});
  EXPECT_EQ(r.pushed, (V{"Hello", "<|im_end|>"}));  // StreamDecoder renders special tokens
  r = run(ids, {"<|im_end|>"});
  EXPECT_EQ(r.pushed, (V{"Hello", ""}));
  EXPECT_EQ(r.text, "Hello");
  EXPECT_TRUE(r.stopped);
}
