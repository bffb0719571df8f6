// parallama: command-line front end. Each subcommand lives in its own file.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "core/check.h"

namespace parallama::cli {
CommandLine& command_line() {
  static CommandLine c;
  return c;
}
}  // namespace parallama::cli

int main(int argc, char** argv) {
  parallama::cli::command_line() = {argc, argv};
  CLI::App app{"Parallama: LLM inference with tensor and pipeline parallelism"};
  app.require_subcommand(1);
  std::function<int()> run;
  parallama::cli::add_generate(app, run);
  parallama::cli::add_tokenize(app, run);
  parallama::cli::add_info(app, run);
  parallama::cli::add_bench(app, run);
  parallama::cli::add_synth(app, run);
  parallama::cli::add_membw(app, run);
  parallama::cli::add_serve(app, run);
  parallama::cli::add_plan(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run();
  } catch (const parallama::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
