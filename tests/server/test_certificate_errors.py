"""Startup errors for certificate files: each names the flag, path and fix."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.tls.support import new_ca, new_leaf
from webhook.server.certificates import serving_certificates
from webhook.settings import ServeSettings
from webhook.tls import pki

FILES_FIX = (
    "pass a readable PEM certificate chain (leaf first) that is valid now and "
    "the unencrypted PEM private key of its first certificate"
)


@pytest.fixture
def leaf(tmp_path: Path) -> pki.KeyPair:
    leaf = new_leaf(new_ca(), lifetime=timedelta(hours=1))
    (tmp_path / "tls.crt").write_bytes(leaf.cert_pem)
    (tmp_path / "tls.key").write_bytes(leaf.key_pem)
    return leaf


def _start(tmp_path: Path, **overrides: str) -> str:
    values = {
        "tls_cert_file": str(tmp_path / "tls.crt"),
        "tls_key_file": str(tmp_path / "tls.key"),
        **overrides,
    }
    settings = ServeSettings(**values)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as caught:
        serving_certificates(settings, CollectorRegistry())
    return str(caught.value)


def test_missing_client_ca_file(tmp_path: Path, leaf: pki.KeyPair) -> None:
    missing = tmp_path / "missing.pem"

    message = _start(tmp_path, client_ca_file=str(missing))

    assert message.startswith(f"--client-ca-file {missing}: cannot be read: ")
    assert "No such file or directory" in message
    assert "pass a PEM file with the CA certificates" in message


def test_garbage_client_ca_file(tmp_path: Path, leaf: pki.KeyPair) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")

    message = _start(tmp_path, client_ca_file=str(garbage))

    assert message.startswith(f"--client-ca-file {garbage}: contains no certificate")
    assert "NO_CERTIFICATE_OR_CRL_FOUND" in message
    assert "-----BEGIN CERTIFICATE-----" in message
    assert "pass a PEM file with the CA certificates" in message


def test_mismatched_pair_names_both_files(tmp_path: Path, leaf: pki.KeyPair) -> None:
    other = new_leaf(new_ca())
    (tmp_path / "tls.key").write_bytes(other.key_pem)

    message = _start(tmp_path)

    assert message.startswith(
        f"--tls-cert-file {tmp_path / 'tls.crt'} and "
        f"--tls-key-file {tmp_path / 'tls.key'}: "
        "private key does not match the certificate"
    )
    assert message.endswith(FILES_FIX)


def test_missing_certificate_file(tmp_path: Path, leaf: pki.KeyPair) -> None:
    (tmp_path / "tls.crt").unlink()

    message = _start(tmp_path)

    assert f"cannot read {tmp_path / 'tls.crt'}: No such file or directory" in message
    assert message.startswith(f"--tls-cert-file {tmp_path / 'tls.crt'} and ")
    assert message.endswith(FILES_FIX)


def test_serve_logs_flag_and_path(tmp_path: Path, leaf: pki.KeyPair) -> None:
    missing = tmp_path / "missing.pem"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    command = [
        sys.executable, "-m", "webhook", "serve",
        "--host", "127.0.0.1", "--port", "0", "--log-format", "text",
        "--secrets-dir", str(secrets),
        "--tls-cert-file", str(tmp_path / "tls.crt"),
        "--tls-key-file", str(tmp_path / "tls.key"),
        "--client-ca-file", str(missing),
    ]  # fmt: skip

    done = subprocess.run(command, capture_output=True, text=True, timeout=60)

    assert done.returncode == 1
    assert "startup failed" in done.stderr
    assert f"--client-ca-file {missing}: cannot be read" in done.stderr
