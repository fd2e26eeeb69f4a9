#!/usr/bin/env bash
# Regenerate requirements.lock from the service's runtime dependencies in
# pyproject.toml, and requirements-build.lock from [build-system] requires.
# Every version is pinned with its hashes, for Python 3.11 on any platform.
# The Dockerfile and .ci/image-steps.sh install from these files only.
# Needs uv (pip install uv) and access to PyPI.
#
# Usage: bash .ci/lock.sh [extra uv pip compile flags, e.g. --upgrade]
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-uv}
COMPILE=(pip compile --generate-hashes --universal --python-version 3.11 --no-header --quiet)
HEADER="# Pinned with hashes by .ci/lock.sh; edit pyproject.toml and rerun it."

runtime=$("$UV" "${COMPILE[@]}" "$@" pyproject.toml)
printf '%s\n%s\n' "$HEADER" "$runtime" >requirements.lock

build_requires=$(python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))')
build=$(printf '%s\n' "$build_requires" | "$UV" "${COMPILE[@]}" "$@" -)
printf '%s\n%s\n' "$HEADER" "$build" >requirements-build.lock
