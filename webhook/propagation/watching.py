"""List and watch one kind of object, and restart the watch after every failure.

A `Watcher` lists, then watches from the list's resourceVersion with
bookmarks. It restarts the watch from the last resourceVersion it saw when
the server ends the watch, when the connection stays silent for
`idle_timeout` seconds (no event and no bookmark), or when the watch outlives
the server-side `timeoutSeconds` by `client_margin`. It lists again on
410 Gone, and backs off with jitter after errors and after watches that
end at once with nothing in them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from webhook.propagation import metrics
from webhook.propagation.api import API_FAILURES, describe, status_of
from webhook.propagation.copies import Object
from webhook.propagation.settings import WatchTiming

logger = logging.getLogger(__name__)

# A watch that ends sooner than this without any event or bookmark counts as
# a failure and is reopened only after a backoff.
MIN_WATCH_SECONDS = 1.0
EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})


class GoneError(Exception):
    """The resourceVersion is too old to watch from: list again."""


class IdleError(Exception):
    """The watch sent nothing for longer than the idle timeout."""


@dataclass(frozen=True)
class WatchSource:
    """How to list and watch one kind: a client list method and its arguments."""

    name: str
    method: Callable[..., Any]
    args: tuple[Any, ...] = ()
    label_selector: str | None = None


class Watcher:
    """Feed `on_list` with full lists and `on_event` with each watch event."""

    def __init__(
        self,
        source: WatchSource,
        timing: WatchTiming,
        on_list: Callable[[list[Object]], None],
        on_event: Callable[[str, Object], None],
    ) -> None:
        self.source = source
        self._timing = timing
        self._on_list = on_list
        self._on_event = on_event
        self._resource_version: str | None = None
        self._response: Any = None
        self._lock = threading.Lock()
        self.synced = threading.Event()

    def run(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                if self._resource_version is None:
                    self._list()
                started = time.monotonic()
                received = self._watch(stop)
                if received or time.monotonic() - started >= MIN_WATCH_SECONDS:
                    failures = 0
                    self._restarted("expired")
                    continue
                # A watch that ends at once with nothing in it (a proxy closing
                # streams, say) would otherwise be reopened in a tight loop.
                failures += 1
                self._restarted("short")
                stop.wait(self._backoff(failures))
            except GoneError:
                self._resource_version = None
                self._restarted("gone")
            except IdleError:
                self._restarted("idle")
            except API_FAILURES as error:
                if stop.is_set():
                    break
                if status_of(error) == 410:
                    self._resource_version = None
                    self._restarted("gone")
                    continue
                failures += 1
                self._restarted("error")
                metrics.API_ERRORS.labels(operation=f"watch_{self.source.name}").inc()
                logger.warning(
                    "watch failed",
                    extra={"watch": self.source.name, "error": describe(error)},
                )
                stop.wait(self._backoff(failures))

    def close(self) -> None:
        """Shut the current connection so `run` notices a stop at once."""
        with self._lock:
            response = self._response
        if response is not None:
            try:
                response.shutdown()
            except (OSError, AttributeError):
                pass

    def _backoff(self, failures: int) -> float:
        # Full jitter: a random wait up to an exponentially growing cap.
        cap = min(self._timing.backoff_max, self._timing.backoff_initial * 2**failures)
        return random.uniform(self._timing.backoff_initial, max(cap, 0.01))  # noqa: S311

    def _restarted(self, reason: str) -> None:
        metrics.WATCH_RESTARTS.labels(watch=self.source.name, reason=reason).inc()
        logger.debug(
            "watch restarted", extra={"watch": self.source.name, "reason": reason}
        )

    def _call(self, **kwargs: Any) -> Any:
        if self.source.label_selector is not None:
            kwargs["label_selector"] = self.source.label_selector
        return self.source.method(*self.source.args, _preload_content=False, **kwargs)

    def _list(self) -> None:
        items: list[Object] = []
        token: str | None = None
        timeout = (self._timing.connect_timeout, self._timing.idle_timeout)
        while True:
            response = self._call(limit=500, _continue=token, _request_timeout=timeout)
            page = orjson.loads(response.data)
            items.extend(page.get("items") or [])
            token = page.get("metadata", {}).get("continue")
            if not token:
                break
        self._resource_version = page["metadata"]["resourceVersion"]
        self._on_list(items)
        self.synced.set()

    def _watch(self, stop: threading.Event) -> bool:
        """Follow one watch request; return whether it sent any line."""
        timing = self._timing
        response = self._call(
            watch=True,
            resource_version=self._resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timing.server_timeout,
            # The read timeout applies to every read from the socket, so a
            # connection that stays silent raises ReadTimeoutError.
            _request_timeout=(timing.connect_timeout, timing.idle_timeout),
        )
        with self._lock:
            self._response = response
        deadline = time.monotonic() + timing.server_timeout + timing.client_margin
        received = False
        try:
            for line in self._lines(response):
                received = True
                if stop.is_set() or time.monotonic() > deadline:
                    return received
                self._handle(orjson.loads(line))
        except (ReadTimeoutError, ProtocolError) as error:
            if stop.is_set():
                return received
            if isinstance(error, ReadTimeoutError) or "timed out" in str(error):
                raise IdleError from error
            raise
        finally:
            with self._lock:
                self._response = None
            response.release_conn()
        return received

    @staticmethod
    def _lines(response: Any) -> Iterator[bytes]:
        buffer = b""
        for chunk in response.stream(4096, decode_content=True):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield line

    def _handle(self, event: Object) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise GoneError
            raise ValueError(f"watch error event: {str(obj.get('message'))[:200]}")
        if kind not in EVENT_TYPES:
            raise ValueError(f"unexpected watch event type {str(kind)[:50]!r}")
        version = obj.get("metadata", {}).get("resourceVersion")
        if version:
            self._resource_version = version
        if kind != "BOOKMARK":
            self._on_event(str(kind), obj)
