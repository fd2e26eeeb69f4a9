"""A review whose planning is slow: out-of-time denials and the event loop."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from tests.server.test_pipeline_cache import review
from tests.server.test_secret_limit import SlowResolver
from webhook.admission.injection import InjectionOptions
from webhook.server import offload
from webhook.server.logs import bind
from webhook.server.pipeline import ReviewPipeline

LOG = bind(logging.getLogger(__name__), {})


def test_expired_deadline_denied_as_out_of_time() -> None:
    resolver = SlowResolver()
    pipeline = ReviewPipeline(InjectionOptions(), [resolver])

    decision = asyncio.run(
        pipeline(review("db-creds,username"), time.monotonic() - 1, LOG)
    )

    assert not decision.allowed
    assert decision.code == 503
    assert "ran out of time" in decision.message
    # The deadline may be short or the object large: the message names neither.
    assert "used up before the first lookup" in decision.message
    assert "Kubernetes API" not in decision.message
    assert "retrying the request is safe" in decision.message
    assert resolver.calls == 0


async def review_while_ticking(body_size: int, entries: int) -> tuple[float, int]:
    """Decide a review of `entries` env vars while another task ticks.

    Returns the review's duration and how often the other task ran meanwhile.
    """
    pipeline = ReviewPipeline(InjectionOptions(), [SlowResolver()])
    large = review(*["db-creds,username"] * entries)
    ticks = 0
    done = False

    async def tick() -> None:
        nonlocal ticks
        while not done:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    offload.body_bytes.set(body_size)
    started, ticks_before = time.monotonic(), ticks
    decision = await pipeline(large, time.monotonic() + 60, LOG)
    duration, ticks_during = time.monotonic() - started, ticks - ticks_before
    done = True
    await ticker
    assert decision.allowed
    return duration, ticks_during


def test_large_review_planned_without_stalling_the_loop() -> None:
    duration, ticks = asyncio.run(
        review_while_ticking(offload.LARGE_BODY_BYTES + 1, 80_000)
    )

    # On the loop, planning and deciding are two blocks, so the other task
    # runs once or twice. In a worker thread, which gives up the GIL every
    # 5 ms, it gets a turn every few tens of milliseconds, even with pauses
    # for garbage collection, or on a busy machine every 50 ms or so. The
    # bound requires one per 200 ms and at least five, which the loop alone
    # never reaches.
    assert duration > 0.1
    assert ticks >= max(5, duration / 0.2)


def test_small_review_planned_on_the_loop_thread() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def where() -> None:
        seen.append(threading.get_ident())

    async def both() -> None:
        offload.body_bytes.set(offload.LARGE_BODY_BYTES)
        await offload.off_loop_if_large(where)
        offload.body_bytes.set(offload.LARGE_BODY_BYTES + 1)
        await offload.off_loop_if_large(where)

    asyncio.run(both())

    assert seen[0] == loop_thread
    assert seen[1] != loop_thread
