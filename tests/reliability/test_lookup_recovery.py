"""Lookups recover from slow calls of other reviews.

Lookups of the same secret share one call. When the review that started it
has an earlier deadline, that call times out first. A review that joined it
must then make its own call with the time it has left. A call that waited
for a free thread gets only the time left, and none once its review gave up.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from webhook.admission.lookups import LookupStatus, SecretLookup
from webhook.kube.lookups import SecretKeyLookups


class SlowThenFast:
    """A source whose first call lasts `timeout` and times out; later calls succeed."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def fetch(self, namespace: str, name: str, timeout: float) -> SecretLookup:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            time.sleep(timeout)
            return SecretLookup.failed(LookupStatus.TIMEOUT, "the API call timed out")
        return SecretLookup.found(frozenset({"password"}))


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=False)


async def test_joined_timeout_makes_own_call(executor: ThreadPoolExecutor) -> None:
    source = SlowThenFast()
    lookups = SecretKeyLookups(source, executor, ttl=0)
    now = time.monotonic()

    first = asyncio.create_task(lookups.lookup("team-a", "db", ["password"], now + 0.3))
    await asyncio.sleep(0.05)
    second = await lookups.lookup("team-a", "db", ["password"], now + 3.0)

    assert (await first).status is LookupStatus.TIMEOUT
    assert second.status is LookupStatus.FOUND
    assert source.calls == 2


async def test_joiner_still_bound_by_own_deadline(executor: ThreadPoolExecutor) -> None:
    source = SlowThenFast()
    lookups = SecretKeyLookups(source, executor, ttl=0)
    now = time.monotonic()

    first = asyncio.create_task(lookups.lookup("team-a", "db", ["password"], now + 0.5))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    second = await lookups.lookup("team-a", "db", ["password"], now + 0.2)

    assert second.status is LookupStatus.TIMEOUT
    assert time.monotonic() - started < 0.4
    assert (await first).status is LookupStatus.TIMEOUT


class Recording:
    """A source that sleeps `delay` per call and records each call's timeout."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.timeouts: dict[str, float] = {}

    def fetch(self, namespace: str, name: str, timeout: float) -> SecretLookup:
        self.timeouts[name] = timeout
        time.sleep(self.delay)
        return SecretLookup.found(frozenset({"password"}))


async def test_queued_call_past_deadline_skipped() -> None:
    source = Recording(delay=0.4)
    with ThreadPoolExecutor(1) as single:
        lookups = SecretKeyLookups(source, single, ttl=0)
        now = time.monotonic()
        first = asyncio.create_task(
            lookups.lookup("team-a", "a", ["password"], now + 2)
        )
        await asyncio.sleep(0.05)
        late = await lookups.lookup("team-a", "b", ["password"], now + 0.2)
        await first
        # Give the queued call its turn on the one thread.
        await asyncio.sleep(0.1)

    assert late.status is LookupStatus.TIMEOUT
    assert "b" not in source.timeouts


async def test_queued_call_gets_time_left() -> None:
    source = Recording(delay=0.3)
    with ThreadPoolExecutor(1) as single:
        lookups = SecretKeyLookups(source, single, ttl=0)
        now = time.monotonic()
        first = asyncio.create_task(
            lookups.lookup("team-a", "a", ["password"], now + 2)
        )
        await asyncio.sleep(0.05)
        second = await lookups.lookup("team-a", "b", ["password"], now + 1.0)
        await first

    assert second.status is LookupStatus.FOUND
    # Queued behind a 0.3 s call, so well under the 0.95 s left at submit.
    assert source.timeouts["b"] < 0.8
