"""The in-flight limit counts only review calls and frees its slot on errors.

Each test runs twice: with the limit as the outer app, and behind the
service's /mutate fast path, which counts /mutate against the same limit
without passing through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from webhook.server.app import MutateFastPath
from webhook.server.inflight import InFlightLimit


class Gate:
    """An ASGI app that holds review calls until released and can fail on demand."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/mutate":
            await self.release.wait()
            if self.fail:
                raise RuntimeError("planted failure")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


# Builds the app under test around a limit on a Gate.
Outer = Callable[[InFlightLimit], ASGIApp]


@pytest.fixture(params=["limit alone", "behind the fast path"])
def outer(request: pytest.FixtureRequest) -> Outer:
    def behind_fast_path(limit: InFlightLimit) -> ASGIApp:
        assert isinstance(limit.app, Gate)
        return MutateFastPath(limit.app, limit)

    if request.param == "limit alone":
        return lambda limit: limit
    return behind_fast_path


def client_for(app: ASGIApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="https://webhook.test")


async def test_probes_pass_while_reviews_fill_limit(outer: Outer) -> None:
    gate = Gate()
    shed: list[int] = []
    limit = InFlightLimit(gate, 2, lambda: shed.append(1))

    async with client_for(outer(limit)) as client:
        held = [asyncio.create_task(client.post("/mutate")) for _ in range(2)]
        while limit.in_flight < 2:
            await asyncio.sleep(0.01)
        extra = await client.post("/mutate")
        health = await client.get("/healthz")
        metrics = await client.get("/metrics")
        template = await client.post("/validate-template")
        gate.release.set()
        statuses = [(await task).status_code for task in held]

    assert extra.status_code == 429
    assert extra.headers["retry-after"] == "1"
    assert health.status_code == 200
    assert metrics.status_code == 200
    assert template.status_code == 429
    assert statuses == [200, 200]
    assert shed == [1, 1]
    assert limit.in_flight == 0


async def test_failed_review_frees_slot(outer: Outer) -> None:
    gate = Gate()
    gate.fail = True
    gate.release.set()
    limit = InFlightLimit(gate, 1)

    async with client_for(outer(limit)) as client:
        failed = await client.post("/mutate")
        gate.fail = False
        after = await client.post("/mutate")

    assert failed.status_code == 500
    assert after.status_code == 200
    assert limit.in_flight == 0


@pytest.mark.parametrize("limit", [0])
async def test_zero_means_no_limit(outer: Outer, limit: int) -> None:
    gate = Gate()
    gate.release.set()
    unlimited = InFlightLimit(gate, limit)

    async with client_for(outer(unlimited)) as client:
        replies = await asyncio.gather(*(client.post("/mutate") for _ in range(20)))

    assert {reply.status_code for reply in replies} == {200}


async def test_byte_budget_sheds_large_bodies_but_serves_one_alone(
    outer: Outer,
) -> None:
    gate = Gate()
    shed: list[int] = []
    limit = InFlightLimit(gate, 0, lambda: shed.append(1), max_bytes=1000)
    large = {"content-length": "800"}

    async with client_for(outer(limit)) as client:
        first = asyncio.create_task(client.post("/mutate", content=b"x" * 800))
        while limit.in_flight < 1:
            await asyncio.sleep(0.01)
        over = await client.post("/mutate", content=b"x" * 800, headers=large)
        small = asyncio.create_task(client.post("/mutate", content=b"x" * 100))
        while limit.in_flight < 2:
            await asyncio.sleep(0.01)
        held = limit.bytes_in_flight
        gate.release.set()
        statuses = [(await first).status_code, (await small).status_code]
        alone = await client.post("/mutate", content=b"x" * 5000)

    assert over.status_code == 429
    assert over.headers["retry-after"] == "1"
    assert "--max-in-flight-bytes" in over.json()["message"]
    assert held == 900
    assert statuses == [200, 200]
    # Larger than the budget, but nothing else is in flight.
    assert alone.status_code == 200
    assert shed == [1]
    assert limit.bytes_in_flight == 0


async def test_fast_path_other_method_takes_no_slot() -> None:
    gate = Gate()
    limit = InFlightLimit(gate, 1)

    async with client_for(MutateFastPath(gate, limit)) as client:
        held = asyncio.create_task(client.post("/mutate"))
        while limit.in_flight < 1:
            await asyncio.sleep(0.01)
        wrong_method = await client.get("/mutate")
        over = await client.post("/mutate")
        gate.release.set()
        first = await held

    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert over.status_code == 429
    assert first.status_code == 200
    assert limit.in_flight == 0
