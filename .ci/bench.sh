#!/usr/bin/env bash
# Benchmark check for CI: run `python -m bench --quick` (about a minute) and
# keep its results out of the repository. The benchmark installs wrk with
# apt-get when wrk is missing and the job runs as root; elsewhere install
# wrk first.
# The quick mode checks that the benchmark runs and that no review fails;
# its figures are not records (bench/README.md describes how those are taken).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-.venv/bin/python}
"$python" -m pip install --quiet -e '.[test,bench]'

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
"$python" -m bench --quick --results "$results"
"$python" - "$results/results.json" <<'PY'
import json
import sys

results = json.load(open(sys.argv[1]))
for server in ("reference", "webhook"):
    failed = results["throughput"][server]["failed"]
    assert failed == 0, f"{failed} reviews of the {server} failed under load"
cold = results["cold_path"]
assert cold["api_calls"] == 1, f"cold path made {cold['api_calls']} API calls"
assert cold["patched"] == cold["reviews"], "a cold-path review was not patched"
PY
