"""A queue of source names that holds each name at most once.

Events only add the name of the source they concern, so a burst of events
for one source becomes one reconcile. A name added while it is being
reconciled is queued again once that reconcile is done, never run twice at
the same time.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._condition = threading.Condition()
        self._ready: list[str] = []
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._delayed: list[tuple[float, str]] = []
        self._closed = False

    def add(self, name: str) -> None:
        with self._condition:
            if name in self._active:
                self._dirty.add(name)
            elif name not in self._queued:
                self._queued.add(name)
                self._ready.append(name)
                self._condition.notify()

    def add_after(self, name: str, delay: float) -> None:
        """Add `name` once `delay` seconds have passed."""
        with self._condition:
            heapq.heappush(self._delayed, (self._clock() + delay, name))
            self._condition.notify()

    def get(self, timeout: float) -> str | None:
        """Return the next name, or None after `timeout` seconds or when closed."""
        deadline = self._clock() + timeout
        with self._condition:
            while True:
                self._move_due()
                if self._closed:
                    return None
                if self._ready:
                    name = self._ready.pop(0)
                    self._queued.discard(name)
                    self._active.add(name)
                    return name
                wait = deadline - self._clock()
                if wait <= 0:
                    return None
                if self._delayed:
                    wait = min(wait, self._delayed[0][0] - self._clock())
                self._condition.wait(max(wait, 0.0))

    def done(self, name: str) -> None:
        """Mark the reconcile of `name` finished and queue it again if needed."""
        with self._condition:
            self._active.discard(name)
            if name in self._dirty:
                self._dirty.discard(name)
                self._queued.add(name)
                self._ready.append(name)
                self._condition.notify()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def __len__(self) -> int:
        with self._condition:
            return len(self._ready) + len(self._delayed)

    def _move_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, name = heapq.heappop(self._delayed)
            if name in self._active:
                self._dirty.add(name)
            elif name not in self._queued:
                self._queued.add(name)
                self._ready.append(name)
