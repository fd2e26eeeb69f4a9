"""The reference server: the floor of the stack the webhook runs on.

A raw ASGI app that reads the body, parses it with the same JSON library as
the webhook and returns `allowed: true` with the request's uid. It runs on
the same uvicorn settings (event loop, HTTP parser, keep-alive) and the same
TLS context as `serve`, so the gap between the two is the cost of our code.

    python -m bench.reference --port PORT --tls-cert-file FILE --tls-key-file FILE
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from prometheus_client import CollectorRegistry

from webhook.server.listener import run_on_loop, uvicorn_config
from webhook.tls.serving import ServingCertificates

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
TEXT_HEADERS = [(b"content-type", b"text/plain")]


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, headers: list[Any], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Return `allowed: true` for every POST; `ok` for GET /readyz."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["method"] != "POST":
        await respond(send, 200, TEXT_HEADERS, b"ok\n")
        return

    review = orjson.loads(await read_body(receive))
    response = {
        "apiVersion": review["apiVersion"],
        "kind": review["kind"],
        "response": {"uid": review["request"]["uid"], "allowed": True},
    }
    await respond(send, 200, JSON_HEADERS, orjson.dumps(response))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reference")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert-file", required=True)
    parser.add_argument("--tls-key-file", required=True)
    args = parser.parse_args(argv)

    # The same context as `serve --tls-cert-file --tls-key-file` builds; the
    # reference never reloads it.
    certificates = ServingCertificates.from_files(
        Path(args.tls_cert_file),
        Path(args.tls_key_file),
        registry=CollectorRegistry(),
    )
    config = uvicorn_config(app, args.host, args.port, certificates.ssl_context)
    run_on_loop(config, uvicorn.Server(config).serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
