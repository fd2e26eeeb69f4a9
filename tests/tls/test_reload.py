"""Certificate reload while clients keep connecting."""

from __future__ import annotations

import functools
import http.client
import logging
import os
import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.tls.inprocess import running_server
from tests.tls.support import (
    Caller,
    MountedSecret,
    call,
    calling,
    client_context,
    handshake,
    new_ca,
    new_leaf,
    unsupported_curve_key,
    write_files,
)
from webhook.tls import pki
from webhook.tls.pairs import InvalidPairError, ServingPair
from webhook.tls.reload import CertificateFilesError, FileReloader
from webhook.tls.serving import ServingCertificates

POLL_INTERVAL = 0.1
# A new pair must be served within one poll interval plus the time to read,
# check and load it. Two seconds leave room for a loaded CI machine.
MAX_DELAY = POLL_INTERVAL + 2.0


@pytest.fixture
def ca(tmp_path: Path) -> pki.KeyPair:
    ca = new_ca()
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    return ca


def _serve_files(cert_file: Path, key_file: Path) -> ServingCertificates:
    return ServingCertificates.from_files(
        cert_file, key_file, poll_interval=POLL_INTERVAL
    )


def _replace_file(path: Path, content: bytes) -> None:
    """Replace `path` with `content` in one rename, as a mounted Secret changes."""
    staged = path.with_name(path.name + ".new")
    staged.write_bytes(content)
    os.replace(staged, path)


def _wait_until_served(port: int, context: ssl.SSLContext, leaf: pki.KeyPair) -> None:
    deadline = time.monotonic() + MAX_DELAY
    while handshake(port, context) != leaf.cert.serial_number:
        assert time.monotonic() < deadline, f"not served within {MAX_DELAY} s"
        time.sleep(POLL_INTERVAL)


@pytest.mark.parametrize("layout", ["plain files", "mounted secret"])
def test_replaced_pairs_served_without_failed_calls(
    tmp_path: Path, ca: pki.KeyPair, layout: str
) -> None:
    mount = MountedSecret(tmp_path / "mount")
    first = new_leaf(ca, lifetime=timedelta(minutes=2))
    if layout == "mounted secret":
        mount.update(first)
    else:
        write_files(mount.directory, first)

    context = client_context(tmp_path / "ca.crt")
    with running_server(_serve_files(mount.cert_file, mount.key_file)) as port:
        send = functools.partial(call, port, "GET", "/healthz", context)
        with calling(Caller(send)) as caller:
            caller.delay_until(
                first.cert.serial_number, time.monotonic() - 1, MAX_DELAY
            )
            delays = []
            for _ in range(5):
                leaf = new_leaf(ca, lifetime=timedelta(minutes=2))
                replaced_at = time.monotonic()
                if layout == "mounted secret":
                    mount.update(leaf)
                else:
                    write_files(mount.directory, leaf)
                delays.append(
                    caller.delay_until(
                        leaf.cert.serial_number, replaced_at, MAX_DELAY + 1
                    )
                )

    assert caller.failures == []
    assert max(delays) <= MAX_DELAY, delays
    assert len(caller.calls) > 10


def test_mismatched_pair_rejected_old_kept(
    tmp_path: Path, ca: pki.KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = new_leaf(ca), new_leaf(ca)
    write_files(tmp_path, first)
    context = client_context(tmp_path / "ca.crt")

    with running_server(
        _serve_files(tmp_path / "tls.crt", tmp_path / "tls.key")
    ) as port:
        with caplog.at_level(logging.INFO, logger="webhook.tls"):
            # Each file is replaced whole, so that a poll never reads one half
            # written, which would be a second, different rejection.
            _replace_file(tmp_path / "tls.crt", second.cert_pem)
            time.sleep(POLL_INTERVAL * 5)
            assert handshake(port, context) == first.cert.serial_number

            _replace_file(tmp_path / "tls.key", second.key_pem)
            _wait_until_served(port, context, second)

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].__dict__["cert_file"] == str(tmp_path / "tls.crt")
    assert errors[0].__dict__["key_file"] == str(tmp_path / "tls.key")
    assert "does not match" in errors[0].__dict__["reason"]
    logged = " ".join(str(vars(record)) for record in caplog.records)
    for key in (first, second):
        assert key.key_pem.decode().splitlines()[1] not in logged
    assert "PRIVATE KEY" not in logged


def test_half_written_certificate_rejected(tmp_path: Path, ca: pki.KeyPair) -> None:
    first, second = new_leaf(ca), new_leaf(ca)
    write_files(tmp_path, first)
    context = client_context(tmp_path / "ca.crt")

    with running_server(
        _serve_files(tmp_path / "tls.crt", tmp_path / "tls.key")
    ) as port:
        # Write in place, as a careless copy would: key first, then half a cert.
        (tmp_path / "tls.key").write_bytes(second.key_pem)
        (tmp_path / "tls.crt").write_bytes(second.cert_pem[: len(second.cert_pem) // 2])
        time.sleep(POLL_INTERVAL * 5)
        assert handshake(port, context) == first.cert.serial_number

        (tmp_path / "tls.crt").write_bytes(second.cert_pem)
        _wait_until_served(port, context, second)


def test_open_connection_keeps_its_certificate(tmp_path: Path, ca: pki.KeyPair) -> None:
    first, second = new_leaf(ca), new_leaf(ca)
    write_files(tmp_path, first)
    context = client_context(tmp_path / "ca.crt")

    with running_server(
        _serve_files(tmp_path / "tls.crt", tmp_path / "tls.key")
    ) as port:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b"ok"
        sock = connection.sock

        write_files(tmp_path, second)
        _wait_until_served(port, context, second)

        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == b"ok"
        assert connection.sock is sock
        connection.close()


def test_startup_rejects_invalid_files(tmp_path: Path, ca: pki.KeyPair) -> None:
    first, second = new_leaf(ca), new_leaf(ca)
    (tmp_path / "tls.crt").write_bytes(first.cert_pem)
    (tmp_path / "tls.key").write_bytes(second.key_pem)
    with pytest.raises(InvalidPairError, match="does not match"):
        _serve_files(tmp_path / "tls.crt", tmp_path / "tls.key")
    missing = tmp_path / "missing.crt"
    with pytest.raises(CertificateFilesError, match=f"cannot read {missing}: No such"):
        _serve_files(missing, tmp_path / "tls.key")


def test_expired_pair_rejected(tmp_path: Path, ca: pki.KeyPair) -> None:
    installed: list[ServingPair] = []
    expired = pki.issue_leaf(
        ca,
        dns_names=["localhost"],
        now=datetime.now(UTC) - timedelta(hours=2),
        lifetime=timedelta(hours=1),
    )
    write_files(tmp_path, expired)
    reloader = FileReloader(
        tmp_path / "tls.crt", tmp_path / "tls.key", installed.append
    )

    with pytest.raises(InvalidPairError, match="expired at"):
        reloader.load()
    assert reloader.poll() is False
    assert installed == []


def test_not_yet_valid_pair_accepted_later(tmp_path: Path, ca: pki.KeyPair) -> None:
    now = datetime.now(UTC)
    clock = [now - timedelta(hours=1)]
    installed: list[ServingPair] = []
    write_files(tmp_path, new_leaf(ca))
    reloader = FileReloader(
        tmp_path / "tls.crt",
        tmp_path / "tls.key",
        installed.append,
        clock=lambda: clock[0],
    )

    assert reloader.poll() is False
    clock[0] = now
    assert reloader.poll() is True
    assert reloader.poll() is False
    assert len(installed) == 1


def test_ready_follows_served_certificate(tmp_path: Path, ca: pki.KeyPair) -> None:
    write_files(tmp_path, new_leaf(ca, lifetime=timedelta(hours=1)))
    serving = _serve_files(tmp_path / "tls.crt", tmp_path / "tls.key")
    assert serving.ready()
    assert not ServingCertificates().ready()

    late = ServingCertificates(clock=lambda: datetime.now(UTC) + timedelta(hours=2))
    assert serving.served is not None
    late.install(serving.served)
    assert not late.ready()


def test_unloadable_pair_keeps_previous(
    tmp_path: Path, ca: pki.KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    client_ca = tmp_path / "client-ca.crt"
    client_ca.write_bytes(new_ca("client CA").cert_pem)
    serving = ServingCertificates(client_ca)
    first, second = new_leaf(ca), new_leaf(ca)
    write_files(tmp_path, first)
    reloader = FileReloader(tmp_path / "tls.crt", tmp_path / "tls.key", serving.install)
    reloader.load()

    # The new context cannot be built while the client CA file is missing.
    client_ca.unlink()
    write_files(tmp_path, second)
    with caplog.at_level(logging.ERROR, logger="webhook.tls"):
        assert reloader.poll() is False

    assert serving.served is not None
    assert serving.served.leaf == first.cert
    reason = caplog.records[-1].__dict__["reason"]
    assert reason.startswith(f"client CA file {client_ca}: cannot be read: ")

    client_ca.write_bytes(new_ca("client CA").cert_pem)
    assert reloader.poll() is True
    assert serving.served.leaf == second.cert


def test_unsupported_curve_key_rejected_next_loaded(
    tmp_path: Path, ca: pki.KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    mount = MountedSecret(tmp_path / "mount")
    first, bad, third = new_leaf(ca), new_leaf(ca), new_leaf(ca)
    mount.update(first)
    serving = ServingCertificates()
    reloader = FileReloader(mount.cert_file, mount.key_file, serving.install)
    reloader.load()

    mount.update_pem(bad.cert_pem, unsupported_curve_key())
    with caplog.at_level(logging.ERROR, logger="webhook"):
        assert reloader.poll() is False
        assert reloader.poll() is False

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith("rejected new certificate files")
    assert errors[0].__dict__["cert_file"] == str(mount.cert_file)
    assert errors[0].__dict__["key_file"] == str(mount.key_file)
    assert "unsupported private key algorithm" in errors[0].__dict__["reason"]
    assert "1.3.132.0.6" in errors[0].__dict__["reason"]
    assert serving.served is not None
    assert serving.served.leaf == first.cert
    assert serving.ready()

    mount.update(third)
    assert reloader.poll() is True
    assert serving.served.leaf == third.cert


def test_unsupported_curve_key_swap_served_live(
    tmp_path: Path, ca: pki.KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    mount = MountedSecret(tmp_path / "mount")
    first, bad, third = new_leaf(ca), new_leaf(ca), new_leaf(ca)
    mount.update(first)
    context = client_context(tmp_path / "ca.crt")

    serving = _serve_files(mount.cert_file, mount.key_file)
    with caplog.at_level(logging.ERROR, logger="webhook"):
        with running_server(serving) as port:
            mount.update_pem(bad.cert_pem, unsupported_curve_key())
            time.sleep(POLL_INTERVAL * 5)
            assert handshake(port, context) == first.cert.serial_number
            assert serving.ready()

            mount.update(third)
            _wait_until_served(port, context, third)

    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert messages == [
        "rejected new certificate files; still serving the previous pair"
    ]


def test_unsupported_curve_key_at_startup(tmp_path: Path, ca: pki.KeyPair) -> None:
    leaf = new_leaf(ca)
    (tmp_path / "tls.crt").write_bytes(leaf.cert_pem)
    (tmp_path / "tls.key").write_bytes(unsupported_curve_key())

    with pytest.raises(InvalidPairError, match="unsupported private key algorithm"):
        _serve_files(tmp_path / "tls.crt", tmp_path / "tls.key")


SERVICE_HOST = "runai-secrets-webhook.runai-secrets-webhook.svc"


@pytest.mark.parametrize(
    ("dns_names", "warned"),
    [
        ((SERVICE_HOST,), False),
        ((f"{SERVICE_HOST}.cluster.local",), True),
        (("*.runai-secrets-webhook.svc",), False),
        (("other.elsewhere.svc",), True),
        (("*.svc",), True),
        (("localhost",), True),
    ],
)
def test_certificate_without_service_name_warned(
    tmp_path: Path,
    ca: pki.KeyPair,
    caplog: pytest.LogCaptureFixture,
    dns_names: tuple[str, ...],
    warned: bool,
) -> None:
    write_files(tmp_path, new_leaf(ca, dns_names=dns_names))
    reloader = FileReloader(
        tmp_path / "tls.crt",
        tmp_path / "tls.key",
        lambda pair: None,
        service_host=SERVICE_HOST,
    )

    with caplog.at_level(logging.INFO, logger="webhook.tls"):
        reloader.load()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == int(warned)
    if warned:
        assert warnings[0].__dict__["expected"] == SERVICE_HOST
        assert dns_names[0] in warnings[0].__dict__["sans"]
