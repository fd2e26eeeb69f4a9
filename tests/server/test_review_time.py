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


def test_deadline_passed_before_lookups_blames_the_time_not_the_api() -> None:
    resolver = SlowResolver()
    pipeline = ReviewPipeline(InjectionOptions(), [resolver])

    decision = asyncio.run(
        pipeline(review("db-creds,username"), time.monotonic() - 1, LOG)
    )

    assert not decision.allowed
    assert decision.code == 503
    assert "ran out of time" in decision.message
    assert "Kubernetes API" not in decision.message
    assert "retrying the request is safe" in decision.message
    assert resolver.calls == 0


async def review_while_ticking(body_size: int, entries: int) -> tuple[float, float]:
    """Decide a review of `entries` env vars while another task ticks.

    Returns the review's duration and the longest gap between ticks.
    """
    pipeline = ReviewPipeline(InjectionOptions(), [SlowResolver()])
    large = review(*["db-creds,username"] * entries)
    gaps: list[float] = []
    done = False

    async def tick() -> None:
        last = time.monotonic()
        while not done:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    offload.body_bytes.set(body_size)
    started = time.monotonic()
    decision = await pipeline(large, time.monotonic() + 60, LOG)
    duration = time.monotonic() - started
    done = True
    await ticker
    assert decision.allowed
    return duration, max(gaps)


def test_large_review_planned_without_stalling_the_loop() -> None:
    duration, longest_gap = asyncio.run(
        review_while_ticking(offload.LARGE_BODY_BYTES + 1, 40_000)
    )

    # On the loop, planning is one block and the longest gap is nearly the
    # whole review; in a worker thread the loop runs every few milliseconds.
    assert duration > 0.1
    assert longest_gap < duration / 3


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
