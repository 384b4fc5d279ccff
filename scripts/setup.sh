#!/usr/bin/env bash
# Create .venv (if missing) and install fave with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch first: pinned to the CPU build available on these machines (any torch >= 2.2 works)
.venv/bin/python -m pip install --quiet "torch==2.13.0" 2>/dev/null || .venv/bin/python -m pip install --quiet "torch>=2.2"
.venv/bin/python -m pip install --quiet -e ".[dev]"
