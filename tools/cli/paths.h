// Where the running binary and its source tree are: the scripts, tools and
// data files that commands use beside the binary (build/<preset>/parallama).
#pragma once

#include <string>

namespace parallama::cli {

std::string self_exe();     // /proc/self/exe
std::string source_root();  // the tree the binary was built in: build/<preset>/.. /..
bool file_exists(const std::string& path);
// $PARALLAMA_PYTHON, else build/venv/bin/python3 of the source tree, else /usr/bin/python3.
std::string python_for_tools();

}  // namespace parallama::cli
