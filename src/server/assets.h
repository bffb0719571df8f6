// Files embedded in the binary at build time (src/server/assets/, see
// CMakeLists.txt): the chat page and the OpenAPI document, served as they are.
#pragma once

#include <cstddef>
#include <string_view>

namespace parallama::assets {
extern const unsigned char chat_html[];
extern const size_t chat_html_size;
extern const unsigned char openapi_json[];
extern const size_t openapi_json_size;

inline std::string_view chat_page() { return {reinterpret_cast<const char*>(chat_html), chat_html_size}; }
inline std::string_view openapi() { return {reinterpret_cast<const char*>(openapi_json), openapi_json_size}; }
}  // namespace parallama::assets
