"""Asynchronous secret key lookups: thread pool, single-flight and a short cache.

The blocking client runs in a bounded thread pool so it never blocks the
event loop. Concurrent lookups of the same (namespace, secret) share one
call. A secret found in the API is reused for `ttl` seconds, so a positive
answer is at most `ttl` seconds old (plus the duration of the call that
produced it). A missing secret, a missing key, a 403 or an error is never
taken from the cache: every denial rests on a live call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from webhook.admission.lookups import LookupStatus, SecretLookup
from webhook.kube.secrets import KeySource

# Called with a result, one of cached, fetched, not_found, forbidden, error
# (which includes timeouts), and the number of lookups with that result.
ResultHook = Callable[[str, int], None]
Clock = Callable[[], float]

# Secrets kept in the cache at most. An entry is a few key names, so the
# bound keeps memory small even when a cluster has many secrets that are
# looked up once and never again.
MAX_CACHE_ENTRIES = 4096

RESULT_LABELS = {
    LookupStatus.FOUND: "fetched",
    LookupStatus.NOT_FOUND: "not_found",
    LookupStatus.FORBIDDEN: "forbidden",
    LookupStatus.TIMEOUT: "error",
    LookupStatus.ERROR: "error",
}


# Details of a TIMEOUT that came before any API call (`api_called` false).
NO_TIME_LEFT = "no time was left before the review's deadline"
NO_THREAD_FREE = "no lookup thread was free before the review's deadline"


@dataclass(frozen=True)
class _Entry:
    keys: SecretLookup
    expires_at: float


@dataclass(frozen=True)
class _Call:
    """An API call in the thread pool; `started` is set once a thread runs it."""

    future: asyncio.Future[SecretLookup]
    started: threading.Event


class SecretKeyLookups:
    """Look up secret key names in one namespace through a `KeySource`."""

    def __init__(
        self,
        source: KeySource,
        executor: Executor,
        ttl: float,
        on_result: ResultHook | None = None,
        clock: Clock = time.monotonic,
        max_entries: int = MAX_CACHE_ENTRIES,
    ) -> None:
        self._source = source
        self._executor = executor
        self._ttl = ttl
        self._on_result = on_result or (lambda result, count: None)
        self._clock = clock
        self._max_entries = max_entries
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._in_flight: dict[tuple[str, str], _Call] = {}

    async def lookup(
        self, namespace: str, name: str, keys: Collection[str], deadline: float
    ) -> SecretLookup:
        """Return the key names of a secret, live unless a fresh entry has `keys`.

        `deadline` is a `clock()` value; the lookup returns a TIMEOUT result
        when it is reached.
        """
        cached = self.cached(namespace, name, keys)
        if cached is not None:
            return cached

        result = await self._fetch_shared(namespace, name, deadline)
        self._on_result(RESULT_LABELS[result.status], 1)
        return result

    def cached(
        self, namespace: str, name: str, keys: Collection[str]
    ) -> SecretLookup | None:
        """Return a fresh cache entry that has every key in `keys`, or None."""
        return self.cached_all(namespace, {name: keys}).get(name)

    def cached_all(
        self, namespace: str, required: Mapping[str, Collection[str]]
    ) -> dict[str, SecretLookup]:
        """Return the fresh cache entries of the secrets in `required`.

        `required` maps each secret to the keys its entry must have. A review
        whose secrets are all cached is decided without a task per secret,
        with one clock read and one count for all its hits (see
        bench/README.md).
        """
        found: dict[str, SecretLookup] = {}
        cache = self._cache
        now = self._clock()
        for name, keys in required.items():
            entry = cache.get((namespace, name))
            if entry is None:
                continue
            if entry.expires_at <= now:
                del cache[(namespace, name)]
            elif entry.keys.keys.issuperset(keys):
                found[name] = entry.keys
        if found:
            self._on_result("cached", len(found))
        return found

    def confirm_all(
        self, namespace: str, required: Mapping[str, Collection[str]]
    ) -> bool:
        """Tell whether every secret in `required` is cached, fresh, with its keys.

        `required` maps each secret to the keys it must have. When all are,
        they are counted as cached lookups. Otherwise nothing is counted or
        dropped, and the caller looks them up as usual.
        """
        cache = self._cache
        now = self._clock()
        for name, keys in required.items():
            entry = cache.get((namespace, name))
            if entry is None or entry.expires_at <= now:
                return False
            found = entry.keys
            if (
                found.namespace and found.namespace != namespace
            ) or not found.keys.issuperset(keys):
                return False
        self._on_result("cached", len(required))
        return True

    async def _fetch_shared(
        self, namespace: str, name: str, deadline: float
    ) -> SecretLookup:
        remaining = deadline - self._clock()
        if remaining <= 0:
            return SecretLookup.failed(
                LookupStatus.TIMEOUT, NO_TIME_LEFT, api_called=False
            )

        key = (namespace, name)
        call = self._in_flight.get(key)
        joined = call is not None
        if call is None:
            call = self._start_fetch(namespace, name, remaining)

        # shield: one caller giving up must not cancel the call others share.
        try:
            result = await asyncio.wait_for(asyncio.shield(call.future), remaining)
        except TimeoutError:
            if not call.started.is_set():
                # Every thread stayed busy, so the API was never called.
                return SecretLookup.failed(
                    LookupStatus.TIMEOUT, NO_THREAD_FREE, api_called=False
                )
            return SecretLookup.failed(LookupStatus.TIMEOUT, "the API call timed out")

        # A joined call ran on the deadline of the review that started it,
        # which may come before ours. Its timeout does not show that the API
        # is still slow, so with time left this review makes its own call.
        if joined and result.status is LookupStatus.TIMEOUT:
            return await self._fetch_shared(namespace, name, deadline)
        return result

    def _store(self, key: tuple[str, str], result: SecretLookup) -> None:
        """Cache a found secret, first dropping expired or oldest entries if full."""
        now = self._clock()
        if len(self._cache) >= self._max_entries:
            expired = [
                old for old, entry in self._cache.items() if entry.expires_at <= now
            ]
            for old in expired:
                del self._cache[old]
        while len(self._cache) >= self._max_entries:
            # Dicts keep insertion order, so the first entry is the oldest.
            del self._cache[next(iter(self._cache))]
        self._cache.pop(key, None)
        self._cache[key] = _Entry(result, now + self._ttl)

    def _start_fetch(self, namespace: str, name: str, timeout: float) -> _Call:
        loop = asyncio.get_running_loop()
        key = (namespace, name)
        deadline = self._clock() + timeout
        started = threading.Event()

        def fetch() -> SecretLookup:
            # In a burst the call may wait for a free thread. The API gets only
            # the time that is left, and none if the review has given up, so
            # abandoned calls do not keep threads from new reviews.
            remaining = deadline - self._clock()
            if remaining <= 0:
                return SecretLookup.failed(
                    LookupStatus.TIMEOUT, NO_THREAD_FREE, api_called=False
                )
            started.set()
            return self._source.fetch(namespace, name, remaining)

        call = _Call(loop.run_in_executor(self._executor, fetch), started)
        self._in_flight[key] = call

        def finish(done: asyncio.Future[SecretLookup]) -> None:
            if self._in_flight.get(key) is call:
                del self._in_flight[key]
            if done.cancelled() or done.exception() is not None:
                return
            result = done.result()
            if result.status is LookupStatus.FOUND and self._ttl > 0:
                self._store(key, result)
            else:
                self._cache.pop(key, None)

        call.future.add_done_callback(finish)
        return call


Resolver = Callable[[str, str, Collection[str], float], Awaitable[SecretLookup]]
# Returns, without I/O, the fresh cached results in a namespace for a map of
# secrets to the keys each must have: one for each secret cached with them.
CachedResolver = Callable[[str, Mapping[str, Collection[str]]], dict[str, SecretLookup]]


async def resolve_in_order(
    resolvers: Sequence[Resolver],
    namespace: str,
    name: str,
    keys: Collection[str],
    deadline: float,
) -> SecretLookup:
    """Ask each resolver in turn; the first result other than NOT_FOUND wins.

    The first resolver looks in the review's namespace. Later ones, such as
    cluster-wide secrets, are only asked for secrets missing there.
    """
    result = SecretLookup.not_found()
    for resolve in resolvers:
        result = await resolve(namespace, name, keys, deadline)
        if result.status is not LookupStatus.NOT_FOUND:
            return result
    return result
