"""TLS of `python -m webhook serve`: reload, client certificates, versions."""

from __future__ import annotations

import functools
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.harness.service import WebhookService
from tests.tls.support import (
    Caller,
    MountedSecret,
    Response,
    call,
    calling,
    client_certificate,
    client_context,
    handshake,
    new_ca,
    new_leaf,
    serve,
)
from webhook.tls import pki

RELOAD_INTERVAL = 0.2
# The documented delay is one reload interval; the rest is for reading,
# checking and loading the pair on a loaded CI machine.
MAX_DELAY = RELOAD_INTERVAL + 2.0


def _review() -> bytes:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "job-0", "namespace": "team-a"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "team-a",
                "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": pod,
                "oldObject": None,
                "dryRun": False,
            },
        }
    ).encode()


def _post_review(port: int, context: ssl.SSLContext) -> Response:
    return call(port, "POST", "/mutate", context, body=_review())


def _allowed(response: Response) -> bool:
    return response.status == 200 and b'"allowed":true' in response.body


@pytest.fixture
def ca(tmp_path: Path) -> pki.KeyPair:
    ca = new_ca()
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    return ca


@pytest.fixture
def mount(tmp_path: Path, ca: pki.KeyPair) -> MountedSecret:
    mount = MountedSecret(tmp_path / "mount")
    mount.update(new_leaf(ca, lifetime=timedelta(minutes=5)))
    return mount


@pytest.fixture
def service(tmp_path: Path, mount: MountedSecret) -> Iterator[WebhookService]:
    with serve(
        tmp_path / "work",
        "--tls-cert-file", str(mount.cert_file),
        "--tls-key-file", str(mount.key_file),
        "--cert-reload-interval", str(RELOAD_INTERVAL),
    ) as service:  # fmt: skip
        yield service


def test_mutate_keeps_answering_across_reloads(
    tmp_path: Path, ca: pki.KeyPair, mount: MountedSecret, service: WebhookService
) -> None:
    send = functools.partial(
        _post_review, service.port, client_context(tmp_path / "ca.crt")
    )
    with calling(Caller(send, _allowed)) as caller:
        delays = []
        for _ in range(6):
            leaf = new_leaf(ca, lifetime=timedelta(minutes=5))
            replaced_at = time.monotonic()
            mount.update(leaf)
            delays.append(
                caller.delay_until(leaf.cert.serial_number, replaced_at, MAX_DELAY + 3)
            )

    assert caller.failures == []
    assert len(caller.calls) >= 20
    assert max(delays) <= MAX_DELAY, delays
    loaded = [
        line
        for line in service.log_records()
        if line.get("message") == "loaded certificate files"
    ]
    assert len(loaded) == 7
    assert loaded[-1]["cert_file"] == str(mount.cert_file)
    assert "not_after" in loaded[-1]
    assert "localhost" in loaded[-1]["sans"]


def test_mismatched_pair_rejected_by_serve(
    tmp_path: Path, ca: pki.KeyPair, mount: MountedSecret, service: WebhookService
) -> None:
    context = client_context(tmp_path / "ca.crt")
    first = handshake(service.port, context)
    other, another = new_leaf(ca), new_leaf(ca)
    mismatched = pki.KeyPair(other.cert, another.key)
    mount.update(mismatched)

    time.sleep(RELOAD_INTERVAL * 6)
    assert handshake(service.port, context) == first
    assert call(service.port, "POST", "/mutate", context, body=_review()).status == 200
    errors = [line for line in service.log_records() if line.get("level") == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["cert_file"] == str(mount.cert_file)
    assert errors[0]["key_file"] == str(mount.key_file)
    assert "does not match" in errors[0]["reason"]
    log = service.logs()
    for pair in (other, another):
        assert pair.key_pem.decode().splitlines()[1] not in log
    assert "PRIVATE KEY" not in log


def test_metrics_show_certificate_expiry(
    tmp_path: Path, mount: MountedSecret, service: WebhookService
) -> None:
    context = client_context(tmp_path / "ca.crt")
    response = call(service.port, "GET", "/metrics", context)
    line = next(
        line
        for line in response.body.decode().splitlines()
        if line.startswith(
            "runai_secrets_webhook_certificate_expiry_timestamp_seconds{"
        )
    )
    assert 'role="serving"' in line
    assert f'serial="{response.serial:x}"' in line
    expiry = float(line.rsplit(" ", 1)[1])
    assert time.time() < expiry < time.time() + 400


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_serve_rejects_old_tls(tmp_path: Path, service: WebhookService) -> None:
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        old = client_context(tmp_path / "ca.crt", maximum_version=version)
        with pytest.raises(ssl.SSLError):
            handshake(service.port, old)
    same_client_tls12 = client_context(
        tmp_path / "ca.crt", maximum_version=ssl.TLSVersion.TLSv1_2
    )
    assert handshake(service.port, same_client_tls12) > 0


def test_serve_requires_client_certificate(
    tmp_path: Path, ca: pki.KeyPair, mount: MountedSecret
) -> None:
    client_ca = new_ca("client CA")
    (tmp_path / "client-ca.crt").write_bytes(client_ca.cert_pem)
    client = client_certificate(tmp_path, client_ca, "kube-apiserver")
    stranger = client_certificate(tmp_path, new_ca("stranger CA"), "stranger")

    with serve(
        tmp_path / "work",
        "--tls-cert-file", str(mount.cert_file),
        "--tls-key-file", str(mount.key_file),
        "--client-ca-file", str(tmp_path / "client-ca.crt"),
    ) as service:  # fmt: skip
        for presented in (None, stranger):
            context = client_context(tmp_path / "ca.crt", presented)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                call(service.port, "POST", "/mutate", context, body=_review())

        context = client_context(tmp_path / "ca.crt", client)
        response = call(service.port, "POST", "/mutate", context, body=_review())
        assert response.status == 200
        assert b'"allowed":true' in response.body
