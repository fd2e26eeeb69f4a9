"""The example client: the reviews it builds and the CA file it names."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml

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


def test_request_namespace_moves_object() -> None:
    # kube-apiserver rejects an object whose namespace differs from the
    # request's, so the review built for --namespace puts the object there.
    spec = importlib.util.spec_from_file_location("send_review", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manifest = yaml.safe_load(MANIFEST.read_text())

    request = module.build_review(manifest, "runai-team-b")["request"]

    assert request["namespace"] == "runai-team-b"
    assert request["object"]["metadata"]["namespace"] == "runai-team-b"
