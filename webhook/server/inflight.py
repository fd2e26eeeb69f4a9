"""A limit on AdmissionReviews handled at once; the excess gets HTTP 429.

Without a limit, a burst of reviews queues inside the process: each waits
for a lookup thread, memory grows with every body read, and many responses
arrive after kube-apiserver has given up. Past the limit a review gets
an immediate HTTP 429 and `Retry-After`, before its body is read.
kube-apiserver retries a 429 that carries an integer `Retry-After` while the
webhook's timeout allows, so a short burst costs a retry, not a failure.
Probes and /metrics are never limited.

A second limit counts bytes: the declared body sizes of the reviews in
flight. Parsing and planning a body takes 6-7 times its size in memory, so
the count limit alone let 64 large UPDATE reviews take far more memory than
the chart's limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from webhook.admission.reviews import MAX_REVIEW_BYTES
from webhook.server.responses import send_json

logger = logging.getLogger(__name__)

# Paths whose POSTs count against the limit.
REVIEW_PATHS = frozenset({"/mutate", "/validate-template"})

# Whole seconds kube-apiserver waits before its retry; client-go accepts
# only integers.
RETRY_AFTER_SECONDS = 1

# At most one warning per this many seconds while reviews are being shed.
WARNING_INTERVAL_SECONDS = 10.0

SHED_MESSAGE = (
    "runai-secrets-webhook is handling {limit} reviews already (--max-in-flight), "
    "so this one was not started. Nothing was changed; kube-apiserver retries "
    "after Retry-After, and retrying the request is safe."
)

SHED_BYTES_MESSAGE = (
    "runai-secrets-webhook is handling {held} bytes of reviews already, and "
    "this review's {size} bytes would pass the limit of {limit} bytes "
    "(--max-in-flight-bytes), so it was not started. Nothing was changed; "
    "kube-apiserver retries after Retry-After, and retrying the request is safe."
)


class Shed(Exception):
    """A review call was not let in; `message` names the limit it would pass."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InFlightLimit:
    """Pass at most `limit` review calls at once to `app`; 0 means no limit.

    `max_bytes` bounds the sum of the declared body sizes in flight (0: no
    bound); a body without Content-Length counts as the largest allowed. A
    review is always let in when no other review is in flight, so one larger than
    `max_bytes` is still served alone. `on_shed` is called once per review
    rejected with 429.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        on_shed: Callable[[], None] = lambda: None,
        max_bytes: int = 0,
    ) -> None:
        self.app = app
        self.limit = limit
        self.max_bytes = max_bytes
        self.on_shed = on_shed
        self.in_flight = 0
        self.bytes_in_flight = 0
        self._shed_since_warning = 0
        self._last_warning = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_review(scope):
            await self.app(scope, receive, send)
            return
        try:
            size = self.enter(scope)
        except Shed as shed:
            await self.reject(send, shed.message)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.leave(size)

    def enter(self, scope: Scope) -> int:
        """Count a review call in; return the bytes it holds, for `leave`.

        Raises `Shed`, having counted and logged it, when the call would pass
        a limit. Every call that `enter` returns from must reach `leave`.
        """
        if not (self.limit or self.max_bytes):
            size = 0
        elif self.limit and self.in_flight >= self.limit:
            self._count_shed()
            raise Shed(SHED_MESSAGE.format(limit=self.limit))
        else:
            size = _declared_size(scope)
            held_bytes = self.bytes_in_flight
            if self.max_bytes and held_bytes and held_bytes + size > self.max_bytes:
                self._count_shed()
                message = SHED_BYTES_MESSAGE.format(
                    held=held_bytes, size=size, limit=self.max_bytes
                )
                raise Shed(message)
        # One event loop per process, so the counters need no lock.
        self.in_flight += 1
        self.bytes_in_flight += size
        return size

    def leave(self, size: int) -> None:
        """Count out a call that `enter` let in with `size` bytes."""
        self.in_flight -= 1
        self.bytes_in_flight -= size

    def _count_shed(self) -> None:
        self.on_shed()
        self._shed_since_warning += 1
        now = time.monotonic()
        if now - self._last_warning >= WARNING_INTERVAL_SECONDS:
            logger.warning(
                "reviews rejected with 429: too many in flight",
                extra={
                    "limit": self.limit,
                    "max_bytes": self.max_bytes,
                    "rejected": self._shed_since_warning,
                },
            )
            self._shed_since_warning = 0
            self._last_warning = now

    async def reject(self, send: Send, message: str) -> None:
        """Send HTTP 429 with Retry-After for a call that `enter` shed."""
        body = orjson.dumps({"message": message, "code": 429})
        retry_after = str(RETRY_AFTER_SECONDS).encode()
        await send_json(send, 429, body, [(b"retry-after", retry_after)])


def _is_review(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] == "POST"
        and scope["path"] in REVIEW_PATHS
    )


def _declared_size(scope: Scope) -> int:
    """Return the body's Content-Length, or the largest body allowed without one."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return min(int(value), MAX_REVIEW_BYTES + 1)
    return MAX_REVIEW_BYTES
