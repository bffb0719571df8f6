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
