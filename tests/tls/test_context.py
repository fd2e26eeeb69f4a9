"""TLS versions, ciphers and client certificates the server accepts."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.tls.inprocess import running_server
from tests.tls.support import (
    client_certificate,
    client_context,
    get,
    handshake,
    new_ca,
    new_leaf,
    write_files,
)
from webhook.tls import pki
from webhook.tls.context import new_server_context
from webhook.tls.pairs import check_pair
from webhook.tls.serving import ServingCertificates


@pytest.fixture
def server_ca(tmp_path: Path) -> pki.KeyPair:
    ca = new_ca("server CA")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    write_files(tmp_path, new_leaf(ca))
    return ca


@pytest.fixture
def port(tmp_path: Path, server_ca: pki.KeyPair) -> Iterator[int]:
    serving = ServingCertificates.from_files(tmp_path / "tls.crt", tmp_path / "tls.key")
    with running_server(serving) as port:
        yield port


def test_tls12_and_tls13_accepted(tmp_path: Path, port: int) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = client_context(tmp_path / "ca.crt", maximum_version=version)
        context.minimum_version = version
        status, _ = get(port, "/healthz", context)
        assert status == 200, version


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_versions_rejected(
    tmp_path: Path, port: int, version: ssl.TLSVersion
) -> None:
    context = client_context(tmp_path / "ca.crt", maximum_version=version)
    with pytest.raises(ssl.SSLError) as caught:
        handshake(port, context)

    # asyncio closes the socket before the server's alert is sent, so the
    # client sees EOF; test_memory_handshake_alerts shows the alert itself.
    # A client that refused to offer the version would fail differently.
    assert isinstance(caught.value, ssl.SSLEOFError), caught.value


def test_old_version_client_reaches_tls12(tmp_path: Path, port: int) -> None:
    # The client setup of the test above, allowed up to TLS 1.2, succeeds.
    context = client_context(
        tmp_path / "ca.crt", maximum_version=ssl.TLSVersion.TLSv1_2
    )
    assert handshake(port, context) > 0


@pytest.mark.parametrize(
    "ciphers", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-SHA"]
)
def test_non_aead_tls12_ciphers_rejected(
    tmp_path: Path, port: int, ciphers: str
) -> None:
    context = client_context(tmp_path / "ca.crt", ciphers=f"{ciphers}:@SECLEVEL=0")
    # The server ends the handshake; see test_memory_handshake_alerts for the
    # alert it sends.
    with pytest.raises(ssl.SSLEOFError):
        handshake(port, context)


def test_aead_tls12_cipher_accepted(tmp_path: Path, port: int) -> None:
    context = client_context(
        tmp_path / "ca.crt", ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"
    )
    assert handshake(port, context) > 0


class TestClientCA:
    @pytest.fixture
    def client_ca(self, tmp_path: Path) -> pki.KeyPair:
        ca = new_ca("client CA")
        (tmp_path / "client-ca.crt").write_bytes(ca.cert_pem)
        return ca

    @pytest.fixture
    def mtls_port(
        self, tmp_path: Path, server_ca: pki.KeyPair, client_ca: pki.KeyPair
    ) -> Iterator[int]:
        serving = ServingCertificates.from_files(
            tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "client-ca.crt"
        )
        with running_server(serving) as port:
            yield port

    def test_client_without_certificate_fails(
        self, tmp_path: Path, mtls_port: int
    ) -> None:
        context = client_context(tmp_path / "ca.crt")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            get(mtls_port, "/healthz", context)

    def test_client_with_valid_certificate_succeeds(
        self, tmp_path: Path, mtls_port: int, client_ca: pki.KeyPair
    ) -> None:
        client = client_certificate(tmp_path, client_ca, "apiserver")
        status, _ = get(
            mtls_port, "/healthz", client_context(tmp_path / "ca.crt", client)
        )
        assert status == 200

    def test_client_certificate_from_other_ca_fails(
        self, tmp_path: Path, mtls_port: int
    ) -> None:
        client = client_certificate(tmp_path, new_ca("stranger CA"), "stranger")
        context = client_context(tmp_path / "ca.crt", client)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            get(mtls_port, "/healthz", context)


def _memory_handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    """Run a handshake through memory BIOs; return the client's error or "ok"."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    from_server, from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(from_server, to_server, server_hostname="localhost")
    server_side = server.wrap_bio(from_client, to_client, server_side=True)
    for _ in range(10):
        try:
            client_side.do_handshake()
            return "ok"
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as error:
            return str(error)
        from_client.write(to_server.read())
        try:
            server_side.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        from_server.write(to_client.read())
    return "no result"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize(
    ("client_kwargs", "expected"),
    [
        ({"maximum_version": ssl.TLSVersion.TLSv1}, "PROTOCOL_VERSION"),
        ({"maximum_version": ssl.TLSVersion.TLSv1_1}, "PROTOCOL_VERSION"),
        ({"ciphers": "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"}, "HANDSHAKE_FAILURE"),
        ({"ciphers": "ECDHE-ECDSA-AES256-SHA384:@SECLEVEL=0"}, "HANDSHAKE_FAILURE"),
        ({"maximum_version": ssl.TLSVersion.TLSv1_2}, "ok"),
        ({"ciphers": "ECDHE-ECDSA-CHACHA20-POLY1305"}, "ok"),
    ],
)
def test_memory_handshake_alerts(
    tmp_path: Path,
    server_ca: pki.KeyPair,
    client_kwargs: dict[str, Any],
    expected: str,
) -> None:
    leaf = new_leaf(server_ca)
    pair = check_pair(leaf.cert_pem, leaf.key_pem, now=datetime.now(UTC))
    client = client_context(tmp_path / "ca.crt", **client_kwargs)
    result = _memory_handshake(new_server_context(pair), client)
    if expected == "ok":
        assert result == "ok"
    else:
        assert expected in result.upper()
