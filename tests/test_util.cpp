#include "test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace parallama::test {

namespace {
// Where the default model is looked for, whether or not it is there.
std::string default_model_location() {
  if (const char* p = std::getenv("PARALLAMA_MODEL"); p && *p) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") +
         "/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}
}  // namespace

std::string default_model_path() {
  if (const char* p = std::getenv("PARALLAMA_MODEL"); p && *p) return p;
  std::string p = default_model_location();
  return std::filesystem::exists(p) ? p : std::string();
}

std::string missing_model_message() {
  return "default model not found at " + default_model_location() +
         ": run scripts/fetch_model.sh";
}

std::string fixture_path(const std::string& name) {
  return std::string(PARALLAMA_SOURCE_DIR) + "/tests/fixtures/" + name;
}

std::string temp_path(const std::string& name) {
  std::filesystem::path dir = std::filesystem::path(PARALLAMA_BINARY_DIR) / "test_tmp";
  std::filesystem::create_directories(dir);
  return (dir / (std::to_string(getpid()) + "_" + name)).string();
}

}  // namespace parallama::test
