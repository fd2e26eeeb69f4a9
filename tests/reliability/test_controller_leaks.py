"""The propagation controller copies secret values but never logs them.

The controller is the one part that must handle values: it copies a
cluster-wide secret into every project namespace. It runs here as its own
process at DEBUG while a source secret is copied and changed. Its log and
its /metrics must not contain the sentinel value.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.harness.fakekube import FakeKube
from tests.harness.service import free_port, isolated_environment
from tests.reliability.cluster import (
    PROJECT_LABEL,
    SENTINEL_FORMS,
    TEAM_A,
    TEAM_B,
)

SOURCE = "runai"
LEASE_NAMESPACE = "runai-secrets-webhook"
CLUSTER_WIDE = {"runai/cluster-wide": "true"}
SECRET_VALUE = SENTINEL_FORMS[0]


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def copy_value(kube: FakeKube, namespace: str) -> str | None:
    try:
        copy = kube.get("v1", "secrets", namespace, "regcred")
    except Exception:  # noqa: BLE001 - the fake raises its own ApiError
        return None
    value: str = copy["data"]["auth"]
    return value


def test_controller_logs_no_value(tmp_path: Path) -> None:
    metrics_port = free_port()
    with FakeKube() as kube:
        for project in (TEAM_A, TEAM_B):
            kube.add_namespace(project, {PROJECT_LABEL: project})
        kube.add_namespace(LEASE_NAMESPACE)
        kube.add_secret(SOURCE, "regcred", {"auth": SECRET_VALUE}, CLUSTER_WIDE)
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        command = [
            sys.executable, "-m", "webhook", "propagate",
            "--kubeconfig", str(kubeconfig),
            "--log-level", "DEBUG",
            "--lease-namespace", LEASE_NAMESPACE,
            "--lease-duration", "2", "--renew-deadline", "1", "--retry-period", "0.2",
            "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port),
        ]  # fmt: skip
        log_path = tmp_path / "controller.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=isolated_environment(tmp_path),
            )
        try:
            first = kube.get("v1", "secrets", SOURCE, "regcred")["data"]["auth"]
            wait_for(lambda: copy_value(kube, TEAM_A) == first)
            wait_for(lambda: copy_value(kube, TEAM_B) == first)

            changed = f"changed-{SECRET_VALUE}"
            kube.add_secret(SOURCE, "regcred", {"auth": changed}, CLUSTER_WIDE)
            second = kube.get("v1", "secrets", SOURCE, "regcred")["data"]["auth"]
            wait_for(lambda: copy_value(kube, TEAM_A) == second)
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                metrics = response.read().decode()
        finally:
            process.terminate()
            process.wait(10)

    output = log_path.read_text()
    assert "DEBUG" in output, "the test needs DEBUG lines to mean anything"
    for form in SENTINEL_FORMS:
        assert form not in output
        assert form not in metrics
