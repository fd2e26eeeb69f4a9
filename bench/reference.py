"""The reference server: the floor of the stack the webhook runs on.

A raw ASGI app that reads the body, parses all of it with orjson, as the
webhook's full path does, and returns `allowed: true` with the request's
uid. It runs on
the same uvicorn settings (event loop, HTTP parser, keep-alive) and the same
TLS context as `serve`, so the gap between the two is the cost of our code.

    python -m bench.reference --port PORT --tls-cert-file FILE --tls-key-file FILE

With `--spin-us N` it also runs a Python loop for N microseconds before each
response, which `bench.calibrate` uses to measure what a microsecond of our
own work costs a server under load. `--app NAME` serves one of the floor
servers of `bench.floors` on the same stack instead, for `bench.ceiling`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson
import uvicorn
from prometheus_client import CollectorRegistry

from bench.asgi import (
    JSON_HEADERS,
    ASGIApp,
    Receive,
    Scope,
    Send,
    posts_only,
    read_body,
    respond,
)
from bench.floors import FLOORS, floor_app
from webhook.server.listener import run_on_loop, uvicorn_config
from webhook.tls.serving import ServingCertificates


async def allow(receive: Receive, send: Send) -> None:
    """Parse the review and respond `allowed: true` with its uid."""
    review = orjson.loads(await read_body(receive))
    response = {
        "apiVersion": review["apiVersion"],
        "kind": review["kind"],
        "response": {"uid": review["request"]["uid"], "allowed": True},
    }
    await respond(send, 200, JSON_HEADERS, orjson.dumps(response))


# Returns `allowed: true` for every POST; `ok` for GET /readyz.
app = posts_only(allow)


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
    parser.add_argument(
        "--app",
        choices=("reference", *FLOORS),
        default="reference",
        help="serve a floor server of bench.floors instead (for bench.ceiling)",
    )
    args = parser.parse_args(argv)

    # The same context as `serve --tls-cert-file --tls-key-file` builds; the
    # reference never reloads it.
    certificates = ServingCertificates.from_files(
        Path(args.tls_cert_file),
        Path(args.tls_key_file),
        registry=CollectorRegistry(),
    )
    chosen = app if args.app == "reference" else floor_app(args.app)
    served = spinning(chosen, args.spin_us / 1e6) if args.spin_us > 0 else chosen
    config = uvicorn_config(served, args.host, args.port, certificates.ssl_context)
    run_on_loop(config, uvicorn.Server(config).serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
