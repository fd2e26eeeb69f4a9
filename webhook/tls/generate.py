"""Write a CA and a serving certificate to files, as `certs generate` does.

The files use the key names of a Kubernetes TLS Secret (`ca.crt`, `tls.crt`,
`tls.key`), so a directory made here can be loaded into a Secret as is. The
CA's private key is not kept: renewing means a new CA and a new caBundle.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from webhook.tls import pki

logger = logging.getLogger(__name__)

CA_FILE = "ca.crt"
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"

# Names every development certificate carries, so that a local client and
# the test harness can reach `serve` over loopback.
LOOPBACK_DNS_NAMES = ("localhost",)
LOOPBACK_IP_ADDRESSES = ("127.0.0.1", "::1")

# Development certificates are made again when less than this is left, so
# that a long test run never meets an expired one.
DEVELOPMENT_MIN_REMAINING = timedelta(days=7)


class CertificateFilesExistError(FileExistsError):
    """Raised instead of overwriting certificate files without force."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        names = ", ".join(str(path) for path in self.paths)
        super().__init__(
            f"certificate files already exist: {names}; remove them or pass "
            "--force to overwrite them (a new CA needs a new caBundle in the "
            "webhook configuration)"
        )


class OutputPathError(ValueError):
    """Raised when the output path for certificate files is not a directory."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"output path {path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class CertificatePaths:
    """Paths of the CA certificate, the serving certificate and its key."""

    ca_cert: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, out_dir: Path) -> CertificatePaths:
        return cls(out_dir / CA_FILE, out_dir / CERT_FILE, out_dir / KEY_FILE)

    def all(self) -> tuple[Path, Path, Path]:
        return (self.ca_cert, self.cert, self.key)


def generate_certificates(
    out_dir: Path,
    service: str,
    namespace: str,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    ca_days: int,
    leaf_days: int,
    key_type: pki.KeyType = "ecdsa",
    force: bool = False,
) -> CertificatePaths:
    """Create a CA and a serving certificate for a Service and write them.

    The serving certificate's SANs are the Service's four DNS names plus
    dns_names and ip_addresses. Raises CertificateFilesExistError when any
    of the three files exists and force is false, OutputPathError when
    out_dir exists but is not a directory, and ValueError for an invalid
    name, address or number of days.
    """
    for role, days in (("CA", ca_days), ("serving certificate", leaf_days)):
        if days < 1:
            raise ValueError(
                f"invalid {role} validity {days} days: expected at least 1"
            )
    if leaf_days > ca_days:
        raise ValueError(
            f"invalid validity: the serving certificate ({leaf_days} days) "
            f"would outlive its CA ({ca_days} days); pass a CA validity of at "
            f"least {leaf_days} days"
        )
    all_dns_names = [*pki.service_dns_names(service, namespace), *dns_names]
    pki.subject_alternative_names(all_dns_names, ip_addresses)

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPathError(out_dir, "exists and is not a directory")
    paths = CertificatePaths.in_dir(out_dir)
    existing = [path for path in paths.all() if path.exists() or path.is_symlink()]
    if existing and not force:
        raise CertificateFilesExistError(existing)

    now = datetime.now(UTC)
    ca = pki.create_ca(
        f"{service}.{namespace} webhook CA",
        now=now,
        lifetime=timedelta(days=ca_days),
        key_type=key_type,
    )
    leaf = pki.issue_leaf(
        ca,
        dns_names=all_dns_names,
        ip_addresses=ip_addresses,
        now=now,
        lifetime=timedelta(days=leaf_days),
        key_type=key_type,
    )
    write_pair(paths, ca.cert_pem, leaf)
    return paths


def generate_development_certificates(
    out_dir: Path, service: str, namespace: str, *, days: int = 90
) -> CertificatePaths:
    """Return certificates in out_dir for local runs, creating them if needed.

    Existing files are kept if they parse, the key matches, the certificate
    names the Service and more than DEVELOPMENT_MIN_REMAINING is left.
    Otherwise new ones replace them. The serving certificate also names
    localhost, 127.0.0.1 and ::1.
    """
    paths = CertificatePaths.in_dir(out_dir)
    names = [*pki.service_dns_names(service, namespace), *LOOPBACK_DNS_NAMES]
    if _usable_for_development(paths, names):
        return paths
    logger.info("creating development certificates", extra={"directory": str(out_dir)})
    return generate_certificates(
        out_dir,
        service,
        namespace,
        dns_names=LOOPBACK_DNS_NAMES,
        ip_addresses=LOOPBACK_IP_ADDRESSES,
        ca_days=days,
        leaf_days=days,
        force=True,
    )


def ca_bundle(ca_cert_file: Path) -> str:
    """Return the base64 caBundle for a webhook configuration from a CA file."""
    pem = ca_cert_file.read_bytes()
    x509.load_pem_x509_certificates(pem)  # raises ValueError if it is no certificate
    return pki.ca_bundle_base64(pem)


def write_pair(paths: CertificatePaths, ca_pem: bytes, leaf: pki.KeyPair) -> None:
    """Write the CA, certificate and key files, each replaced atomically.

    The key is written first and the certificate last, so a server that
    polls the files reads a mismatched pair at worst, which it rejects.
    """
    paths.key.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(paths.key, leaf.key_pem, mode=0o600)
    _write_atomically(paths.ca_cert, ca_pem, mode=0o644)
    _write_atomically(paths.cert, leaf.cert_pem, mode=0o644)


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    # mkstemp creates the file with mode 0600, so the key is never readable
    # by others, not even between the write and the rename.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _usable_for_development(paths: CertificatePaths, dns_names: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
        x509.load_pem_x509_certificates(paths.ca_cert.read_bytes())
        key = pki.load_private_key(paths.key.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        matches = pki.key_matches(cert, key)
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    remaining = cert.not_valid_after_utc - datetime.now(UTC)
    named = set(dns_names) <= set(san.value.get_values_for_type(x509.DNSName))
    return named and matches and remaining > DEVELOPMENT_MIN_REMAINING
