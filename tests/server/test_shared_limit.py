"""`create_app` puts /mutate and /validate-template under one in-flight limit.

The limit wraps FastAPI, and the /mutate fast path counts against the same
instance without passing through it. These tests build the app as `serve`
does, so they also check the wiring: which limit each path counts
against, the byte budget, and one `shed` count per HTTP 429.
"""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from webhook.server.app import MutateFastPath, create_app
from webhook.server.metrics import new_metrics
from webhook.server.readiness import Readiness


class HeldEndpoint:
    """A /mutate endpoint that keeps each call waiting until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"mutated"})


def held_template_router(release: asyncio.Event) -> APIRouter:
    router = APIRouter()

    @router.post("/validate-template")
    async def validate_template(request: Request) -> Response:
        await request.body()
        await release.wait()
        return Response(b"validated")

    return router


def service_app(
    registry: CollectorRegistry, max_in_flight: int, max_in_flight_bytes: int = 0
) -> tuple[MutateFastPath, HeldEndpoint]:
    endpoint = HeldEndpoint()
    readiness = Readiness(source_answered=lambda: True, certificate_ready=lambda: True)
    app = create_app(
        endpoint,
        readiness,
        new_metrics(registry),
        [held_template_router(endpoint.release)],
        max_in_flight,
        max_in_flight_bytes,
    )
    return app, endpoint


def client_for(app: MutateFastPath) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="https://webhook.test")


def shed_count(registry: CollectorRegistry) -> float | None:
    labels = {"kind": "", "operation": "", "outcome": "shed"}
    return registry.get_sample_value("runai_secrets_webhook_reviews_total", labels)


async def wait_for(app: MutateFastPath, in_flight: int) -> None:
    """Wait until the shared limit counts `in_flight` calls; fail after 5 s."""
    for _ in range(500):
        if app.limit.in_flight >= in_flight:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{app.limit.in_flight} calls in flight, not {in_flight}")


async def post_while_held(
    client: httpx.AsyncClient, path: str, content: bytes
) -> httpx.Response:
    """POST while other calls fill the limit; give up after 5 s if it is let in."""
    return await asyncio.wait_for(client.post(path, content=content), 5)


async def test_mutate_and_template_share_one_limit() -> None:
    registry = CollectorRegistry()
    app, endpoint = service_app(registry, max_in_flight=2)

    async with client_for(app) as client:
        filling = [
            asyncio.create_task(client.post("/mutate", content=b"{}")),
            asyncio.create_task(client.post("/validate-template", content=b"{}")),
        ]
        await wait_for(app, 2)
        replies = [
            await post_while_held(client, "/mutate", b"{}"),
            await post_while_held(client, "/validate-template", b"{}"),
        ]
        wrong_method = await client.get("/mutate")
        health = await client.get("/healthz")
        endpoint.release.set()
        answered = [await task for task in filling]

    assert [reply.status_code for reply in replies] == [429, 429]
    assert {reply.headers["retry-after"] for reply in replies} == {"1"}
    assert "--max-in-flight" in replies[0].json()["message"]
    assert replies[0].json()["code"] == 429
    assert wrong_method.status_code == 405
    assert health.status_code == 200
    assert [reply.content for reply in answered] == [b"mutated", b"validated"]
    # One count per 429; neither GET /mutate nor /healthz is counted.
    assert shed_count(registry) == 2
    assert (app.limit.in_flight, app.limit.bytes_in_flight) == (0, 0)


async def test_template_body_counts_against_mutate_byte_budget() -> None:
    registry = CollectorRegistry()
    app, endpoint = service_app(registry, max_in_flight=0, max_in_flight_bytes=1000)

    async with client_for(app) as client:
        filling = asyncio.create_task(
            client.post("/validate-template", content=b"x" * 800)
        )
        await wait_for(app, 1)
        over = await post_while_held(client, "/mutate", b"x" * 800)
        endpoint.release.set()
        answered = await filling

    assert over.status_code == 429
    assert "--max-in-flight-bytes" in over.json()["message"]
    assert answered.content == b"validated"
    assert shed_count(registry) == 1
    assert (app.limit.in_flight, app.limit.bytes_in_flight) == (0, 0)
