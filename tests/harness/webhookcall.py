"""HTTPS transport of the admission caller: how kube-apiserver posts a review.

kube-apiserver (client-go) sends `POST` over HTTP/1.1 with keep-alive,
verifies the server certificate against the webhook's `caBundle` for the
service DNS name, and enforces the webhook timeout on the whole call.
It retries a 429 or 5xx answer that carries an integer `Retry-After`
(client-go's rest client, up to 10 times), but never resends a POST after a
broken connection: Go's transport only replays idempotent requests.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import select
import ssl
import threading
import time
from dataclasses import dataclass

# Idle connections are kept this long, as kube-apiserver's webhook client does.
IDLE_CONNECTION_SECONDS = 90.0
MAX_RETRIES = 10
LOOPBACK_NAMES = ("localhost",)


class CallError(Exception):
    """A failed call, worded like the reason in the apiserver's error."""


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and which name the certificate must carry."""

    host: str  # loopback address to connect to
    port: int
    server_name: str  # name checked against the certificate
    url: str  # URL as kube-apiserver would write it in errors
    ca_pem: bytes | None


def check_loopback(host: str) -> None:
    """Raise unless `host` is a loopback address: the harness never calls out."""
    if host in LOOPBACK_NAMES:
        return
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(
        f"webhook address {host!r} is not loopback: map it to 127.0.0.1 or ::1"
    )


def decode_ca_bundle(value: str | None) -> bytes | None:
    """Decode `clientConfig.caBundle` (base64 of PEM); None keeps the system roots."""
    return base64.b64decode(value) if value else None


@dataclass
class _Idle:
    connection: http.client.HTTPSConnection
    since: float


class Transport:
    """A keep-alive connection pool for webhook calls, safe to share between threads.

    Like Go's transport, which keeps reading every idle connection, a
    background thread closes idle connections that the server has closed,
    so a server's graceful shutdown is never held up by this pool.
    """

    def __init__(self, idle_seconds: float = IDLE_CONNECTION_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self.connections_opened = 0
        self._idle: dict[tuple[str, int, str], list[_Idle]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper = threading.Thread(
            target=self._reap, name="webhook-idle-reaper", daemon=True
        )
        self._reaper.start()

    def _reap(self) -> None:
        while not self._closed.wait(0.05):
            with self._lock:
                for pool in self._idle.values():
                    for idle in list(pool):
                        if not _usable(idle, self.idle_seconds):
                            pool.remove(idle)
                            idle.connection.close()

    def post(
        self, endpoint: Endpoint, path: str, body: bytes, timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        """POST `body`, retrying 429 and 5xx with `Retry-After` within `timeout` s."""
        deadline = time.monotonic() + timeout
        for _ in range(MAX_RETRIES + 1):
            status, headers, data = self._post_once(endpoint, path, body, deadline)
            delay = _retry_after(status, headers)
            if delay is None:
                return status, headers, data
            if time.monotonic() + delay >= deadline:
                time.sleep(max(0.0, deadline - time.monotonic()))
                raise CallError(f'Post "{endpoint.url}": context deadline exceeded')
            time.sleep(delay)
        return status, headers, data

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            pools = list(self._idle.values())
            self._idle.clear()
        for pool in pools:
            for idle in pool:
                idle.connection.close()

    def _post_once(
        self, endpoint: Endpoint, path: str, body: bytes, deadline: float
    ) -> tuple[int, dict[str, str], bytes]:
        connection, reused = self._checkout(endpoint, deadline)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, */*",
        }
        try:
            connection.timeout = max(0.001, deadline - time.monotonic())
            if connection.sock is not None:
                connection.sock.settimeout(connection.timeout)
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except TimeoutError:
            connection.close()
            raise CallError(
                f'Post "{endpoint.url}": context deadline exceeded'
            ) from None
        except ssl.SSLError as error:
            connection.close()
            raise CallError(
                f'Post "{endpoint.url}": tls: {error.reason or error}'
            ) from None
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            what = "EOF" if reused else str(error) or type(error).__name__
            raise CallError(f'Post "{endpoint.url}": {what}') from None
        if time.monotonic() > deadline:
            connection.close()
            raise CallError(f'Post "{endpoint.url}": context deadline exceeded')
        self._checkin(endpoint, connection, response)
        return (
            response.status,
            {key.lower(): value for key, value in response.getheaders()},
            data,
        )

    def _checkout(
        self, endpoint: Endpoint, deadline: float
    ) -> tuple[http.client.HTTPSConnection, bool]:
        key = (endpoint.host, endpoint.port, endpoint.server_name)
        with self._lock:
            pool = self._idle.get(key, [])
            while pool:
                idle = pool.pop()
                if _usable(idle, self.idle_seconds):
                    return idle.connection, True
                idle.connection.close()
        context = ssl.create_default_context(
            cadata=endpoint.ca_pem.decode() if endpoint.ca_pem else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        connection = _NamedHTTPSConnection(
            endpoint.host,
            endpoint.port,
            endpoint.server_name,
            context,
            max(0.001, deadline - time.monotonic()),
        )
        try:
            connection.connect()
        except TimeoutError:
            raise CallError(
                f'Post "{endpoint.url}": context deadline exceeded'
            ) from None
        except ssl.SSLCertVerificationError as error:
            raise CallError(
                f'Post "{endpoint.url}": tls: failed to verify certificate: '
                f"{error.verify_message}"
            ) from None
        except (OSError, ssl.SSLError) as error:
            raise CallError(
                f'Post "{endpoint.url}": '
                f"dial tcp {endpoint.host}:{endpoint.port}: {error}"
            ) from None
        with self._lock:
            self.connections_opened += 1
        return connection, False

    def _checkin(
        self,
        endpoint: Endpoint,
        connection: http.client.HTTPSConnection,
        response: http.client.HTTPResponse,
    ) -> None:
        if response.will_close:
            connection.close()
            return
        key = (endpoint.host, endpoint.port, endpoint.server_name)
        with self._lock:
            self._idle.setdefault(key, []).append(_Idle(connection, time.monotonic()))


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """Connect to a loopback address but check the certificate for another name."""

    def __init__(
        self,
        host: str,
        port: int,
        server_name: str,
        context: ssl.SSLContext,
        timeout: float,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_name = server_name
        self._context = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(
            self.sock, server_hostname=self._server_name
        )


def _usable(idle: _Idle, idle_seconds: float) -> bool:
    """Check an idle connection as Go's transport does by reading it in the background.

    A connection the server has closed is readable (EOF) and is dropped here,
    so only a close that races with the next request fails a call.
    """
    if time.monotonic() - idle.since > idle_seconds:
        return False
    sock = idle.connection.sock
    if sock is None:
        return False
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def _retry_after(status: int, headers: dict[str, str]) -> int | None:
    if status != 429 and status < 500:
        return None
    value = headers.get("retry-after", "")
    return int(value) if value.isdigit() else None
