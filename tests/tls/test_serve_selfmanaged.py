"""`python -m webhook serve --self-managed-certs` against the fake API server."""

from __future__ import annotations

import base64
import re
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from tests.harness.fakekube import FakeKube
from tests.harness.service import running_services
from tests.tls.support import MUTATING, NAMESPACE, SECRET, ca_bundles, call, serve

SERVICE_NAME = "runai-secrets-webhook"
# The name kube-apiserver connects to and checks in the certificate.
SERVICE_DNS = f"{SERVICE_NAME}.{NAMESPACE}.svc"
# Calls over new connections, which either worker of `--workers 2` may accept.
CONNECTIONS = 20


def _flags(kubeconfig: Path) -> list[str]:
    return [
        "--self-managed-certs",
        "--kubeconfig", str(kubeconfig),
        "--service-name", SERVICE_NAME,
        "--service-namespace", NAMESPACE,
        "--ca-secret-name", SECRET,
        "--webhook-configuration-name", MUTATING,
    ]  # fmt: skip


def _wait_for_bundle(kube: FakeKube, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bundles = ca_bundles(kube)
        if all(bundles) and len(set(bundles)) == 1:
            return bundles[0]
        time.sleep(0.1)
    raise AssertionError("caBundle not set in time")


def test_two_processes_share_one_ca(kube: FakeKube, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    replicas = [
        serve(tmp_path / name, *_flags(kubeconfig))
        for name in ("replica-a", "replica-b")
    ]
    with running_services(*replicas) as services:
        bundle = _wait_for_bundle(kube)
        ca_file = tmp_path / "bundle.pem"
        ca_file.write_bytes(base64.b64decode(bundle))
        context = ssl.create_default_context(cafile=str(ca_file))

        leaves = []
        for service in services:
            deadline = time.monotonic() + 20
            while True:
                try:
                    response = call(
                        service.port,
                        "GET",
                        "/readyz",
                        context,
                        server_hostname=SERVICE_DNS,
                    )
                except (ssl.SSLError, ConnectionError):
                    response = None
                if response is not None and response.status == 200:
                    break
                assert time.monotonic() < deadline, service.logs()
                time.sleep(0.1)
            leaves.append(response.serial)

    secret = kube.get("v1", "secrets", NAMESPACE, SECRET)
    ca_certs = x509.load_pem_x509_certificates(
        base64.b64decode(secret["data"]["ca.crt"])
    )
    assert len(ca_certs) == 1
    assert ca_bundles(kube) == [secret["data"]["ca.crt"]] * 2
    assert kube.count(verb="create", resource="secrets") <= 2
    assert len(set(leaves)) == 2
    for service in services:
        issued = _issued(service.log_records())
        assert len(issued) == 1
        assert SERVICE_DNS in issued[0]["sans"]
        assert "PRIVATE KEY" not in service.logs()


def _issued(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("message") == "issued serving certificate"]


def test_two_workers_share_one_ca(kube: FakeKube, tmp_path: Path) -> None:
    # As the chart runs it with workers: 2. Each worker runs the
    # self-managed loop on its own and shares the CA as replicas do.
    flags = [*_flags(tmp_path / "kubeconfig"), "--workers", "2"]

    with serve(tmp_path / "service", *flags) as service:
        bundle = _wait_for_bundle(kube, timeout=30)
        # The second worker may still be on its bootstrap certificate.
        _wait(lambda: len(_issued(service.log_records())) == 2, 30)
        ca_file = tmp_path / "bundle.pem"
        ca_file.write_bytes(base64.b64decode(bundle))
        context = ssl.create_default_context(cafile=str(ca_file))

        serials: set[int] = set()
        statuses: list[int] = []
        deadline = time.monotonic() + 30
        while len(statuses) < CONNECTIONS:
            try:
                response = call(
                    service.port, "GET", "/readyz", context, server_hostname=SERVICE_DNS
                )
            except (ssl.SSLError, ConnectionError):
                # A worker still serves its bootstrap certificate.
                assert time.monotonic() < deadline, service.logs()
                time.sleep(0.1)
                continue
            statuses.append(response.status)
            serials.add(response.serial)
        metrics = call(
            service.port, "GET", "/metrics", context, server_hostname=SERVICE_DNS
        ).body.decode()
        exit_code = service.stop()
        logs = service.log_records()

    secret = kube.get("v1", "secrets", NAMESPACE, SECRET)
    ca_certs = x509.load_pem_x509_certificates(
        base64.b64decode(secret["data"]["ca.crt"])
    )
    assert len(ca_certs) == 1
    assert set(ca_bundles(kube)) == {secret["data"]["ca.crt"]}
    assert statuses == [200] * CONNECTIONS
    # Every connection was verified against the published caBundle. The
    # gauges show both workers, and the one CA. A worker's bootstrap
    # certificate keeps its series too, since multiprocess mode drops none.
    gauges = re.findall(r'\{pid="(\d+)",role="(\w+)",serial="(\w+)"\}', metrics)
    serving = {int(serial, 16) for _, role, serial in gauges if role == "serving"}
    ca_serials = {serial for _, role, serial in gauges if role == "ca"}
    assert len({pid for pid, _, _ in gauges}) == 2
    assert ca_serials == {f"{ca_certs[0].serial_number:x}"}
    assert serials <= serving
    assert len(_issued(logs)) == 2
    assert exit_code == 0


def test_readyz_false_until_certificate_issued(kube: FakeKube, tmp_path: Path) -> None:
    kube.deny("get", "secrets", NAMESPACE)
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE

    with serve(tmp_path / "work", *_flags(tmp_path / "kubeconfig")) as service:
        _wait(lambda: kube.count(verb="get", resource="secrets", status=403) > 0)
        # The placeholder certificate lets probes in, and /readyz reports
        # why the service is not ready.
        response = call(service.port, "GET", "/readyz", unverified)
        assert response.status == 503
        assert b"no serving certificate" in response.body
        assert ca_bundles(kube) == ["", ""]

        kube.clear_denials()
        # Retries come 1, 2, 4 ... seconds after the failures.
        _wait(
            lambda: call(service.port, "GET", "/readyz", unverified).status == 200, 20
        )

    errors = [line for line in service.log_records() if line.get("level") == "ERROR"]
    assert errors
    assert [line["retry_seconds"] for line in errors] == [
        2.0**i for i in range(len(errors))
    ]
    assert errors[0]["status"] == 403
    assert errors[0]["error"].startswith("HTTP 403 Forbidden: ")
    assert 'cannot get resource "secrets"' in errors[0]["error"]
    bundle = ca_bundles(kube)[0]
    assert bundle
    issued = [
        line
        for line in service.log_records()
        if line.get("message") == "issued serving certificate"
    ]
    assert len(issued) == 1


def _wait(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
