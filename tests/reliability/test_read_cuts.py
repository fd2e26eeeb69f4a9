"""Bodies that trickle in past `?timeout=` are cut on time over real HTTPS.

One shared timer cuts every slow body read, at most 0.1 s after its
deadline. Each client here opens a TLS connection to the service on
127.0.0.1, sends a review's headers and then one body byte every 0.2 s, so
the read keeps making progress but never completes.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService
from tests.reliability.cluster import running_service

DECLARED_BYTES = 5000
TRICKLE_SECONDS = 0.2
# The review budget of `?timeout=2s`: 2 s less a fifth of it.
BUDGET_SECONDS = 1.6
# The sweep interval (0.1 s) plus room for TLS and a busy machine.
LATE_SECONDS = 0.3
CLIENTS = 50


@dataclass(frozen=True)
class Outcome:
    """What one trickling client got, and when, counted from its first byte."""

    head: bytes
    seconds: float

    @property
    def status(self) -> int:
        parts = self.head.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


@pytest.fixture(scope="module")
def roomy(
    kube: FakeKube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookService]:
    """A service whose in-flight limit leaves room for every client here."""
    directory: Path = tmp_path_factory.mktemp("read-cuts")
    with running_service(kube, directory, ["--max-in-flight", "64"]) as running:
        yield running


def connect(service: WebhookService) -> ssl.SSLSocket:
    context = ssl.create_default_context(cadata=service.certificate.ca_pem.decode())
    raw = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def trickle_review(service: WebhookService, timeout: str = "2s") -> Outcome:
    """Send a review's headers, then a body byte per 0.2 s until a response."""
    connection = connect(service)
    head = (
        f"POST /mutate?timeout={timeout} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {DECLARED_BYTES}\r\n\r\n"
    )
    started = time.monotonic()
    connection.sendall(head.encode() + b"{")
    connection.settimeout(TRICKLE_SECONDS)
    received = b""
    with connection:
        while b"\r\n" not in received and time.monotonic() - started < 10:
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                connection.sendall(b" ")
                continue
            if not chunk:
                break
            received += chunk
    return Outcome(received.split(b"\r\n", 1)[0], time.monotonic() - started)


def test_trickled_body_cut_after_budget(roomy: WebhookService) -> None:
    outcome = trickle_review(roomy, "2s")

    assert outcome.status == 408, outcome.head
    # Cut no earlier than the budget, and soon after it.
    assert outcome.seconds >= BUDGET_SECONDS - 0.05
    assert outcome.seconds < BUDGET_SECONDS + LATE_SECONDS


def healthz_seconds(service: WebhookService) -> float:
    started = time.monotonic()
    status, _ = service.get("/healthz")
    assert status == 200
    return time.monotonic() - started


def test_fifty_trickled_bodies_all_cut(roomy: WebhookService) -> None:
    probes: list[float] = []
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures: list[Future[Outcome]] = [
            pool.submit(trickle_review, roomy, "2s") for _ in range(CLIENTS)
        ]
        while not all(future.done() for future in futures):
            probes.append(healthz_seconds(roomy))
            time.sleep(0.05)
        outcomes = [future.result() for future in futures]

    statuses = [outcome.status for outcome in outcomes]
    assert statuses == [408] * CLIENTS
    # Fifty reads share one sweep, so the last one may be cut a little later.
    latest = max(outcome.seconds for outcome in outcomes)
    assert latest < BUDGET_SECONDS + 2 * LATE_SECONDS
    # The probes ran while the reads were open. Each opens its own TLS
    # connection, so a few milliseconds is normal.
    assert len(probes) >= 5
    assert max(probes) < 0.5, probes
    assert "Traceback" not in roomy.logs()


def test_sigterm_drains_trickled_bodies(
    kube: FakeKube, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("read-cuts-stop")
    with running_service(kube, directory) as service, ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(trickle_review, service, "2s") for _ in range(5)]
        # Let every client send its headers before the stop signal.
        time.sleep(0.5)
        stopping = time.monotonic()
        exit_code = service.stop(timeout=8)
        stop_seconds = time.monotonic() - stopping
        outcomes = [future.result() for future in futures]

    assert exit_code == 0, service.logs()
    assert [outcome.status for outcome in outcomes] == [408] * 5
    # The process waits for the cut reads, not for the 35 s grace period.
    assert stop_seconds < BUDGET_SECONDS + 1.5
    assert "Traceback" not in service.logs()
