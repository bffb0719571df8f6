#!/usr/bin/env bash
# Set-up and the main job: install packages, fetch the default model, build
# Release, generate a short completion and print tokens/s.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/fetch_model.sh
# Tests stay configured (only the CLI is built here): a cached PARALLAMA_TESTS=OFF
# would leave build/release without tests for scripts/run_tests.sh.
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target parallama
./build/release/parallama generate --chat -p "${1:-Write a haiku about parallel computing.}" -n 64
