"""The FastAPI application: /mutate, probes and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from webhook.server.inflight import InFlightLimit, Shed
from webhook.server.metrics import Metrics, exported_registry
from webhook.server.readiness import Readiness
from webhook.server.responses import send_json


class ReviewEndpoint(Protocol):
    """Raw ASGI handler of one HTTP call that carries an AdmissionReview."""

    def __call__(
        self, scope: Scope, receive: Receive, send: Send, /
    ) -> Awaitable[None]: ...


METHOD_NOT_ALLOWED = b'{"message":"/mutate takes POST only","code":405}'


class MutateFastPath:
    """Serve /mutate directly and pass every other call to `limit`.

    `limit` wraps the FastAPI app of the other routes and counts their
    reviews; /mutate counts against the same limit without passing through
    it. Every pod creation waits for /mutate, and FastAPI's middleware,
    routing and dependency resolution took about a third of a review's
    time under load. A further ASGI layer cost about 1.6 us of CPU time
    per review in a scratch build (see bench/README.md).
    """

    def __init__(self, mutate: ReviewEndpoint, limit: InFlightLimit) -> None:
        self.mutate = mutate
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/mutate":
            await self.limit(scope, receive, send)
        elif scope["method"] != "POST":
            await send_json(send, 405, METHOD_NOT_ALLOWED, [(b"allow", b"POST")])
        else:
            # InFlightLimit's own call, written out: one coroutine less.
            limit = self.limit
            try:
                size = limit.enter(scope)
            except Shed as shed:
                await limit.reject(send, shed.message)
                return
            try:
                await self.mutate(scope, receive, send)
            finally:
                limit.leave(size)


def create_app(
    mutate: ReviewEndpoint,
    readiness: Readiness,
    metrics: Metrics,
    routers: Sequence[APIRouter] = (),
    max_in_flight: int = 0,
    max_in_flight_bytes: int = 0,
) -> MutateFastPath:
    """Build the application; its routes take raw bodies, no models.

    `routers` add further endpoints, such as `/validate-template`. Reviews
    past `max_in_flight` calls or `max_in_flight_bytes` declared bytes get
    HTTP 429 (see `InFlightLimit`); 0 leaves that limit off.
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

    shed = metrics.reviews.labels(kind="", operation="", outcome="shed").inc
    limit = InFlightLimit(app, max_in_flight, shed, max_in_flight_bytes)
    return MutateFastPath(mutate, limit)
