"""The server's SSLContext, and the switch that changes its certificate live.

uvicorn takes one SSLContext when it starts listening. To serve a new
certificate without a restart, that context gets an SNI callback, which
OpenSSL runs on every ClientHello (with or without a server name), and the
callback moves the connection to the context of the newest certificate.
Connections that finished their handshake keep the context they have.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

from webhook.tls.pairs import ServingPair

# TLS 1.2 suites: ECDHE key exchange for forward secrecy, and AEAD ciphers
# only, so no CBC or RC4. All TLS 1.3 suites are AEAD and stay at OpenSSL's
# defaults. kube-apiserver (Go crypto/tls) offers ECDHE-AESGCM suites.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"

# kube-apiserver uses HTTP/2 only for loopback webhook URLs, and uvicorn
# speaks HTTP/1.1 only.
ALPN_PROTOCOLS = ["http/1.1"]


class ClientCAFileError(ValueError):
    """Raised for a client CA file that cannot be read or contains no certificate."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"client CA file {path}: {problem}")
        self.path = path
        self.problem = problem


def new_server_context(
    pair: ServingPair | None, client_ca_file: Path | None = None
) -> ssl.SSLContext:
    """Build a server context: TLS 1.2 or later, AEAD ciphers, optional mTLS.

    With client_ca_file, clients must present a certificate signed by a CA
    in that file. Without a pair, the context has no certificate and every
    handshake fails until a ContextSwitch moves it to one that has.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    if client_ca_file is not None:
        _load_client_ca(context, client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    if pair is not None:
        with _pem_files(pair) as (chain_file, key_file):
            context.load_cert_chain(chain_file, key_file)
    return context


def _load_client_ca(context: ssl.SSLContext, path: Path) -> None:
    """Trust the CAs in path for client certificates; raise ClientCAFileError.

    OpenSSL's errors name neither the file nor the expected content, so
    both are added here.
    """
    try:
        context.load_verify_locations(cafile=str(path))
    except ssl.SSLError as error:
        raise ClientCAFileError(
            path,
            f"contains no certificate that OpenSSL can load ({error.reason}), "
            "expected PEM blocks that begin with -----BEGIN CERTIFICATE-----",
        ) from None
    except OSError as error:
        raise ClientCAFileError(path, f"cannot be read: {error.strerror}") from None


class ContextSwitch:
    """The context given to uvicorn, which hands each new handshake over
    to the context of the current certificate."""

    def __init__(self, client_ca_file: Path | None = None) -> None:
        self._client_ca_file = client_ca_file
        self.ssl_context = new_server_context(None, client_ca_file)
        self.ssl_context.sni_callback = self._select
        self._current: ssl.SSLContext | None = None
        self.served: ServingPair | None = None

    def install(self, pair: ServingPair) -> None:
        """Serve pair to every handshake that starts from now on."""
        context = new_server_context(pair, self._client_ca_file)
        # One reference assignment, so a handshake gets the old or the new
        # context and never a mix, even when this runs in another thread.
        self._current = context
        self.served = pair

    def _select(
        self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        current = self._current
        if current is not None:
            connection.context = current


@contextlib.contextmanager
def _pem_files(pair: ServingPair) -> Iterator[tuple[str, str]]:
    """Yield paths that contain the chain and the key, then remove them.

    SSLContext.load_cert_chain reads only from files. On Linux an anonymous
    memory file keeps the key off disk, which also works on a read-only root
    filesystem. Elsewhere a private temporary directory is used.
    """
    if hasattr(os, "memfd_create"):
        chain_fd = os.memfd_create("tls.crt")
        key_fd = os.memfd_create("tls.key")
        try:
            _write_all(chain_fd, pair.chain_pem)
            _write_all(key_fd, pair.key_pem)
            yield f"/proc/self/fd/{chain_fd}", f"/proc/self/fd/{key_fd}"
        finally:
            os.close(chain_fd)
            os.close(key_fd)
        return
    with tempfile.TemporaryDirectory() as directory:
        chain_path = Path(directory, "tls.crt")
        key_path = Path(directory, "tls.key")
        chain_path.write_bytes(pair.chain_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(pair.key_pem)
        yield str(chain_path), str(key_path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
