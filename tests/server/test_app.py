"""Routing of the application: the /mutate fast path and everything else."""

from __future__ import annotations

import httpx
from starlette.types import Receive, Scope, Send

from webhook.admission.decisions import Decision
from webhook.admission.reviews import Review
from webhook.server.app import create_app
from webhook.server.logs import BoundLogger
from webhook.server.metrics import new_metrics
from webhook.server.mutate import MutateEndpoint
from webhook.server.readiness import Readiness


class CountingEndpoint:
    """Wraps the real endpoint and counts the calls that reach it."""

    def __init__(self, endpoint: MutateEndpoint) -> None:
        self.endpoint = endpoint
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await self.endpoint(scope, receive, send)


async def allow_all(review: Review, deadline: float, log: BoundLogger) -> Decision:
    return Decision(allowed=True)


def client_for(endpoint: CountingEndpoint) -> httpx.AsyncClient:
    metrics = new_metrics()
    readiness = Readiness(source_answered=lambda: True, certificate_ready=lambda: True)
    app = create_app(endpoint, readiness, metrics)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="https://webhook.test")


async def test_post_mutate_reaches_endpoint() -> None:
    endpoint = CountingEndpoint(MutateEndpoint(allow_all, new_metrics()))
    async with client_for(endpoint) as client:
        response = await client.post("/mutate", content=b"", headers={})

    assert endpoint.calls == 1
    assert response.status_code == 400
    assert "empty" in response.json()["message"]


async def test_get_mutate_is_method_not_allowed() -> None:
    endpoint = CountingEndpoint(MutateEndpoint(allow_all, new_metrics()))
    async with client_for(endpoint) as client:
        response = await client.get("/mutate")

    assert response.status_code == 405
    assert endpoint.calls == 0


async def test_other_paths_reach_fastapi() -> None:
    endpoint = CountingEndpoint(MutateEndpoint(allow_all, new_metrics()))
    async with client_for(endpoint) as client:
        healthz = await client.get("/healthz")
        metrics = await client.get("/metrics")
        unknown = await client.post("/mutate/extra", content=b"{}")

    assert healthz.text == "ok\n"
    assert "runai_secrets_webhook_reviews" in metrics.text
    assert unknown.status_code == 404
    assert endpoint.calls == 0
