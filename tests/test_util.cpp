#include "test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace parallama::test {

std::string default_model_path() {
  if (const char* p = std::getenv("PARALLAMA_MODEL"); p && *p) return p;
  const char* home = std::getenv("HOME");
  std::string p = std::string(home ? home : "/root") +
                  "/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  return std::filesystem::exists(p) ? p : std::string();
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
