"""The time a review may take, from kube-apiserver's `?timeout=` parameter."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

# kube-apiserver's default webhook timeoutSeconds, used when the call has no
# `timeout` parameter.
DEFAULT_TIMEOUT_SECONDS = 10.0

# The review stops waiting for the API this long before the caller gives up,
# so that the response, even a denial, reaches the caller in time. The margin
# is a fifth of the timeout, at most one second.
MARGIN_FRACTION = 0.2
MAX_MARGIN_SECONDS = 1.0

# Go's time.Duration.String() format, which client-go uses for `timeout`,
# for example "10s", "9.5s", "750ms" or "1m0s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
}


def parse_go_duration(text: str) -> float | None:
    """Return the seconds in a Go duration string, or None if it is invalid."""
    position = 0
    total = 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if text else None


def review_budget(timeout_parameter: str | None) -> float:
    """Return the seconds a review may spend on lookups.

    That is the caller's timeout (or the default when the parameter is
    missing or invalid) minus the safety margin.
    """
    seconds = None
    if timeout_parameter:
        seconds = parse_go_duration(timeout_parameter)
    if not seconds or seconds <= 0:
        seconds = DEFAULT_TIMEOUT_SECONDS
    margin = min(MAX_MARGIN_SECONDS, seconds * MARGIN_FRACTION)
    return seconds - margin


class ReadDeadlines:
    """Cut request body reads that pass their deadline, with one timer for all.

    A read registers its task and deadline with `watch`. One callback,
    armed while any read is registered, cancels every task past its deadline
    each `interval` seconds, so a read is cut at most `interval` seconds
    late. A timer per read (`asyncio.timeout`) cost about 4 us of CPU time
    per review (see bench/README.md). Registering a read costs a dict insert.
    """

    def __init__(
        self, interval: float = 0.1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._cut: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, task: asyncio.Task[Any], deadline: float) -> None:
        """Cancel `task` once `deadline`, a `clock()` value, has passed."""
        self._reading[task] = deadline
        if self._timer is None or self._loop is not task.get_loop():
            self._arm(task.get_loop())

    def was_cut(self, task: asyncio.Task[Any]) -> bool:
        """Tell whether `task` was cancelled here because its read was too slow."""
        return task in self._cut

    def forget(self, task: asyncio.Task[Any]) -> None:
        """Stop watching `task`; call it when its read ends, however it ends."""
        self._reading.pop(task, None)
        self._cut.discard(task)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop = loop
        self._timer = loop.call_later(self.interval, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = self._clock()
        late = [task for task, deadline in self._reading.items() if deadline <= now]
        for task in late:
            del self._reading[task]
            self._cut.add(task)
            task.cancel()
        if self._reading and self._loop is not None and not self._loop.is_closed():
            self._arm(self._loop)


# Query strings at most this long have their budget cached.
MAX_CACHED_QUERY_BYTES = 256


def query_budget(query_string: bytes) -> float:
    """Return the review budget for a raw query string, such as b"timeout=10s".

    The last `timeout` parameter counts. kube-apiserver sends the same query
    string with every call of one webhook, so short ones are cached. The
    cache is bounded in entries and in size, because any client may send
    other query strings.
    """
    if len(query_string) <= MAX_CACHED_QUERY_BYTES:
        return _cached_query_budget(query_string)
    return _query_budget(query_string)


def _query_budget(query_string: bytes) -> float:
    timeout = None
    for name, value in parse_qsl(query_string.decode("latin-1"), True):
        if name == "timeout":
            timeout = value
    return review_budget(timeout)


_cached_query_budget = lru_cache(maxsize=64)(_query_budget)
