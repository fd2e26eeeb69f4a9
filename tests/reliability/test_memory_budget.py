"""A burst of large reviews stays inside the memory the byte budget allows.

The service runs with its default --max-in-flight-bytes. Sixteen UPDATE
reviews of about 6.5 MiB arrive at once. Those that would pass the budget
get 429, so the peak resident memory stays under the bound derived from
the budget, far below what sixteen parsed bodies would take.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService
from tests.reliability.calls import Reply, client_for, post
from tests.reliability.cluster import TEAM_A, running_service
from webhook.settings import DEFAULT_MAX_IN_FLIGHT_BYTES

BURST = 16
CHART_MEMORY_LIMIT_MIB = 256
MIB = 1024 * 1024
# Memory a process takes per body byte while parsing and planning it. The
# bound allows more than the 6-7 bytes measured.
BYTES_HELD_PER_BODY_BYTE = 8


@pytest.fixture(scope="module")
def defaults(
    kube: FakeKube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookService]:
    with running_service(kube, tmp_path_factory.mktemp("memory")) as running:
        yield running


def large_update() -> bytes:
    """Return an UPDATE review of a Job whose pod has 50,000 env vars."""
    env = [{"name": f"V{index}", "value": "x" * 40} for index in range(50_000)]
    env[0]["value"] = "SECRET:db,password"
    template = {
        "metadata": {},
        "spec": {"containers": [{"name": "main", "image": "busybox", "env": env}]},
    }
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": TEAM_A},
        "spec": {"template": template},
    }
    group = {"group": "batch", "version": "v1"}
    request = {
        "uid": "0b5f3c1e-0000-4000-8000-00000000000a",
        "kind": {**group, "kind": "Job"},
        "resource": {**group, "resource": "jobs"},
        "namespace": TEAM_A,
        "operation": "UPDATE",
        "userInfo": {"username": "alice"},
        "object": job,
        "oldObject": job,
    }
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    return orjson.dumps({**review, "request": request})


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} line")


def test_large_burst_shed_by_bytes_and_memory_bounded(
    defaults: WebhookService,
) -> None:
    body = large_update()
    assert len(body) > 6 * MIB
    pid = defaults.pid
    assert pid is not None
    idle_kib = memory_kib(pid, "VmRSS")

    def one(_: int) -> Reply:
        with client_for(defaults, timeout=60) as client:
            return post(client, body, "10s")

    with ThreadPoolExecutor(BURST) as pool:
        replies = list(pool.map(one, range(BURST)))
    peak_kib = memory_kib(pid, "VmHWM")

    statuses = sorted(reply.status for reply in replies)
    assert set(statuses) == {200, 429}, statuses
    for reply in replies:
        if reply.status == 429:
            assert "--max-in-flight-bytes" in reply.json()["message"]
            assert reply.headers["retry-after"] == "1"
    # Most bodies fit in the budget at once, plus one that may exceed it.
    bound_kib = BYTES_HELD_PER_BODY_BYTE * (DEFAULT_MAX_IN_FLIGHT_BYTES + len(body))
    growth_kib = peak_kib - idle_kib
    assert growth_kib < bound_kib // 1024
    # The chart's memory limit, which the default budget is derived from.
    assert peak_kib < CHART_MEMORY_LIMIT_MIB * 1024
