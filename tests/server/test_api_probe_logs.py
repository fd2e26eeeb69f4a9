"""Start-up probe of the Kubernetes API, as an admin reads it in the logs.

`serve` is not ready until the API has answered once. Each failed attempt
logs the API address and the reason, and an answer of 401 at start is
logged as a WARNING, because every lookup will then fail the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService, free_port

Record = dict[str, Any]


def _wait_for_record(
    service: WebhookService, matches: Callable[[Record], bool], seconds: float = 15
) -> Record:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for record in service.log_records():
            if matches(record):
                return record
        time.sleep(0.2)
    raise AssertionError(f"no matching log line in:\n{service.logs()}")


def test_unreachable_api_logged_with_reason(tmp_path: Path) -> None:
    port = free_port()
    with FakeKube() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    text = kubeconfig.read_text().replace(f":{kube.port}", f":{port}")
    kubeconfig.write_text(text)

    with WebhookService(kubeconfig=kubeconfig, ready_path=None) as service:
        record = _wait_for_record(
            service,
            lambda r: r.get("message") == "secret source not reachable, retrying",
        )
        status, body = service.get("/readyz")

    assert record["level"] == "WARNING"
    assert record["source"] == f"https://127.0.0.1:{port}"
    assert "connection refused" in record["error"]
    assert record["attempt"] == 1
    assert status == 503
    assert b"secret source not reachable" in body


def test_rejected_token_logged_at_start(tmp_path: Path) -> None:
    with FakeKube() as kube:
        kubeconfig = kube.write_kubeconfig(
            tmp_path / "kubeconfig", token="token-the-api-rejects"
        )
        with WebhookService(kubeconfig=kubeconfig) as service:
            record = _wait_for_record(
                service,
                lambda r: r.get("message") == "secret source responded with an error",
            )
            logs = service.logs()

    assert record["level"] == "WARNING"
    assert record["source"] == kube.url
    assert "HTTP 401" in record["error"]
    assert "token-the-api-rejects" not in logs
