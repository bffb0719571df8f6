// Shared helpers for tests: where the default model and fixtures are.
#pragma once
#include <string>

namespace parallama::test {
// Path of the default model (PARALLAMA_MODEL env, else ~/.cache/parallama/models/...);
// empty if it does not exist.
std::string default_model_path();
// For a test that needs the default model to fail with (never skip: the test
// command fetches it):  if (m.empty()) FAIL() << test::missing_model_message();
// Says where the model was looked for and how to fetch it.
std::string missing_model_message();
std::string fixture_path(const std::string& name);  // tests/fixtures/<name>
std::string temp_path(const std::string& name);     // unique file under the build dir
}  // namespace parallama::test
