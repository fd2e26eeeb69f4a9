"""A small uvicorn server in a thread that serves through ServingCertificates.

It stands in for `serve` in tests that need the TLS layer only.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from webhook.tls.serving import ServingCertificates


def _app(serving: ServingCertificates) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status = 200
        if scope["path"] == "/readyz" and not serving.ready():
            status = 503
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@contextmanager
def running_server(serving: ServingCertificates) -> Iterator[int]:
    """Serve on a free loopback port; yield the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app(serving), log_level="warning", lifespan="off")
    config.load()
    config.ssl = serving.ssl_context
    server = uvicorn.Server(config)

    async def main() -> None:
        await serving.start()
        try:
            await server.serve(sockets=[sock])
        finally:
            await serving.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "test server thread stopped"
        assert time.monotonic() < deadline, "test server did not start in 10 s"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
