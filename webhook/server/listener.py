"""The uvicorn settings of every HTTPS listener of the service.

`serve` and the benchmark's reference server both build their uvicorn
configuration here, so that a comparison between them measures our code and
not a difference in settings.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp

# kube-apiserver keeps idle connections for up to 90 s and does not retry a
# POST on a connection the server closed, so the server waits longer.
KEEP_ALIVE_SECONDS = 120

# On SIGTERM in-flight reviews may run this long; kube-apiserver's largest
# webhook timeoutSeconds is 30 s.
GRACEFUL_SHUTDOWN_SECONDS = 35

T = TypeVar("T")


def uvicorn_config(
    app: ASGIApp, host: str, port: int, context: ssl.SSLContext
) -> uvicorn.Config:
    """Build a loaded uvicorn configuration that serves `app` with `context`."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    config.load()
    config.ssl = context
    return config


def run_on_loop(config: uvicorn.Config, main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on the event loop uvicorn's `loop` setting picks.

    With the default setting that is uvloop when it is installed
    (uvicorn[standard] installs it); it cut the I/O part of a review (see
    bench/README.md).
    """
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        return runner.run(main)
