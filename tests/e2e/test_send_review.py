"""The example client names the CA file it could not find."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness.service import REPOSITORY, free_port

SCRIPT = REPOSITORY / "examples" / "send_review.py"
MANIFEST = REPOSITORY / "examples" / "jobs" / "runai-submit-pod.yaml"


def _send(*flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), str(MANIFEST), "--wait", "0.3", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_missing_ca_file_named(tmp_path: Path) -> None:
    missing = tmp_path / "certs" / "ca.crt"

    url = f"https://127.0.0.1:{free_port()}"

    done = _send("--ca-file", str(missing), "--url", url)

    assert done.returncode == 2
    assert f"CA file {missing} does not exist" in done.stderr
    assert "--ca-file" in done.stderr
