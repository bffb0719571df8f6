// ShareGPT reading and selection (bench/sharegpt.h) against hand-made files:
// items without two string turns are skipped, the shuffle is the seed's, the
// 4-token rule drops short pairs, and unreadable or empty files are errors.
#include "bench/sharegpt.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>

#include "core/check.h"

using namespace parallama;
using namespace parallama::bench;

namespace {

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

// Words as tokens: a made-up tokenizer whose counts are obvious by eye.
int64_t words(const std::string& s) {
  int64_t n = 0;
  bool in = false;
  for (char c : s) {
    if (c != ' ' && !in) ++n;
    in = c != ' ';
  }
  return n;
}

const char* kFile = R"([
  {"conversations": [{"from": "human", "value": "one two three four"}, {"from": "gpt", "value": "a b c d e"}]},
  {"conversations": [{"from": "human", "value": "too short"}, {"from": "gpt", "value": "a b c d"}]},
  {"conversations": [{"from": "human", "value": "only one turn"}]},
  {"id": "no conversations"},
  {"conversations": [{"from": "human", "value": 7}, {"from": "gpt", "value": "not a string prompt"}]},
  {"conversations": [{"from": "human", "value": "w x y z v"}, {"from": "gpt", "value": "p q r s t u"},
                     {"from": "human", "value": "a third turn is ignored"}]}
])";

}  // namespace

TEST(Sharegpt, ReadsTwoTurnConversationsOnly) {
  const auto pairs = read_sharegpt(write_file("sg1.json", kFile), 0);
  ASSERT_EQ(pairs.size(), 3u);  // items 1, 2 and 6
  std::set<std::string> prompts;
  for (const auto& p : pairs) prompts.insert(p.prompt);
  EXPECT_EQ(prompts, (std::set<std::string>{"one two three four", "too short", "w x y z v"}));
  // The same seed, the same order; the answers stay with their prompts.
  const auto again = read_sharegpt(write_file("sg1.json", kFile), 0);
  for (size_t i = 0; i < pairs.size(); ++i) EXPECT_EQ(pairs[i].answer, again[i].answer);
  for (const auto& p : pairs)
    if (p.prompt == "w x y z v") {
      EXPECT_EQ(p.answer, "p q r s t u");
    }
}

TEST(Sharegpt, SelectsPairsOfAtLeastFourTokensEach) {
  const auto pairs = read_sharegpt(write_file("sg2.json", kFile), 3);
  const auto all = select_sharegpt(pairs, 10, words);
  ASSERT_EQ(all.size(), 2u);  // "too short" has 2 words
  for (const auto& r : all) {
    if (pairs[r.pair].prompt == "one two three four") {
      EXPECT_EQ(r.prompt_len, 4);
      EXPECT_EQ(r.output_len, 5);
    } else {
      EXPECT_EQ(pairs[r.pair].prompt, "w x y z v");
      EXPECT_EQ(r.prompt_len, 5);
      EXPECT_EQ(r.output_len, 6);
    }
  }
  EXPECT_EQ(select_sharegpt(pairs, 1, words).size(), 1u);
  EXPECT_THROW(select_sharegpt(pairs, 5, [](const std::string&) { return int64_t{3}; }), Error);
}

TEST(Sharegpt, BadFilesAreErrors) {
  EXPECT_THROW(read_sharegpt(testing::TempDir() + "no-such-file.json", 0), Error);
  EXPECT_THROW(read_sharegpt(write_file("sg3.json", "{not json"), 0), Error);
  EXPECT_THROW(read_sharegpt(write_file("sg4.json", R"({"conversations": []})"), 0), Error);
  EXPECT_THROW(read_sharegpt(write_file("sg5.json", R"([{"id": 1}])"), 0), Error);
}
