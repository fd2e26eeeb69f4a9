"""The FastAPI application: /mutate, probes and metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from webhook.server.metrics import Metrics, exported_registry
from webhook.server.readiness import Readiness
from webhook.server.responses import send_json


class ReviewEndpoint(Protocol):
    """Raw ASGI handler of one HTTP call that carries an AdmissionReview."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


METHOD_NOT_ALLOWED = b'{"message":"/mutate takes POST only","code":405}'


class MutateFastPath:
    """Serve /mutate directly and pass every other call to `app`.

    Every pod creation waits for /mutate, and FastAPI's middleware, routing
    and dependency resolution took about a third of a review's time under
    load (see bench/README.md).
    """

    def __init__(self, mutate: ReviewEndpoint, app: ASGIApp) -> None:
        self.mutate = mutate
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/mutate":
            await self.app(scope, receive, send)
        elif scope["method"] == "POST":
            await self.mutate(scope, receive, send)
        else:
            await send_json(send, 405, METHOD_NOT_ALLOWED, [(b"allow", b"POST")])


def create_app(
    mutate: ReviewEndpoint,
    readiness: Readiness,
    metrics: Metrics,
    routers: Sequence[APIRouter] = (),
) -> MutateFastPath:
    """Build the application; its routes take raw bodies, no models.

    `routers` add further endpoints, such as `/validate-template`.
    """
    app = FastAPI(
        title="runai-secrets-webhook",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    for router in routers:
        app.include_router(router)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response("ok\n", media_type="text/plain")

    @app.get("/readyz")
    async def readyz() -> Response:
        problems = readiness.problems()
        if problems:
            return Response("\n".join(problems) + "\n", 503, media_type="text/plain")
        return Response("ok\n", media_type="text/plain")

    @app.get("/metrics")
    async def export_metrics() -> Response:
        return Response(
            generate_latest(exported_registry(metrics.registry)),
            media_type=CONTENT_TYPE_LATEST,
        )

    return MutateFastPath(mutate, app)
