#!/usr/bin/env bash
# Type-check the test harness and its own tests. The mypy settings in
# pyproject.toml name only the `webhook` package, so `mypy` alone skips them.
# The tests themselves run with the rest of pytest.
#
# Usage: bash .ci/harness.sh (PYTHON picks the interpreter, default .venv's)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-.venv/bin/python}
"$python" -m mypy --strict tests/harness tests/harness_tests
