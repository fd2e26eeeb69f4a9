"""The FastAPI application: /mutate, probes and metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from webhook.server.metrics import Metrics
from webhook.server.readiness import Readiness


class ReviewEndpoint(Protocol):
    """Handler of one HTTP call that carries an AdmissionReview."""

    async def __call__(self, request: Request) -> Response: ...


def create_app(
    mutate: ReviewEndpoint,
    readiness: Readiness,
    metrics: Metrics,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """Build the application; its routes take raw bodies, no models.

    `routers` add further endpoints, such as `/validate-template`.
    """
    app = FastAPI(
        title="runai-secrets-webhook",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    app.add_api_route("/mutate", mutate, methods=["POST"])
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
            generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    return app
