"""ReadDeadlines: one shared timer cuts slow body reads, and only those.

The clock is fake, so a test moves past a deadline at once, and the sweep
interval is a few milliseconds, so each test takes well under a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
import pytest

from webhook.admission.decisions import Decision
from webhook.admission.errors import MalformedReview
from webhook.admission.reviews import Review
from webhook.server import mutate
from webhook.server.deadlines import ReadDeadlines
from webhook.server.logs import BoundLogger
from webhook.server.metrics import new_metrics
from webhook.server.mutate import MutateEndpoint, read_body

INTERVAL = 0.005
# Long enough for many sweeps, short enough to keep the tests fast.
SEVERAL_SWEEPS = INTERVAL * 10
FIRST_CHUNK = b'{"apiVersion":'
REST = b'"admission.k8s.io/v1"}'


class FakeClock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self.on_read: Callable[[], None] | None = None

    def __call__(self) -> float:
        if self.on_read is not None:
            self.on_read()
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StalledBody:
    """An ASGI `receive` that sends one chunk, then waits until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.stalled = asyncio.Event()
        self.released = asyncio.Event()

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            return {"type": "http.request", "body": FIRST_CHUNK, "more_body": True}
        self.stalled.set()
        await self.released.wait()
        return {"type": "http.request", "body": REST, "more_body": False}


class Sent:
    """An ASGI `send` that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        self.messages.append(dict(message))

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def json(self) -> Any:
        return orjson.loads(self.messages[1]["body"])


async def never_called(review: Review, deadline: float, log: BoundLogger) -> Decision:
    raise AssertionError("a body that never completed reached the reviewer")


def endpoint_with(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> MutateEndpoint:
    """Build the real endpoint with a fast sweep on `clock`."""
    monkeypatch.setattr(
        mutate, "ReadDeadlines", lambda: ReadDeadlines(interval=INTERVAL, clock=clock)
    )
    return MutateEndpoint(never_called, new_metrics())


def scope(timeout: str = "10s") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/mutate",
        "query_string": f"timeout={timeout}".encode(),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % (len(FIRST_CHUNK) + len(REST))),
        ],
    }


async def test_late_read_cut_with_408(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    endpoint = endpoint_with(clock, monkeypatch)
    body, sent = StalledBody(), Sent()
    task = asyncio.create_task(endpoint(scope("10s"), body, sent))
    await body.stalled.wait()

    # Before the deadline the sweep leaves the read alone.
    await asyncio.sleep(SEVERAL_SWEEPS)
    assert not task.done()

    clock.advance(60)
    await asyncio.wait_for(task, 2)
    assert sent.status == 408
    assert sent.json["code"] == 408
    assert f"{len(FIRST_CHUNK)} bytes arrived" in sent.json["message"]
    assert f"{len(FIRST_CHUNK) + len(REST)} bytes were declared" in sent.json["message"]
    headers = dict(sent.messages[0]["headers"])
    assert int(headers[b"content-length"]) == len(sent.messages[1]["body"])


async def test_read_in_time_not_cut() -> None:
    clock = FakeClock()
    deadlines = ReadDeadlines(interval=INTERVAL, clock=clock)
    body = StalledBody()

    async def read_then_work() -> bytes:
        content = await read_body(body, "", clock.now + 5, deadlines)
        # The review goes on past the read's deadline, as lookups do. A
        # read left registered would be cancelled here.
        clock.advance(60)
        await asyncio.sleep(SEVERAL_SWEEPS)
        return content

    task = asyncio.create_task(read_then_work())
    await body.stalled.wait()
    body.released.set()
    content = await asyncio.wait_for(task, 2)

    assert content == FIRST_CHUNK + REST
    assert not task.cancelled()
    assert not deadlines.was_cut(task)
    assert task.cancelling() == 0


async def test_outside_cancel_propagates() -> None:
    clock = FakeClock()
    deadlines = ReadDeadlines(interval=INTERVAL, clock=clock)
    body = StalledBody()
    task = asyncio.create_task(read_body(body, "", clock.now + 5, deadlines))
    await body.stalled.wait()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines.was_cut(task)


async def test_outside_cancel_skips_endpoint_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    endpoint = endpoint_with(clock, monkeypatch)
    body, sent = StalledBody(), Sent()
    task = asyncio.create_task(endpoint(scope(), body, sent))
    await body.stalled.wait()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sent.messages == []


async def test_outside_cancel_during_cut_propagates() -> None:
    """An outside cancellation in the same loop turn as the cut is not lost.

    The clock cancels the task from outside when the sweep reads it, just
    before the sweep cuts the same task, so the task gets two cancellation
    requests. The 408 accounts for the sweep's request only, and the outside
    one must still end the task, as it does with `asyncio.timeout`.
    """
    clock = FakeClock()
    deadlines = ReadDeadlines(interval=INTERVAL, clock=clock)
    body = StalledBody()
    task = asyncio.create_task(read_body(body, "", clock.now + 5, deadlines))
    await body.stalled.wait()

    def cancel_from_outside() -> None:
        clock.on_read = None
        task.cancel()

    clock.advance(60)
    clock.on_read = cancel_from_outside
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)


def test_timer_works_on_second_loop() -> None:
    """One instance serves a new event loop after the first one closed.

    The first loop ends while the sweep timer is still armed on it, as it
    is after any read that ended in time.
    """
    clock = FakeClock()
    deadlines = ReadDeadlines(interval=INTERVAL, clock=clock)

    async def read_in_time() -> bytes:
        body = StalledBody()
        body.released.set()
        return await read_body(body, "", clock.now + 5, deadlines)

    async def read_too_late() -> int:
        body = StalledBody()
        task = asyncio.create_task(read_body(body, "", clock.now + 5, deadlines))
        await body.stalled.wait()
        clock.advance(60)
        try:
            await asyncio.wait_for(task, 2)
        except MalformedReview as error:
            return error.status
        return 200

    assert asyncio.run(read_in_time()) == FIRST_CHUNK + REST
    assert asyncio.run(read_too_late()) == 408
    assert asyncio.run(read_too_late()) == 408
