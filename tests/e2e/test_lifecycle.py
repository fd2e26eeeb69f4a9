"""The process as deployed: graceful stop, the embedded default, no leaks."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.e2e.conftest import SENTINEL, Cluster, start_cluster
from tests.e2e.pods import container, placeholder, pod
from tests.harness.apiserver import AdmissionResult
from tests.harness.service import JSON_DEBUG_LOGS, REPOSITORY, WebhookService
from webhook.tls.generate import CertificatePaths


def test_sigterm_finishes_in_flight_review(
    tmp_path: Path, certificates: CertificatePaths
) -> None:
    with start_cluster(tmp_path, certificates) as cluster:
        cluster.kube.add_fault(verb="get", resource="secrets", latency=1.5)
        outcome: list[AdmissionResult] = []
        review = threading.Thread(
            target=lambda: outcome.append(
                cluster.caller.admit(
                    pod(container("main", placeholder("DB_USER"))),
                    namespace="runai-team-a",
                )
            )
        )

        review.start()
        # SIGTERM goes out once the review waits on the slow API.
        give_up = time.monotonic() + 10
        while cluster.secret_gets() == 0 and time.monotonic() < give_up:
            time.sleep(0.05)
        status = cluster.service.stop(timeout=20)
        review.join(10)
        logs = cluster.service.logs()

        assert status == 0
        assert len(outcome) == 1
        assert outcome[0].allowed, outcome[0].message
        assert "stopping: finishing in-flight reviews" in logs
        assert '"message":"stopped"' in logs


def test_secret_values_never_leak(cluster: Cluster) -> None:
    responses = []
    for manifest in (
        pod(container("main", placeholder("U"), placeholder("P", key="password"))),
        pod(container("main", placeholder("X", key="absent"))),
        pod(container("main", placeholder("Y", secret="absent"))),
    ):
        result = cluster.caller.admit(manifest, namespace="runai-team-a")
        responses.append(str(result.responses))
        responses.append(result.message)
    status, body = cluster.service.get("/metrics")
    metrics = body.decode()
    logs = cluster.service.logs()

    assert status == 200
    assert "runai_secrets_webhook_reviews_total" in metrics
    assert '"level":"DEBUG"' in logs
    assert SENTINEL not in "".join(responses)
    assert SENTINEL not in logs
    assert SENTINEL not in metrics


def test_log_lines_bind_review_fields(cluster: Cluster) -> None:
    cluster.caller.admit(
        pod(container("main", placeholder("Y", secret="absent"))),
        namespace="runai-team-a",
    )

    denials = [
        line
        for line in cluster.service.log_records(strict=True)
        if line["message"] == "review denied"
    ]

    assert denials
    line = denials[-1]
    assert line["level"] == "INFO"
    assert line["namespace"] == "runai-team-a"
    assert line["kind"] == "Pod"
    assert line["object_name"] == "job-1"
    assert line["operation"] == "CREATE"
    assert line["user"] == "kubernetes-admin"
    assert isinstance(line["uid"], str) and line["uid"]


def test_embedded_default_serves_example(tmp_path: Path) -> None:
    """README's first command, minus the install: dev certs, example secrets."""
    # No TLS flags: the service makes development certificates in certs/.
    service = WebhookService(
        JSON_DEBUG_LOGS,
        tls_files=False,
        ca_file=tmp_path / "certs" / "ca.crt",
        secrets_dir=REPOSITORY / "examples" / "secrets",
        startup_seconds=15,
        directory=tmp_path,
    )
    with service:
        sent = subprocess.run(
            [
                sys.executable,
                str(REPOSITORY / "examples" / "send_review.py"),
                str(REPOSITORY / "examples" / "jobs" / "runai-submit-pod.yaml"),
                "--url",
                service.url,
                "--ca-file",
                str(tmp_path / "certs" / "ca.crt"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert sent.returncode == 0, sent.stderr
    assert "MYUSERNAME <- secret db-creds, key username" in sent.stdout
    assert (tmp_path / "certs" / "tls.key").exists()


def wait_for_listeners(service: WebhookService, count: int) -> None:
    """Wait until `count` workers log that they listen; /readyz needs only one."""
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        # Counted in the raw text: a line being written may not parse yet.
        if service.logs().count('"message":"listening"') >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} workers listen:\n{service.logs()}")


def test_two_workers_share_port(tmp_path: Path, certificates: CertificatePaths) -> None:
    with start_cluster(tmp_path, certificates, "--workers", "2") as cluster:
        wait_for_listeners(cluster.service, 2)
        results = [
            cluster.caller.admit(
                pod(container("main", placeholder("DB_USER"))), namespace="runai-team-a"
            )
            for _ in range(4)
        ]
        status = cluster.service.stop(timeout=20)
        lines = cluster.service.log_records(strict=True)
        logs = cluster.service.logs()

    started = [line for line in lines if line["message"] == "workers started"]
    servers = [line for line in lines if line["message"] == "listening"]
    stopped = [line for line in lines if line["message"] == "workers stopped"]
    assert all(result.allowed for result in results), [r.message for r in results]
    assert status == 0, logs
    assert len(started) == 1
    assert len(started[0]["workers"]) == 2
    assert len(servers) == 2
    assert stopped[0]["failed"] == []
