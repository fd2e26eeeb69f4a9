#!/usr/bin/env bash
# Replay the Dockerfile's builder stage (ENV, WORKDIR, COPY and every RUN)
# in a temporary directory with Python 3.11, as no container engine runs in
# CI. Any install step that fails here would fail in `docker build` too.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
"$PYTHON" -m tests.chart.dockerfile
