"""More concurrent reviews than the service takes: it sheds the excess quickly.

The service runs with `--max-in-flight 4` against an API that takes a
second per secret read. A burst of reviews must leave /healthz responsive,
answer the admitted ones inside the deadline, answer the rest at once with
429 and Retry-After, and, through a caller that retries like kube-apiserver,
end with every review admitted. Memory must not grow from burst to burst.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService, mutating_configuration
from tests.reliability.calls import Reply, client_for, pod_review, post
from tests.reliability.cluster import TEAM_A, pod, running_service

LIMIT = 4
BURST = 24
API_LATENCY_SECONDS = 1.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def limited(
    kube: FakeKube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookService]:
    directory = tmp_path_factory.mktemp("limited")
    with running_service(kube, directory, ["--max-in-flight", str(LIMIT)]) as running:
        yield running


def in_parallel(count: int, call: Callable[[int], T]) -> list[T]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


def one_review(service: WebhookService, timeout: str = "3s") -> Reply:
    body = orjson.dumps(pod_review(pod("SECRET:db,password"), TEAM_A))
    with client_for(service) as client:
        return post(client, body, timeout)


def health_latencies(service: WebhookService, stop: threading.Event) -> list[float]:
    latencies: list[float] = []
    while not stop.is_set():
        started = time.monotonic()
        status, _ = service.get("/healthz")
        assert status == 200
        latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    return latencies


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


def test_burst_shed_with_429(kube: FakeKube, limited: WebhookService) -> None:
    kube.add_fault(resource="secrets", latency=API_LATENCY_SECONDS)
    stop = threading.Event()
    with ThreadPoolExecutor(1) as prober:
        health = prober.submit(health_latencies, limited, stop)
        replies = in_parallel(BURST, lambda _: one_review(limited))
        stop.set()
        latencies = health.result()

    answered = [reply for reply in replies if reply.status == 200]
    shed = [reply for reply in replies if reply.status == 429]
    assert [reply for reply in replies if reply.status not in {200, 429}] == []
    assert LIMIT <= len(answered) < BURST
    assert len(shed) == BURST - len(answered)
    for reply in answered:
        assert reply.json()["response"]["allowed"] is True
        assert reply.seconds < 3.0
    for reply in shed:
        assert reply.headers["retry-after"] == "1"
        assert "--max-in-flight" in reply.json()["message"]
        assert "retrying the request is safe" in reply.json()["message"]
        assert reply.seconds < 0.5
    assert latencies, "/healthz was not probed during the burst"
    assert max(latencies) < 0.5


def test_retrying_caller_admits_every_review(
    kube: FakeKube, limited: WebhookService
) -> None:
    kube.add_fault(resource="secrets", latency=0.3)
    configuration = mutating_configuration(
        limited.certificate.ca_bundle, timeout_seconds=6
    )

    with limited.caller(kube=kube, mutating=[configuration]) as caller:
        results = in_parallel(
            12, lambda _: caller.admit(pod("SECRET:db,password"), namespace=TEAM_A)
        )

    assert [result.message for result in results if not result.allowed] == []
    # The series exists from start with 0, so the count must have grown:
    # 12 reviews at once against a limit of 4 shed some, which were retried.
    metrics = limited.get("/metrics")[1].decode()
    assert shed_count(metrics) > 0


def shed_count(metrics: str) -> float:
    """Return the count of reviews shed with 429, from /metrics text."""
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if (
                sample.name == "runai_secrets_webhook_reviews_total"
                and sample.labels.get("outcome") == "shed"
            ):
                return sample.value
    raise AssertionError("no shed series in /metrics")


def test_memory_stays_bounded(limited: WebhookService) -> None:
    pid = limited.pid
    assert pid is not None
    # A pod with 2,000 env vars: a review body of about 100 KiB.
    values = [f"SECRET:db,password-{index}" for index in range(2000)]
    body = orjson.dumps(pod_review(pod(*values), TEAM_A))

    def burst() -> None:
        def call(_: int) -> Reply:
            with client_for(limited) as client:
                return post(client, body, "3s")

        replies = in_parallel(40, call)
        assert {reply.status for reply in replies} <= {200, 429}

    burst()
    after_first = rss_kib(pid)
    for _ in range(4):
        burst()
    after_last = rss_kib(pid)

    # Growth after the first burst means something keeps every body.
    assert after_last - after_first < 20 * 1024, (after_first, after_last)
