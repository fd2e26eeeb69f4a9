"""Restarts under load lose no review.

SIGTERM while reviews are in flight: each accepted review is answered and
the process exits 0. A rolling restart of two replicas, done the way a
Deployment and the chart do it (the new pod becomes ready, the old one
leaves the endpoints, waits its preStop delay, then gets SIGTERM), under a
steady stream of reviews sent like kube-apiserver sends them (keep-alive,
429 and 5xx with Retry-After retried, a POST on a broken connection never
resent): every review is answered.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from tests.harness import certs
from tests.harness.certs import ServingCertificate
from tests.harness.fakekube import FakeKube
from tests.harness.service import NAMESPACE, SERVICE, WebhookService
from tests.harness.webhookcall import CallError, Endpoint, Transport
from tests.reliability.calls import Reply, client_for, pod_review, post
from tests.reliability.cluster import TEAM_A, pod

SERVER_NAME = f"{SERVICE}.{NAMESPACE}.svc"
# The chart's preStop delay, shortened: the time for kube-proxy and the
# apiserver to stop picking a pod that left the endpoints.
PRESTOP_SECONDS = 0.5
REVIEW_TIMEOUT_SECONDS = 5.0


def start_replica(
    kube: FakeKube, directory: Path, certificate: ServingCertificate
) -> WebhookService:
    directory.mkdir(parents=True)
    kubeconfig = kube.write_kubeconfig(directory / "kubeconfig")
    replica = WebhookService(
        ["--log-format", "json", "--cache-ttl", "0"],
        kubeconfig=kubeconfig,
        certificate=certificate,
        directory=directory,
    )
    return replica.start()


@pytest.fixture
def certificate() -> ServingCertificate:
    # One certificate for all replicas, as they share the chart's TLS secret.
    return certs.issue(*certs.service_names(SERVICE, NAMESPACE), "127.0.0.1")


def test_sigterm_answers_reviews_in_flight(
    kube: FakeKube, tmp_path: Path, certificate: ServingCertificate
) -> None:
    replica = start_replica(kube, tmp_path / "replica", certificate)
    kube.add_fault(resource="secrets", latency=1.0)
    reviews = [pod_review(pod("SECRET:db,password"), TEAM_A) for _ in range(8)]

    def send(review: dict[str, object]) -> Reply:
        with client_for(replica) as client:
            return post(client, orjson.dumps(review), "5s")

    with ThreadPoolExecutor(len(reviews)) as pool:
        futures = [pool.submit(send, review) for review in reviews]
        while kube.count(resource="secrets") == 0:
            time.sleep(0.01)
        time.sleep(0.2)
        exit_code = replica.stop(timeout=10)
        replies = [future.result() for future in futures]

    assert exit_code == 0
    for review, reply in zip(reviews, replies, strict=True):
        assert reply.status == 200, reply.error
        response = reply.json()["response"]
        assert response["uid"] == review["request"]["uid"]
        assert response["allowed"] is True
    assert "stopping: finishing in-flight reviews" in replica.logs()


class Endpoints:
    """The ready replicas that a Service routes to, picked at random per call."""

    def __init__(self, replicas: list[WebhookService]) -> None:
        self._lock = threading.Lock()
        self._ready = list(replicas)

    def add(self, replica: WebhookService) -> None:
        with self._lock:
            self._ready.append(replica)

    def remove(self, replica: WebhookService) -> None:
        with self._lock:
            self._ready.remove(replica)

    def pick(self) -> WebhookService:
        with self._lock:
            return random.choice(self._ready)


class Load:
    """Threads that send reviews until stopped, recording every outcome."""

    def __init__(self, endpoints: Endpoints, threads: int = 4) -> None:
        self.endpoints = endpoints
        self.transport = Transport()
        self.answered = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REVIEW_TIMEOUT_SECONDS * 2)
        self.transport.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            outcome = self._one()
            with self._lock:
                if outcome:
                    self.failures.append(outcome)
                else:
                    self.answered += 1
            time.sleep(0.01)

    def _one(self) -> str:
        """Send one review; return "" when it was answered, else the failure."""
        replica = self.endpoints.pick()
        review = pod_review(pod("SECRET:db,password"), TEAM_A)
        endpoint = Endpoint(
            "127.0.0.1",
            replica.port,
            SERVER_NAME,
            f"https://{SERVER_NAME}:443/mutate",
            replica.certificate.ca_pem,
        )
        try:
            status, _, data = self.transport.post(
                endpoint,
                f"/mutate?timeout={int(REVIEW_TIMEOUT_SECONDS)}s",
                orjson.dumps(review),
                REVIEW_TIMEOUT_SECONDS,
            )
        except CallError as error:
            return str(error)
        if status != 200:
            return f"HTTP {status}: {data[:200]!r}"
        response = orjson.loads(data)["response"]
        if response["uid"] != review["request"]["uid"] or not response["allowed"]:
            return f"wrong answer: {response}"
        return ""


@pytest.fixture
def replicas(
    kube: FakeKube, tmp_path: Path, certificate: ServingCertificate
) -> Iterator[list[WebhookService]]:
    started = [start_replica(kube, tmp_path / name, certificate) for name in ("a", "b")]
    yield started
    for replica in started:
        if replica.exit_code is None:
            replica.stop()


def test_rolling_restart_loses_no_review(
    kube: FakeKube,
    tmp_path: Path,
    certificate: ServingCertificate,
    replicas: list[WebhookService],
) -> None:
    kube.add_fault(resource="secrets", latency=0.05)
    endpoints = Endpoints(replicas)
    exit_codes = []

    with Load(endpoints) as load:
        time.sleep(0.5)
        for index, old in enumerate(list(replicas)):
            new = start_replica(kube, tmp_path / f"new-{index}", certificate)
            replicas.append(new)
            endpoints.add(new)
            endpoints.remove(old)
            time.sleep(PRESTOP_SECONDS)
            exit_codes.append(old.stop(timeout=10))
        time.sleep(0.5)

    assert load.failures == []
    assert load.answered > 20
    assert exit_codes == [0, 0]
