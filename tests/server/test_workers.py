"""`serve --workers 2`: two processes on one port, metrics added up."""

from __future__ import annotations

import os
import re
import signal
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import certs
from tests.harness.fakekube import FakeKube
from tests.harness.fixtures import fake_kube
from tests.harness.service import WebhookService
from webhook.cli import build_parser

__all__ = ["fake_kube"]

REVIEWS = 6
SCRAPES = 6
CONNECTIONS = 6
RELOAD_INTERVAL_SECONDS = 0.2


def served_certificates(port: int) -> set[bytes]:
    """Return the certificates that new connections to `port` were served."""
    served = set()
    for _ in range(CONNECTIONS):
        pem = ssl.get_server_certificate(("127.0.0.1", port))
        served.add(ssl.PEM_cert_to_DER_cert(pem))
    return served


def wait_for_certificate(port: int, expected: bytes, seconds: float) -> set[bytes]:
    deadline = time.monotonic() + seconds
    served = served_certificates(port)
    while served != {expected} and time.monotonic() < deadline:
        time.sleep(RELOAD_INTERVAL_SECONDS)
        served = served_certificates(port)
    return served


def worker_pids(pid: int) -> set[int]:
    """Return the children of `pid` that multiprocessing spawned as workers.

    multiprocessing also starts a resource tracker, which is left out.
    """
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.update(int(child) for child in (task / "children").read_text().split())
    return {
        child
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    }


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "job-1-0", "namespace": "team-a"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "env": [{"name": "DB_USER", "value": "SECRET:db-creds,username"}],
                }
            ]
        },
    }


def gauge_pids(service: WebhookService) -> set[str]:
    """Return the pids on the gauges of one scrape: the workers that started."""
    return set(re.findall(r'pid="(\d+)"', service.get("/metrics")[1].decode()))


def wait_for_workers(service: WebhookService, workers: set[int]) -> set[str]:
    # /readyz turns 200 with the first worker; the second may still import.
    expected = {str(pid) for pid in workers}
    deadline = time.monotonic() + 20
    seen = gauge_pids(service)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = gauge_pids(service)
    return seen


def patched_reviews(metrics: str) -> float:
    match = re.search(
        r'^runai_secrets_webhook_reviews_total\{kind="Pod",operation="CREATE",'
        r'outcome="patched"\} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    assert match, metrics
    return float(match.group(1))


def test_two_workers_serve_and_add_up_metrics(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    # The webhook configuration selects Run:AI project namespaces.
    fake_kube.add_namespace("team-a", {"runai/queue": "team-a"})
    fake_kube.add_secret("team-a", "db-creds", {"username": "alice"})
    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "kubeconfig")

    args = ["--workers", "2", "--cert-reload-interval", str(RELOAD_INTERVAL_SECONDS)]
    with WebhookService(args, kubeconfig=kubeconfig) as service:
        assert service.pid is not None
        workers = worker_pids(service.pid)
        started = wait_for_workers(service, workers)
        caller = service.caller(kube=fake_kube)
        results = [caller.admit(pod(), namespace="team-a") for _ in range(REVIEWS)]
        # Each GET is a new connection, which either worker may accept.
        scrapes = [service.get("/metrics")[1].decode() for _ in range(SCRAPES)]
        metrics_dirs = [
            record["metrics_dir"]
            for record in service.log_records()
            if record.get("message") == "workers started"
        ]
        # Every worker reloads the files on its own.
        renewed = certs.issue("127.0.0.1")
        renewed.write(service.directory / "tls")
        expected = ssl.PEM_cert_to_DER_cert(renewed.cert_pem.decode())
        served = wait_for_certificate(service.port, expected, seconds=10)

    assert service.exit_code == 0
    assert len(workers) == 2
    assert started == {str(pid) for pid in workers}
    assert all(result.allowed for result in results)
    for result in results:
        assert result.object is not None
        env = result.object["spec"]["containers"][0]["env"]
        assert env[0]["valueFrom"]["secretKeyRef"]["name"] == "db-creds"
    for scrape in scrapes:
        assert patched_reviews(scrape) == REVIEWS
    # Gauges carry the worker's pid in multiprocess mode: both are read.
    pids = set(re.findall(r'pid="(\d+)"', "".join(scrapes)))
    assert pids == {str(pid) for pid in workers}
    assert served == {expected}
    # The expiry gauge cannot drop the replaced series in this mode, and the
    # client's warning about it would be a WARNING line at each reload.
    warnings = [r for r in service.log_records() if r.get("logger") == "py.warnings"]
    assert warnings == []
    assert len(metrics_dirs) == 1
    assert not Path(metrics_dirs[0]).exists()


def test_killed_worker_stops_service(fake_kube: FakeKube, tmp_path: Path) -> None:
    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "kubeconfig")

    with WebhookService(["--workers", "2"], kubeconfig=kubeconfig) as service:
        assert service.pid is not None
        workers = worker_pids(service.pid)
        wait_for_workers(service, workers)
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        # The supervisor stops the other worker, which may take the
        # graceful shutdown's time if a connection is still open.
        deadline = time.monotonic() + 40
        while service.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        still_running = service.running()
        # stop() sends no signal to a process that has ended, and returns its
        # exit code.
        exit_code = service.stop()

    assert not still_running
    assert exit_code == 1
    assert len(workers) == 2
    stopped = [
        record
        for record in service.log_records()
        if record.get("message") == "workers stopped"
    ]
    assert len(stopped) == 1
    assert killed in stopped[0]["failed"]


def test_worker_count_below_one_is_rejected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--workers", "0"])

    assert "invalid worker count '0': must be >= 1" in capsys.readouterr().err
