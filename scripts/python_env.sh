#!/usr/bin/env bash
# The Python packages the tests and tools use (the official openai client,
# pytest, schemathesis for API fuzzing, matplotlib for the studies' plots), in a
# virtual environment at build/venv, installed from PyPI once.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=build/venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import openai, pytest, schemathesis, matplotlib" 2>/dev/null; then
  "$VENV/bin/pip" install -q --disable-pip-version-check "openai>=1.40" "pytest>=7" "schemathesis>=4,<5" \
    "matplotlib>=3.7"
fi
echo "$VENV/bin/python"
