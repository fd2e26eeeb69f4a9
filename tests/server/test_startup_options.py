"""Startup errors for option values: one message, not a traceback.

An admin who gives `serve` a bad workload kinds file or a port in use gets
one "startup failed" line that names the flag, the value and the fix. An
invalid annotation prefix or flag combination is a usage error with exit
code 2. A bad option stops `serve` before it writes development
certificates.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from webhook.server.pipeline import load_extra_kinds

KINDS_FIX = "as in examples/workload-kinds.yaml"
REPOSITORY = Path(__file__).resolve().parents[2]


def _serve(
    tmp_path: Path, *flags: str, port: int = 0
) -> subprocess.CompletedProcess[str]:
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    command = [
        sys.executable, "-m", "webhook", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--log-format", "text",
        "--secrets-dir", str(secrets), *flags,
    ]  # fmt: skip
    # The service writes development certificates into its working
    # directory, so it runs in tmp_path, never in the repository.
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=environment,
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read: No such file or directory"),
        ("kinds: [unclosed\n", "is not valid YAML: while parsing a flow sequence"),
        ("kinds:\n  - kind: Foo\n", "kinds[0].group must be a non-empty string"),
    ],
    ids=["missing", "not-yaml", "bad-entry"],
)
def test_kinds_file_error_names_flag_and_fix(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "kinds.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")

    with pytest.raises(ValueError) as caught:
        load_extra_kinds(str(path))

    message = str(caught.value)
    assert message.startswith(f"--workload-kinds-file {path}: {problem}")
    assert "\n" not in message
    assert message.endswith(KINDS_FIX)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ("--workload-kinds-file", "missing.yaml"),
            "--workload-kinds-file missing.yaml: cannot be read",
        ),
    ],
)
def test_serve_reports_bad_option_without_traceback(
    tmp_path: Path, flags: tuple[str, str], expected: str
) -> None:
    done = _serve(tmp_path, *flags)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "startup failed" in done.stderr
    assert expected in done.stderr
    assert not (tmp_path / "certs").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_names_flags(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = _serve(tmp_path, "--workers", workers, port=port)

    assert done.returncode == 1, done.stderr
    assert "startup failed" in done.stderr
    assert f"--host 127.0.0.1 --port {port}" in done.stderr
    assert "Address already in use" in done.stderr
    assert "listening" not in done.stderr


def test_templates_with_secrets_dir_rejected(tmp_path: Path) -> None:
    done = _serve(tmp_path, "--templates")

    assert done.returncode == 2, done.stderr
    assert "--templates reads template ConfigMaps" in done.stderr
    assert "--secrets-dir" in done.stderr
    assert not (tmp_path / "certs").exists()


def test_bad_annotation_prefix_is_usage_error(tmp_path: Path) -> None:
    done = _serve(tmp_path, "--annotation-prefix", "Bad Prefix/")

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "argument --annotation-prefix" in done.stderr
    assert "annotation prefix 'Bad Prefix/' is not valid" in done.stderr
    assert not (tmp_path / "certs").exists()
