"""A review that joins another review's API call is not failed by its deadline.

Lookups of the same secret share one call. When the review that started it
has an earlier deadline, that call times out first. A review that joined it
must then make its own call with the time it has left.
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
