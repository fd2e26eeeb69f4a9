#!/usr/bin/env bash
# Type-check the reliability tests and the fuzz targets, then make a short
# coverage-guided fuzz run of the four targets in fuzz/targets.py
# (5 s each, 20 s in all). The reliability tests themselves run
# with the rest of pytest. A long run is described in docs/security.md.
#
# Usage: bash .ci/reliability.sh (PYTHON picks the interpreter, default .venv's)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-.venv/bin/python}
"$python" -m pip install --quiet -e '.[fuzz]'
# The setting in pyproject.toml type-checks only the webhook package.
"$python" -m mypy --strict tests/reliability fuzz
"$python" fuzz/run.py --replay
"$python" fuzz/run.py --seconds "${FUZZ_SECONDS:-5}"
