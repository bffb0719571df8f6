#!/usr/bin/env bash
# Builds the GGUF parser fuzzer (clang, libFuzzer + ASan + UBSan), writes a seed
# corpus and fuzzes for N seconds (default 60). Findings land in build/fuzz/findings.
# Usage: scripts/fuzz_gguf.sh [seconds]
set -euo pipefail
secs="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build/fuzz"
jobs="${JOBS:-2}"

# The libraries need coverage and sanitizer instrumentation too (the CMake
# option only adds -fsanitize=fuzzer to the fuzz executables themselves).
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPARALLAMA_FUZZ=ON -DPARALLAMA_TESTS=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  >/dev/null
cmake --build "$build" --target gguf_fuzz -j"$jobs" >/dev/null

# Seed corpus from the writer (plain build, no sanitizers needed).
seeds="$build/gguf_seeds"
corpus="$build/gguf_corpus"
mkdir -p "$seeds" "$corpus" "$build/findings"
clang++ -std=c++20 -O1 -I"$root/src" "$root/tools/gguf_corpus/make_corpus.cpp" \
  "$root"/src/gguf/*.cpp "$root/src/core/ggml_type.cpp" -o "$build/make_gguf_corpus"
"$build/make_gguf_corpus" "$seeds"

"$build/gguf_fuzz" "$corpus" "$seeds" -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 \
  -artifact_prefix="$build/findings/" -print_final_stats=1
