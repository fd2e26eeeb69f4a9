"""Reload of certificate and key files without a restart.

Every poll interval the reloader reads the certificate and key files and
compares their SHA-256 digests with those of the pair it serves. Reading
the files, rather than watching their mtime or inode, also catches the
update of a mounted Secret. kubelet writes the new files into a fresh
directory and then renames the `..data` symlink to it in one step. The
paths the server opens stay the same but resolve to the new files. Only
the digests are kept between polls, never the file contents.

A new pair is served only if it parses, the key matches the certificate
and the certificate is valid now. Otherwise the reloader logs an error
with the paths and the reason, once per distinct content, and the previous
pair stays in use.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from webhook.tls.context import ClientCAFileError
from webhook.tls.pairs import (
    InvalidPairError,
    ServingPair,
    check_pair,
    covers_dns_name,
    describe,
)

logger = logging.getLogger(__name__)

# Seconds between two reads of the files. kubelet takes up to its sync
# period (1 minute by default) plus its cache delay to update a mounted
# Secret, so a few seconds add little to that.
DEFAULT_POLL_INTERVAL = 5.0

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class CertificateFilesError(InvalidPairError):
    """Raised at startup for certificate and key files that cannot be served."""

    def __init__(self, cert_file: Path, key_file: Path, problem: str) -> None:
        super().__init__(
            f"certificate file {cert_file} and key file {key_file}: {problem}"
        )
        self.cert_file = cert_file
        self.key_file = key_file
        self.problem = problem


class FileReloader:
    """Polls a certificate file and a key file and installs each valid pair."""

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        install: Callable[[ServingPair], None],
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        clock: Clock = utc_now,
        service_host: str | None = None,
    ) -> None:
        """`service_host` is the name kube-apiserver checks: `<service>.<ns>.svc`."""
        if poll_interval <= 0:
            raise ValueError(
                f"invalid poll interval {poll_interval} s: expected more than 0"
            )
        self.cert_file = cert_file
        self.key_file = key_file
        self.poll_interval = poll_interval
        self._install = install
        self._clock = clock
        self.service_host = service_host
        self._installed_digest: bytes | None = None
        self._rejected_digest: bytes | None = None

    def load(self) -> ServingPair:
        """Read, check and install the pair now. Raise if it cannot be served.

        Used at startup, where a missing or invalid pair must stop the
        server with the reason, rather than leave it running unready.
        Raises CertificateFilesError, which names both files, or
        ClientCAFileError.
        """
        try:
            chain_pem, key_pem = self._read()
            pair = check_pair(chain_pem, key_pem, now=self._clock())
        except OSError as error:
            problem = f"cannot read {error.filename}: {error.strerror}"
            raise CertificateFilesError(
                self.cert_file, self.key_file, problem
            ) from None
        except InvalidPairError as error:
            raise CertificateFilesError(
                self.cert_file, self.key_file, str(error)
            ) from None
        self._installed_digest = _digest(chain_pem, key_pem)
        self._use(pair)
        return pair

    def poll(self) -> bool:
        """Install the files' pair if it changed and is valid; return whether."""
        try:
            chain_pem, key_pem = self._read()
        except OSError as error:
            # kubelet swaps the files atomically, but a hand-made setup may be
            # in the middle of replacing them, so keep serving and retry.
            self._log_rejected(f"cannot read the files: {error}", b"unreadable")
            return False

        digest = _digest(chain_pem, key_pem)
        if digest == self._installed_digest:
            return False
        # A rejected pair is checked again on every poll, because a
        # certificate that is not valid yet becomes valid without a change.
        try:
            pair = check_pair(chain_pem, key_pem, now=self._clock())
        except InvalidPairError as error:
            self._log_rejected(str(error), digest)
            return False

        try:
            self._use(pair)
        except ClientCAFileError as error:
            # The client CA file is read again for the new context.
            self._log_rejected(str(error), digest)
            return False
        except (ssl.SSLError, OSError) as error:
            # OpenSSL can reject what the checks above accept.
            self._log_rejected(f"OpenSSL cannot load the pair: {error}", digest)
            return False
        self._installed_digest = digest
        self._rejected_digest = None
        return True

    async def run(self) -> None:
        """Poll until cancelled; file reads run in a worker thread."""
        while True:
            await asyncio.sleep(self.poll_interval)
            await asyncio.to_thread(self.poll)

    def _use(self, pair: ServingPair) -> None:
        self._install(pair)
        fields = describe(pair.leaf)
        logger.info(
            "loaded certificate files",
            extra={
                "cert_file": str(self.cert_file),
                "key_file": str(self.key_file),
                **fields,
            },
        )
        if self.service_host and not covers_dns_name(pair.leaf, self.service_host):
            # Served anyway: a caller that uses another name, such as a test
            # on 127.0.0.1, still works, but kube-apiserver will not.
            logger.warning(
                "served certificate does not name the Service, so kube-apiserver "
                "will fail the TLS handshake; issue it for the expected name",
                extra={
                    "cert_file": str(self.cert_file),
                    "expected": self.service_host,
                    "sans": fields["sans"],
                },
            )

    def _read(self) -> tuple[bytes, bytes]:
        return self.cert_file.read_bytes(), self.key_file.read_bytes()

    def _log_rejected(self, reason: str, digest: bytes) -> None:
        # Log each bad content once, not on every poll while it stays.
        if digest == self._rejected_digest:
            return
        self._rejected_digest = digest
        logger.error(
            "rejected new certificate files; still serving the previous pair",
            extra={
                "cert_file": str(self.cert_file),
                "key_file": str(self.key_file),
                "reason": reason,
            },
        )


def _digest(chain_pem: bytes, key_pem: bytes) -> bytes:
    hasher = hashlib.sha256()
    for part in (chain_pem, key_pem):
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.digest()
