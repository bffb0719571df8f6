#!/usr/bin/env bash
# Set-up and the whole test suite: install packages, fetch the default model,
# build Release and run CTest; build ASan/UBSan and run the unit tests under it;
# build the GGUF fuzzer and run it briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
./scripts/install_deps.sh
./scripts/fetch_model.sh
./scripts/python_env.sh >/dev/null  # openai + pytest in build/venv, for the server tests

echo "== Release build and tests" >&2
# Tests on, whatever an earlier configure left in the cache (run_main.sh used to
# turn them off); CTest fails on an empty test set (test presets, --no-tests=error).
cmake --preset release -DPARALLAMA_TESTS=ON -DPARALLAMA_UNIT_TESTS_ONLY=OFF >/dev/null
cmake --build --preset release -j"$JOBS"
ctest --preset release -j"$JOBS" --no-tests=error

echo "== ASan/UBSan build and unit tests" >&2
cmake --preset asan -DPARALLAMA_TESTS=ON >/dev/null
# Unit tests only: the end-to-end and mpirun tests ran in the Release build above.
cmake --build --preset asan -j"$JOBS" --target test_core test_gguf test_ops test_tokenizer \
  test_runtime test_parallel test_model test_serve test_server test_bench test_plan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --preset asan -j"$JOBS" --no-tests=error

echo "== GGUF fuzzer (${FUZZ_SECONDS:-60}s)" >&2
./scripts/fuzz_gguf.sh "${FUZZ_SECONDS:-60}"
echo "all tests passed" >&2
