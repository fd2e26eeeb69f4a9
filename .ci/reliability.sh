#!/usr/bin/env bash
# Short coverage-guided fuzz run of the placeholder parser and the patch
# builder: 5 s per target, 20 s in all. The reliability tests themselves run
# with the rest of pytest. A long run is described in docs/security.md.
#
# Usage: bash .ci/reliability.sh (PYTHON picks the interpreter, default .venv's)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-.venv/bin/python}
"$python" -m pip install --quiet -e '.[fuzz]'
"$python" fuzz/run.py --replay
"$python" fuzz/run.py --seconds "${FUZZ_SECONDS:-5}"
