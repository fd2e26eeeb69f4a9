"""Single-flight, cache and deadline behaviour of SecretKeyLookups."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from webhook.admission.lookups import LookupStatus, SecretLookup
from webhook.kube.lookups import ResultHook, SecretKeyLookups, resolve_in_order


def recorder(seen: list[str]) -> ResultHook:
    """Return a result hook that appends each result to `seen`, once per lookup."""
    return lambda result, count: seen.extend([result] * count)


class CountingSource:
    """A blocking key source with fixed results, a call log and a delay."""

    def __init__(
        self, answers: dict[tuple[str, str], SecretLookup], delay: float = 0.0
    ) -> None:
        self.answers = answers
        self.delay = delay
        self.calls: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()

    def fetch(self, namespace: str, name: str, timeout: float) -> SecretLookup:
        with self._lock:
            self.calls.append((namespace, name, timeout))
        time.sleep(self.delay)
        return self.answers.get((namespace, name), SecretLookup.not_found())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=False)


DB = SecretLookup.found(frozenset({"username", "password"}))


def far() -> float:
    return time.monotonic() + 5


async def test_concurrent_first_lookups_share_one_call(
    executor: ThreadPoolExecutor,
) -> None:
    source = CountingSource({("team-a", "db-creds"): DB}, delay=0.2)
    seen: list[str] = []
    lookups = SecretKeyLookups(source, executor, ttl=5, on_result=recorder(seen))

    answers = await asyncio.gather(
        *(lookups.lookup("team-a", "db-creds", ["username"], far()) for _ in range(10))
    )

    assert len(source.calls) == 1
    assert all(answer.status is LookupStatus.FOUND for answer in answers)
    assert seen == ["fetched"] * 10


async def test_second_lookup_within_ttl_is_cached(executor: ThreadPoolExecutor) -> None:
    source = CountingSource({("team-a", "db-creds"): DB})
    seen: list[str] = []
    lookups = SecretKeyLookups(source, executor, ttl=5, on_result=recorder(seen))

    await lookups.lookup("team-a", "db-creds", ["username"], far())
    second = await lookups.lookup("team-a", "db-creds", ["password"], far())

    assert len(source.calls) == 1
    assert second.keys == frozenset({"username", "password"})
    assert seen == ["fetched", "cached"]


async def test_cache_entry_expires_after_ttl(executor: ThreadPoolExecutor) -> None:
    source = CountingSource({("team-a", "db-creds"): DB})
    clock = FakeClock()
    lookups = SecretKeyLookups(source, executor, ttl=5, clock=clock)

    await lookups.lookup("team-a", "db-creds", ["username"], clock.now + 5)
    clock.now += 5.01
    await lookups.lookup("team-a", "db-creds", ["username"], clock.now + 5)

    assert len(source.calls) == 2


async def test_missing_secret_is_never_cached(executor: ThreadPoolExecutor) -> None:
    source = CountingSource({})
    lookups = SecretKeyLookups(source, executor, ttl=5)

    first = await lookups.lookup("team-a", "nope", ["k"], far())
    second = await lookups.lookup("team-a", "nope", ["k"], far())

    assert first.status is LookupStatus.NOT_FOUND
    assert second.status is LookupStatus.NOT_FOUND
    assert len(source.calls) == 2


async def test_missing_key_in_cache_is_checked_live(
    executor: ThreadPoolExecutor,
) -> None:
    source = CountingSource({("team-a", "db-creds"): DB})
    lookups = SecretKeyLookups(source, executor, ttl=5)
    await lookups.lookup("team-a", "db-creds", ["username"], far())

    # The key was added to the secret after the first lookup.
    source.answers[("team-a", "db-creds")] = SecretLookup.found(
        frozenset({"username", "password", "token"})
    )
    answer = await lookups.lookup("team-a", "db-creds", ["token"], far())

    assert len(source.calls) == 2
    assert "token" in answer.keys


async def test_forbidden_and_error_are_not_cached(executor: ThreadPoolExecutor) -> None:
    source = CountingSource(
        {("team-a", "db-creds"): SecretLookup.failed(LookupStatus.FORBIDDEN, "no")}
    )
    seen: list[str] = []
    lookups = SecretKeyLookups(source, executor, ttl=5, on_result=recorder(seen))

    await lookups.lookup("team-a", "db-creds", ["username"], far())
    await lookups.lookup("team-a", "db-creds", ["username"], far())

    assert len(source.calls) == 2
    assert seen == ["forbidden", "forbidden"]


async def test_slow_source_times_out_at_deadline(executor: ThreadPoolExecutor) -> None:
    source = CountingSource({("team-a", "db-creds"): DB}, delay=1.0)
    seen: list[str] = []
    lookups = SecretKeyLookups(source, executor, ttl=5, on_result=recorder(seen))

    started = time.monotonic()
    answer = await lookups.lookup("team-a", "db-creds", ["username"], started + 0.2)
    elapsed = time.monotonic() - started

    assert answer.status is LookupStatus.TIMEOUT
    assert answer.api_called
    assert "timed out" in answer.detail
    assert elapsed < 0.5
    assert seen == ["error"]
    # The client call itself got the remaining time as its timeout.
    assert source.calls[0][2] <= 0.2


async def test_passed_deadline_makes_no_call(executor: ThreadPoolExecutor) -> None:
    source = CountingSource({("team-a", "db-creds"): DB})
    lookups = SecretKeyLookups(source, executor, ttl=5)

    answer = await lookups.lookup(
        "team-a", "db-creds", ["username"], time.monotonic() - 1
    )

    assert answer.status is LookupStatus.TIMEOUT
    assert not answer.api_called
    assert source.calls == []


async def test_resolvers_asked_in_order_until_found() -> None:
    consulted: list[str] = []

    def resolver(label: str, answer: SecretLookup):  # type: ignore[no-untyped-def]
        async def resolve(
            namespace: str, name: str, keys: object, deadline: float
        ) -> SecretLookup:
            consulted.append(label)
            return answer

        return resolve

    missing = SecretLookup.not_found()
    shared = SecretLookup.found(frozenset({"token"}))
    chain = [
        resolver("namespace", missing),
        resolver("cluster-wide", shared),
        resolver("never", missing),
    ]

    answer = await resolve_in_order(chain, "team-a", "shared", ["token"], far())

    assert answer == shared
    assert consulted == ["namespace", "cluster-wide"]


async def test_cache_bounded_oldest_dropped(executor: ThreadPoolExecutor) -> None:
    names = ["s1", "s2", "s3"]
    source = CountingSource(
        {("team-a", name): SecretLookup.found(frozenset({"k"})) for name in names}
    )
    lookups = SecretKeyLookups(source, executor, ttl=60, max_entries=2)

    for name in names:
        await lookups.lookup("team-a", name, ["k"], far())
    await lookups.lookup("team-a", "s3", ["k"], far())
    await lookups.lookup("team-a", "s1", ["k"], far())

    fetched = [name for _, name, _ in source.calls]
    assert fetched == ["s1", "s2", "s3", "s1"]
