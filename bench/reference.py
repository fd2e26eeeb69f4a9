"""The reference server: the floor of the stack the webhook runs on.

A raw ASGI app that reads the body, parses it with the same JSON library as
the webhook and returns `allowed: true` with the request's uid. It runs on
the same uvicorn settings (event loop, HTTP parser, keep-alive) and the same
TLS context as `serve`, so the gap between the two is the cost of our code.

    python -m bench.reference --port PORT --tls-cert-file FILE --tls-key-file FILE

With `--spin-us N` it also runs a Python loop for N microseconds before each
response, which `bench.calibrate` uses to measure what a microsecond of our
own work costs a server under load.
"""

from __future__ import annotations

import argparse
import time
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
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

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
    await allow(receive, send)


async def allow(receive: Receive, send: Send) -> None:
    """Parse the review and respond `allowed: true` with its uid."""
    review = orjson.loads(await read_body(receive))
    response = {
        "apiVersion": review["apiVersion"],
        "kind": review["kind"],
        "response": {"uid": review["request"]["uid"], "allowed": True},
    }
    await respond(send, 200, JSON_HEADERS, orjson.dumps(response))


def spinning(app: ASGIApp, seconds: float) -> ASGIApp:
    """Wrap `app` in a busy loop of `seconds` before each POST is handled."""

    async def slower(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
        await app(scope, receive, send)

    return slower


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reference")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert-file", required=True)
    parser.add_argument("--tls-key-file", required=True)
    parser.add_argument(
        "--spin-us",
        type=float,
        default=0.0,
        help="microseconds of busy loop added to every POST (for bench.calibrate)",
    )
    args = parser.parse_args(argv)

    # The same context as `serve --tls-cert-file --tls-key-file` builds; the
    # reference never reloads it.
    certificates = ServingCertificates.from_files(
        Path(args.tls_cert_file),
        Path(args.tls_key_file),
        registry=CollectorRegistry(),
    )
    served = spinning(app, args.spin_us / 1e6) if args.spin_us > 0 else app
    config = uvicorn_config(served, args.host, args.port, certificates.ssl_context)
    run_on_loop(config, uvicorn.Server(config).serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
