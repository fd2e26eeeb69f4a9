"""Test certificates: a CA and serving certificates for webhook DNS names.

A webhook served for kube-apiserver needs a certificate that carries
`<service>.<namespace>.svc` as a DNS subject alternative name, signed by the
CA that the configuration's `caBundle` holds.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class ServingCertificate:
    """A CA and one server certificate with its key, all PEM."""

    ca_pem: bytes
    cert_pem: bytes  # the leaf certificate followed by nothing else
    key_pem: bytes

    @property
    def ca_bundle(self) -> str:
        """Return the CA as `clientConfig.caBundle` wants it: base64 of the PEM."""
        return base64.b64encode(self.ca_pem).decode()

    def write(self, directory: Path) -> tuple[Path, Path, Path]:
        """Write `tls.crt`, `tls.key` and `ca.crt` into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = (directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
        for path, data in zip(
            paths, (self.cert_pem, self.key_pem, self.ca_pem), strict=True
        ):
            path.write_bytes(data)
        paths[1].chmod(0o600)
        return paths

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*_temporary_files(self.cert_pem, self.key_pem))
        return context


def issue(*names: str, ca: trustme.CA | None = None) -> ServingCertificate:
    """Issue a serving certificate for DNS names or IP addresses.

    A new CA signs it unless `ca` is given.
    """
    authority = ca or trustme.CA()
    leaf = authority.issue_cert(*names)
    return ServingCertificate(
        ca_pem=authority.cert_pem.bytes(),
        cert_pem=leaf.cert_chain_pems[0].bytes(),
        key_pem=leaf.private_key_pem.bytes(),
    )


def service_names(service: str, namespace: str) -> tuple[str, ...]:
    """Return the DNS names a webhook Service's certificate should carry."""
    return (f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local")


def _temporary_files(cert_pem: bytes, key_pem: bytes) -> tuple[str, str]:
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="harness-cert-"))
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)
