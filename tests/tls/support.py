"""Certificates, mounted-Secret layouts and TLS clients for the TLS tests."""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.harness.fakekube import FakeKube
from tests.harness.service import JSON_DEBUG_LOGS, WebhookService
from webhook.tls import pki


def serve(workdir: Path, *flags: str) -> WebhookService:
    """Prepare `serve` in workdir with the TLS flags in `flags`.

    It counts as started once the port accepts connections, because some
    tests start it before its certificate exists. Without `--kubeconfig` it
    reads secrets from an empty `workdir/secrets`, so no API is needed.
    """
    secrets_dir = None
    if "--kubeconfig" not in flags:
        secrets_dir = workdir / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
    return WebhookService(
        [*JSON_DEBUG_LOGS, *flags],
        tls_files=False,
        secrets_dir=secrets_dir,
        ready_path=None,
        directory=workdir,
    )


def new_ca(
    name: str = "test CA", *, lifetime: timedelta = timedelta(days=1)
) -> pki.KeyPair:
    return pki.create_ca(name, now=datetime.now(UTC), lifetime=lifetime)


def new_leaf(
    ca: pki.KeyPair,
    *,
    lifetime: timedelta = timedelta(minutes=10),
    dns_names: Sequence[str] = ("localhost",),
) -> pki.KeyPair:
    """Issue a short-lived leaf for loopback, as the server's tests reach it."""
    return pki.issue_leaf(
        ca,
        dns_names=dns_names,
        ip_addresses=["127.0.0.1"],
        now=datetime.now(UTC),
        lifetime=lifetime,
    )


# A SEC1 EC private key on secp112r1 (OID 1.3.132.0.6), in the layout that
# `openssl ecparam -name secp112r1 -genkey -noout` writes. OpenSSL parses the
# curve, `cryptography` raises UnsupportedAlgorithm for it.
_SECP112R1_KEY_DER = bytes.fromhex(
    "301c020101040e0102030405060708090a0b0c0d0ea00706052b81040006"
)


def unsupported_curve_key() -> bytes:
    """Return a PEM EC key on a curve that `cryptography` cannot load.

    The key comes from openssl when it is installed, else from a fixed
    encoding of the same form.
    """
    openssl = shutil.which("openssl")
    if openssl is not None:
        made = subprocess.run(
            [openssl, "ecparam", "-name", "secp112r1", "-genkey", "-noout"],
            capture_output=True,
            check=False,
        )
        if made.returncode == 0 and b"EC PRIVATE KEY" in made.stdout:
            return made.stdout
    encoded = base64.encodebytes(_SECP112R1_KEY_DER)
    return b"-----BEGIN EC PRIVATE KEY-----\n%b-----END EC PRIVATE KEY-----\n" % (
        encoded
    )


def write_files(directory: Path, leaf: pki.KeyPair) -> None:
    """Replace tls.crt and tls.key, each by an atomic rename."""
    for name, data in (("tls.key", leaf.key_pem), ("tls.crt", leaf.cert_pem)):
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)


class MountedSecret:
    """A directory laid out as kubelet mounts a Secret volume.

    The visible files are symlinks into `..data`, itself a symlink to a
    timestamped directory. An update writes a new timestamped directory and
    renames a new `..data` link over the old one.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._version = 0
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def cert_file(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.directory / "tls.key"

    def update(self, leaf: pki.KeyPair) -> None:
        self.update_pem(leaf.cert_pem, leaf.key_pem)

    def update_pem(self, cert_pem: bytes, key_pem: bytes) -> None:
        self._version += 1
        version_dir = (
            self.directory / f"..2026_12_04_00_00_{self._version:02d}.{os.getpid()}"
        )
        version_dir.mkdir()
        (version_dir / "tls.crt").write_bytes(cert_pem)
        (version_dir / "tls.key").write_bytes(key_pem)

        data_link = self.directory / "..data"
        old_target = os.readlink(data_link) if data_link.is_symlink() else None
        tmp_link = self.directory / "..data_tmp"
        tmp_link.symlink_to(version_dir.name)
        os.replace(tmp_link, data_link)
        for name in ("tls.crt", "tls.key"):
            link = self.directory / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        if old_target is not None:
            for child in (self.directory / old_target).iterdir():
                child.unlink()
            (self.directory / old_target).rmdir()


@dataclass
class ClientCertificate:
    cert_file: Path
    key_file: Path


def client_certificate(
    directory: Path, ca: pki.KeyPair, name: str
) -> ClientCertificate:
    """Write a client certificate for name signed by ca, as kube-apiserver has."""
    key = pki.new_private_key()
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    pair = pki.KeyPair(cert, key)
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(pair.cert_pem)
    key_file.write_bytes(pair.key_pem)
    return ClientCertificate(cert_file, key_file)


def client_context(
    ca_file: Path,
    client: ClientCertificate | None = None,
    *,
    maximum_version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if maximum_version is not None:
        # OpenSSL 3 refuses TLS 1.0 and 1.1 on the client at its default
        # security level. Level 0 lets the client offer them, so that it is
        # the server that rejects them.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum_version
    if ciphers is not None:
        context.set_ciphers(ciphers)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if client is not None:
        context.load_cert_chain(str(client.cert_file), str(client.key_file))
    return context


@dataclass
class Response:
    status: int
    body: bytes
    serial: int


class _Connection(http.client.HTTPSConnection):
    """An HTTPS connection to 127.0.0.1 that sends another name in SNI."""

    def __init__(
        self, port: int, context: ssl.SSLContext, server_hostname: str, timeout: float
    ) -> None:
        super().__init__("127.0.0.1", port, context=context, timeout=timeout)
        self._tls_context = context
        self._server_hostname = server_hostname

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._tls_context.wrap_socket(
            raw, server_hostname=self._server_hostname
        )


def call(
    port: int,
    method: str,
    path: str,
    context: ssl.SSLContext,
    *,
    body: bytes | None = None,
    server_hostname: str = "127.0.0.1",
    timeout: float = 5.0,
) -> Response:
    """Send one request over a new connection; return the response and serial."""
    connection = _Connection(port, context, server_hostname, timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        assert connection.sock is not None
        der = connection.sock.getpeercert(binary_form=True)
        assert der is not None
        serial = x509.load_der_x509_certificate(der).serial_number
        return Response(response.status, data, serial)
    finally:
        connection.close()


def get(
    port: int, path: str, context: ssl.SSLContext, *, timeout: float = 5.0
) -> tuple[int, int]:
    """GET path over a new connection; return the status and the server's serial."""
    response = call(port, "GET", path, context, timeout=timeout)
    return response.status, response.serial


@dataclass
class Caller:
    """Sends a request over a new connection again and again, in a thread.

    Each success records when it returned and the serial the server showed;
    every exception or rejected response is a failure.
    """

    send: Callable[[], Response]
    accept: Callable[[Response], bool] = lambda response: response.status == 200
    calls: list[tuple[float, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                response = self.send()
            except Exception as error:  # noqa: BLE001 - every failure counts
                self.failures.append(repr(error))
                continue
            if not self.accept(response):
                self.failures.append(
                    f"status {response.status}: {response.body[:200]!r}"
                )
            self.calls.append((time.monotonic(), response.serial))

    def delay_until(self, serial: int, since: float, timeout: float) -> float:
        """Return the seconds from since until a call saw serial."""
        while time.monotonic() < since + timeout:
            for at, seen in list(self.calls):
                if at >= since and seen == serial:
                    return at - since
            time.sleep(0.01)
        raise AssertionError(f"serial {serial:x} not served within {timeout} s")


@contextmanager
def calling(caller: Caller) -> Iterator[Caller]:
    """Run caller in a thread for the duration of the block."""
    thread = threading.Thread(target=caller.run, daemon=True)
    thread.start()
    try:
        yield caller
    finally:
        caller.stop.set()
        thread.join(timeout=10)


def handshake(port: int, context: ssl.SSLContext) -> int:
    """Complete a TLS handshake only; return the server certificate's serial."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number


# The self-managed mode's names, as the Helm chart sets them.
NAMESPACE = "runai-secrets-webhook"
SECRET = "runai-secrets-webhook-ca"
MUTATING = "runai-secrets-webhook"
VALIDATING = "runai-secrets-webhook-templates"


def webhook_configuration(kind: str, name: str, webhooks: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": webhook,
                "clientConfig": {
                    "service": {"name": "runai-secrets-webhook", "namespace": NAMESPACE}
                },
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
            }
            for webhook in webhooks
        ],
    }


def ca_bundles(
    kube: FakeKube, plural: str = "mutatingwebhookconfigurations"
) -> list[str]:
    name = MUTATING if plural.startswith("mutating") else VALIDATING
    config = kube.get("admissionregistration.k8s.io/v1", plural, "", name)
    return [w["clientConfig"].get("caBundle", "") for w in config["webhooks"]]


def bundle_certs(bundle_b64: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(base64.b64decode(bundle_b64))


def issuing_ca(leaf: x509.Certificate, bundle_b64: str) -> x509.Certificate | None:
    """Return the CA in the bundle that signed leaf, or None."""
    for ca in bundle_certs(bundle_b64):
        try:
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def issued_by_bundle(leaf: x509.Certificate, bundle_b64: str) -> bool:
    return issuing_ca(leaf, bundle_b64) is not None
