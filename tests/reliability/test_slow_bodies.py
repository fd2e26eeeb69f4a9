"""Clients that send their body slowly or leave mid-body free their slot.

Each test opens raw TLS connections to the service on 127.0.0.1, sends the
headers of a review with a declared body length and then stalls or closes.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService
from tests.reliability.calls import client_for, pod_review, post
from tests.reliability.cluster import TEAM_A, pod, running_service

LIMIT = 2
DECLARED_BYTES = 5000


@pytest.fixture(scope="module")
def limited(
    kube: FakeKube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookService]:
    directory: Path = tmp_path_factory.mktemp("slow-bodies")
    with running_service(kube, directory, ["--max-in-flight", str(LIMIT)]) as running:
        yield running


def start_review(service: WebhookService, timeout: str) -> ssl.SSLSocket:
    """Send a review's headers and its first bytes, but not the rest."""
    context = ssl.create_default_context(cadata=service.certificate.ca_pem.decode())
    raw = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    connection = context.wrap_socket(raw, server_hostname="127.0.0.1")
    head = (
        f"POST /mutate?timeout={timeout} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {DECLARED_BYTES}\r\n\r\n"
    )
    connection.sendall(head.encode() + b'{"apiVersion"')
    return connection


def read_response(connection: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_stalled_bodies_answered_408_by_the_deadline(
    limited: WebhookService,
) -> None:
    started = time.monotonic()
    connections = [start_review(limited, "2s") for _ in range(LIMIT)]
    try:
        responses = [read_response(connection) for connection in connections]
    finally:
        for connection in connections:
            connection.close()
    seconds = time.monotonic() - started

    for response in responses:
        assert response.startswith(b"HTTP/1.1 408"), response[:200]
        assert b"was not complete before the review's deadline" in response
        assert f"{DECLARED_BYTES} bytes were declared".encode() in response
    # The budget of a 2 s timeout is 1.6 s. The bound leaves room for a
    # loaded machine and is far below the minute a stalled client took.
    assert seconds < 10
    body = orjson.dumps(pod_review(pod("SECRET:db,password"), TEAM_A))
    with client_for(limited) as client:
        reply = post(client, body, "3s")
    assert reply.status == 200, "a slot was still held by a stalled body"


def test_disconnect_mid_body_logs_one_warning(limited: WebhookService) -> None:
    before = len(limited.log_records())
    connection = start_review(limited, "5s")
    connection.close()

    records: list[dict[str, object]] = []
    for _ in range(100):
        records = limited.log_records()[before:]
        if any(record.get("status") == 400 for record in records):
            break
        time.sleep(0.05)

    rejected = [record for record in records if record.get("status") == 400]
    assert len(rejected) == 1, records
    assert rejected[0]["level"] == "WARNING"
    assert "disconnected" in str(rejected[0]["reason"])
    assert [record for record in records if record["level"] == "ERROR"] == []
    assert "Traceback" not in limited.logs()
