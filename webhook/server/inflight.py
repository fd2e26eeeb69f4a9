"""A limit on AdmissionReviews handled at once; the excess gets HTTP 429.

Without a limit, a burst of reviews queues inside the process: each waits
for a lookup thread, memory grows with every body read, and many responses
arrive after kube-apiserver has given up. Past the limit a review gets
an immediate HTTP 429 and `Retry-After`, before its body is read.
kube-apiserver retries a 429 that carries an integer `Retry-After` while the
webhook's timeout allows, so a short burst costs a retry, not a failure.
Probes and /metrics are never limited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

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


class InFlightLimit:
    """Pass at most `limit` review calls at once to `app`; 0 means no limit.

    `on_shed` is called once per review rejected with 429.
    """

    def __init__(
        self, app: ASGIApp, limit: int, on_shed: Callable[[], None] = lambda: None
    ) -> None:
        self.app = app
        self.limit = limit
        self.on_shed = on_shed
        self.in_flight = 0
        self._shed_since_warning = 0
        self._last_warning = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.limit or not _is_review(scope):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self._count_shed()
            await self._reject(send)
            return

        # One event loop per process, so the counter needs no lock.
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _count_shed(self) -> None:
        self.on_shed()
        self._shed_since_warning += 1
        now = time.monotonic()
        if now - self._last_warning >= WARNING_INTERVAL_SECONDS:
            logger.warning(
                "reviews rejected with 429: too many in flight",
                extra={"limit": self.limit, "rejected": self._shed_since_warning},
            )
            self._shed_since_warning = 0
            self._last_warning = now

    async def _reject(self, send: Send) -> None:
        body = orjson.dumps(
            {"message": SHED_MESSAGE.format(limit=self.limit), "code": 429}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _is_review(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] == "POST"
        and scope["path"] in REVIEW_PATHS
    )
