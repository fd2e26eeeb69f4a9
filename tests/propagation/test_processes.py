"""Leader failover with real controller processes: SIGKILL and SIGSTOP.

Each process has its own bearer token, so the fake API server's request log
shows which process made which write, and at what time on the shared
monotonic clock.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fakekube import FakeKube
from tests.propagation.conftest import (
    CLUSTER_WIDE,
    FAST_LEASE,
    LEASE_NAMESPACE,
    PROJECT,
    delete_secret,
    secret,
    wait_for,
    writes,
)

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = "sentinel-secret-value"


class ControllerProcess:
    def __init__(self, kube: FakeKube, directory: Path, identity: str) -> None:
        self.identity = identity
        self.token = f"token-{identity}"
        kube.add_token(self.token, user=f"system:serviceaccount:runai:{identity}")
        kubeconfig = kube.write_kubeconfig(
            directory / f"kubeconfig-{identity}", token=self.token
        )
        command = [
            sys.executable, "-m", "webhook.propagation", "propagate",
            "--kubeconfig", str(kubeconfig),
            "--lease-namespace", LEASE_NAMESPACE,
            "--lease-name", "propagation",
            "--identity", identity,
            "--lease-duration", str(FAST_LEASE.duration),
            "--renew-deadline", str(FAST_LEASE.renew_deadline),
            "--retry-period", str(FAST_LEASE.retry_period),
            "--watch-timeout", "30",
            "--watch-idle-timeout", "3",
            "--resync-period", "60",
            "--conflict-retry", "1",
            "--request-timeout", "5",
            "--metrics-port", "0",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env["KUBECONFIG"] = str(kubeconfig)
        self.log = directory / f"{identity}.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
            )

    def signal(self, number: int) -> None:
        os.kill(self.process.pid, number)

    def terminate(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def spawn(fake_kube: FakeKube, tmp_path: Path) -> Iterator[Any]:
    fake_kube.add_namespace(LEASE_NAMESPACE)
    started: list[ControllerProcess] = []

    def start(identity: str) -> ControllerProcess:
        process = ControllerProcess(fake_kube, tmp_path, identity)
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()


def holder(kube: FakeKube) -> str | None:
    try:
        lease = kube.get(
            "coordination.k8s.io/v1", "leases", LEASE_NAMESPACE, "propagation"
        )
    except Exception:  # noqa: BLE001 - not created yet
        return None
    value: str | None = lease["spec"].get("holderIdentity")
    return value


def watching(kube: FakeKube, token: str) -> bool:
    """Return whether a process has opened all three of its watches."""
    resources = {
        r.resource for r in kube.requests if r.token == token and r.verb == "watch"
    }
    return resources == {"secrets", "namespaces"} and (
        sum(1 for r in kube.requests if r.token == token and r.verb == "watch") >= 3
    )


def copy_deletes(kube: FakeKube, token: str) -> list[Any]:
    return [
        r for r in writes(kube, token) if r.verb == "delete" and r.resource == "secrets"
    ]


def test_next_leader_finishes_cleanup(fake_kube: FakeKube, spawn: Any) -> None:
    projects = [f"runai-p{i:02d}" for i in range(50)]
    for name in projects:
        fake_kube.add_namespace(name, PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    first = spawn("first")
    wait_for(lambda: holder(fake_kube) == "first", timeout=15, message="first to lead")
    wait_for(
        lambda: all(secret(fake_kube, n, "regcred") for n in projects),
        timeout=20,
        message="50 copies",
    )
    second = spawn("second")
    wait_for(lambda: watching(fake_kube, second.token), timeout=15, message="standby")
    # Slow deletes let the test stop the leader after exactly ten.
    fake_kube.add_fault(verb="delete", resource="secrets", latency=0.1)

    delete_secret(fake_kube, "runai", "regcred")
    wait_for(
        lambda: len(copy_deletes(fake_kube, first.token)) >= 10,
        timeout=15,
        message="ten deletes",
    )
    first.signal(signal.SIGKILL)
    first.process.wait(5)
    by_first = len(copy_deletes(fake_kube, first.token))

    wait_for(
        lambda: not any(secret(fake_kube, n, "regcred") for n in projects),
        timeout=30,
        message="every copy to go",
    )
    by_second = [r for r in copy_deletes(fake_kube, second.token) if r.status == 200]
    # Deletes run one at a time and each takes 0.1 s, so the kill lands
    # during the tenth; the margin covers a slow poll on a loaded machine.
    assert 10 <= by_first <= 12
    assert len(by_second) >= 50 - by_first
    assert holder(fake_kube) == "second"
    assert secret(fake_kube, "runai", "regcred") is None


def test_frozen_leader_never_writes_after_expiry(
    fake_kube: FakeKube, spawn: Any
) -> None:
    projects = ["runai-team-a", "runai-team-b", "runai-team-c"]
    for name in projects:
        fake_kube.add_namespace(name, PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": SENTINEL}, CLUSTER_WIDE)
    old = spawn("old")
    wait_for(lambda: holder(fake_kube) == "old", timeout=15, message="old to lead")
    wait_for(
        lambda: all(secret(fake_kube, n, "regcred") for n in projects), message="copies"
    )
    standby = spawn("standby")
    wait_for(lambda: watching(fake_kube, standby.token), timeout=15, message="standby")

    old.signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    wait_for(lambda: holder(fake_kube) == "standby", timeout=10, message="takeover")
    changed = fake_kube.add_secret(
        "runai", "regcred", {"auth": SENTINEL + "2"}, CLUSTER_WIDE
    )
    wait_for(
        lambda: all(
            (secret(fake_kube, n, "regcred") or {}).get("data") == changed["data"]
            for n in projects
        ),
        message="the standby to update every copy",
    )

    old.signal(signal.SIGCONT)
    resumed_at = time.monotonic()
    # Give the resumed process events to act on while it still thinks it leads.
    fake_kube.add_secret("runai", "regcred", {"auth": "v3"}, CLUSTER_WIDE)
    fake_kube.add_namespace("runai-team-d", PROJECT)
    wait_for(lambda: secret(fake_kube, "runai-team-d", "regcred"), message="copy in d")
    time.sleep(2 * FAST_LEASE.duration)

    lease_writes = [
        r
        for r in writes(fake_kube, old.token)
        if r.resource == "leases" and r.status == 200
    ]
    last_renew = max(r.time for r in lease_writes if r.time < frozen_at)
    expired_at = last_renew + FAST_LEASE.duration
    late = [r for r in writes(fake_kube, old.token) if r.time > expired_at]
    assert expired_at < resumed_at
    assert late == [], [(r.verb, r.resource, r.namespace, r.status) for r in late]
    assert old.process.poll() is None
    assert old.terminate() == 0
    assert standby.terminate() == 0
    for process in (old, standby):
        output = process.log.read_text()
        assert "Traceback" not in output
        assert SENTINEL not in output
        assert base64.b64encode(SENTINEL.encode()).decode() not in output


def test_sigterm_releases_lease(fake_kube: FakeKube, spawn: Any) -> None:
    leader = spawn("leader")
    wait_for(lambda: holder(fake_kube) == "leader", timeout=15, message="leader")
    standby = spawn("standby")
    wait_for(lambda: watching(fake_kube, standby.token), timeout=15, message="standby")

    assert leader.terminate() == 0
    stopped_at = time.monotonic()

    wait_for(lambda: holder(fake_kube) == "standby", timeout=5, message="takeover")
    # An unreleased Lease would keep the standby waiting the full duration.
    assert time.monotonic() - stopped_at < FAST_LEASE.duration
    assert "lease released" in leader.log.read_text()
