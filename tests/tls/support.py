"""Certificates, mounted-Secret layouts and TLS clients for the TLS tests."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from webhook.tls import pki


def new_ca(
    name: str = "test CA", *, lifetime: timedelta = timedelta(days=1)
) -> pki.KeyPair:
    return pki.create_ca(name, now=datetime.now(UTC), lifetime=lifetime)


def new_leaf(
    ca: pki.KeyPair, *, lifetime: timedelta = timedelta(minutes=10)
) -> pki.KeyPair:
    """Issue a short-lived leaf for loopback, as the server's tests reach it."""
    return pki.issue_leaf(
        ca,
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        now=datetime.now(UTC),
        lifetime=lifetime,
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
    timestamped directory; an update writes a new timestamped directory and
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
        self._version += 1
        version_dir = (
            self.directory / f"..2026_12_04_00_00_{self._version:02d}.{os.getpid()}"
        )
        version_dir.mkdir()
        (version_dir / "tls.crt").write_bytes(leaf.cert_pem)
        (version_dir / "tls.key").write_bytes(leaf.key_pem)

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
        # security level; level 0 lets the client offer them, so that it is
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


def get(
    port: int, path: str, context: ssl.SSLContext, *, timeout: float = 5.0
) -> tuple[int, int]:
    """GET path over a new connection; return the status and the server's serial."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context, timeout=timeout
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        assert connection.sock is not None
        der = connection.sock.getpeercert(binary_form=True)
        assert der is not None
        return response.status, x509.load_der_x509_certificate(der).serial_number
    finally:
        connection.close()


def handshake(port: int, context: ssl.SSLContext) -> int:
    """Complete a TLS handshake only; return the server certificate's serial."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number
