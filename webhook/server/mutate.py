"""POST /mutate: read, check and respond to one AdmissionReview.

The call is checked in a fixed order: size limit (413), empty body, content
type (415), JSON and envelope (400). After that every outcome, an internal
error included, is an HTTP 200 AdmissionReview that carries the request's
uid. The quick path reads a JSON body before the JSON and envelope checks,
and responds only to one that passes them, but for one case that
kube-apiserver never sends: a number past a double's range in a member that
the quick path skips (see `decode_pod_review`).

The endpoint is a plain ASGI callable. Every pod creation waits for it, and
Starlette's request and response objects cost about as much CPU time as the
whole admission logic of a typical pod (see bench/README.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable

import orjson
from starlette.types import Receive, Scope, Send

from webhook.admission.decisions import Decision, deny
from webhook.admission.errors import MalformedReview
from webhook.admission.podspecs import BUILTIN_KINDS
from webhook.admission.quick import (
    PodReview,
    QuickAnswer,
    decode_pod_review,
)
from webhook.admission.reviews import (
    MAX_REVIEW_BYTES,
    Review,
    encode_response,
    is_json,
    parse_review,
)
from webhook.server import logs, offload
from webhook.server.deadlines import ReadDeadlines, query_budget
from webhook.server.metrics import Metrics
from webhook.server.responses import send_json

logger = logging.getLogger(__name__)

JSON = "application/json"

BUILTIN_KIND_NAMES = frozenset(kind.kind for kind in BUILTIN_KINDS)

# Decides one parsed review before the absolute time.monotonic() deadline.
Reviewer = Callable[[Review, float, logs.BoundLogger], Awaitable[Decision]]
# Returns the response to a usual review at once, or None to leave it to the
# reviewer.
QuickReviewer = Callable[[PodReview], QuickAnswer | None]

INTERNAL_ERROR_MESSAGE = (
    "runai-secrets-webhook failed with an internal error while checking this "
    "object, so it is denied rather than admitted with unchecked SECRET: "
    "values. Retry; if it fails again, ask the cluster admin to look up "
    "uid {uid} in the webhook's logs."
)


def content_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str]:
    """Return the first Content-Type and Content-Length of raw ASGI headers."""
    content_type = content_length = None
    for name, value in headers:
        if name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif name == b"content-length" and content_length is None:
            content_length = value.decode("latin-1")
    return content_type or "", content_length or ""


async def read_body(
    receive: Receive,
    declared: str,
    deadline: float,
    deadlines: ReadDeadlines,
    limit: int = MAX_REVIEW_BYTES,
) -> bytes:
    """Read a request body, raising a 413 as soon as it exceeds `limit` bytes.

    `declared` is the Content-Length header, empty when there is none. The
    default limit is 7 MiB. etcd takes requests of up to 1.5 MiB by default
    (--max-request-bytes), but an object's JSON, which is usually larger
    than its stored form, may be up to kube-apiserver's 3 MiB request body
    limit. An UPDATE review carries `object` and `oldObject`, so 2 x 3 MiB,
    plus 1 MiB for the envelope and userInfo.

    The read must end by `deadline`, a time.monotonic() value, normally the
    review's own deadline from `?timeout=`. Past it `deadlines` cuts the
    read and it raises a 408, because a client that sends its body slowly
    would otherwise keep a --max-in-flight slot for as long as it likes. A
    client that disconnects mid-body gets a 400.
    """
    if declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)

    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("read_body must run inside an asyncio task")
    cancelling = task.cancelling()
    deadlines.watch(task, deadline)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise MalformedReview(
                    400,
                    f"client disconnected after {size} bytes of the request body, "
                    "so there is no review to answer",
                )
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        # A cancellation from outside, even one that arrives with the cut,
        # must still end the task, as it does with asyncio.timeout.
        if not deadlines.was_cut(task) or task.uncancel() > cancelling:
            raise
        raise MalformedReview(
            408,
            f"request body was not complete before the review's deadline: "
            f"{size} bytes arrived, {declared or 'an unknown number of'} "
            "bytes were declared. Send the whole body at once; kube-apiserver "
            "does.",
        ) from None
    finally:
        deadlines.forget(task)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large(size: int, limit: int) -> MalformedReview:
    return MalformedReview(
        413,
        f"request body has at least {size} bytes, over the limit of {limit} "
        "bytes for an AdmissionReview",
    )


def malformed_content(error: MalformedReview) -> bytes:
    """Return the JSON body of the HTTP error response for a malformed call."""
    return orjson.dumps({"message": error.message, "code": error.status})


def quick_answer(quick: QuickReviewer, body: bytes) -> QuickAnswer | None:
    """Decode `body` and try `quick` on it; return None for the full path."""
    review = decode_pod_review(body)
    if review is None:
        return None
    try:
        return quick(review)
    except Exception:
        # The reviewer decides every review on its own, so a fault here
        # costs time, never a wrong response.
        # NOTE: a fault after `confirm` counted its cached lookups would
        # have them counted again by the reviewer. No input is known to
        # raise there.
        log = logs.ReviewLogger(logger, review.log_fields())
        log.exception("quick path failed, so the full path decides the review")
        return None


class MutateEndpoint:
    """The /mutate route: turns an HTTP call into a review and back.

    `quick`, when given, is tried first on each review, in a worker thread
    for a large body, and the reviewer decides every review it returns None
    for. It is skipped under DEBUG logging, because the reviewer logs each
    review at that level.
    """

    def __init__(
        self,
        reviewer: Reviewer,
        metrics: Metrics,
        known_kinds: Collection[str] = BUILTIN_KIND_NAMES,
        quick: QuickReviewer | None = None,
    ) -> None:
        self._reviewer = reviewer
        self._quick = quick
        self._metrics = metrics
        # Kinds counted under their own name in the metrics; others as "other".
        self._known_kinds = frozenset(known_kinds)
        self._deadlines = ReadDeadlines()
        # The quick path responds only to Pod CREATE reviews, so its two
        # outcomes have fixed counters.
        self._quick_counters = {
            patched: metrics.review_counter(
                "Pod", "CREATE", "patched" if patched else "allowed"
            )
            for patched in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        deadline = started + query_budget(scope["query_string"])
        content_type, declared = content_headers(scope["headers"])
        try:
            body = await read_body(receive, declared, deadline, self._deadlines)
        except MalformedReview as error:
            await self._reject(send, error)
            return

        answer = None
        quick = self._quick
        # The reviewer logs each review under DEBUG, so the quick path is
        # off then.
        if (
            quick is not None
            and is_json(content_type)
            and not logger.isEnabledFor(logging.DEBUG)
        ):
            if len(body) > offload.LARGE_BODY_BYTES:
                answer = await asyncio.to_thread(quick_answer, quick, body)
            else:
                answer = quick_answer(quick, body)
        if answer is not None:
            content = answer.content
            self._quick_counters[answer.patched].inc()
        else:
            offload.body_bytes.set(len(body))
            try:
                review = await offload.off_loop_if_large(
                    parse_review, body, content_type
                )
            except MalformedReview as error:
                await self._reject(send, error)
                return
            content, outcome = await self._answer(review, deadline)
            request = review["request"]
            self._metrics.count_review(
                request["kind"]["kind"],
                request["operation"],
                outcome,
                self._known_kinds,
            )

        self._metrics.review_seconds.observe(time.monotonic() - started)
        await send_json(send, 200, content)

    async def _answer(self, review: Review, deadline: float) -> tuple[bytes, str]:
        """Decide the review; return the encoded response and the outcome label."""
        log = logs.ReviewLogger(logger, review["request"])
        debug = log.isEnabledFor(logging.DEBUG)
        try:
            if debug:
                log.debug("review received")
            decision = await self._reviewer(review, deadline, log)
        except Exception:
            # Deny, because admitting after a crash could let an unchecked
            # SECRET: value through.
            log.exception("review failed with an internal error")
            uid = review["request"]["uid"]
            decision = deny(500, INTERNAL_ERROR_MESSAGE.format(uid=uid))
            return encode_response(review, decision), "error"

        if not decision.allowed:
            # A denial that quotes the author's value is logged without it.
            reason = decision.log_message or decision.message
            log.info("review denied", extra={"code": decision.code, "reason": reason})
            return encode_response(review, decision), "denied"
        if debug:
            log.debug(
                "review allowed",
                extra={
                    "patch_operations": len(decision.patch),
                    "warnings": len(decision.warnings),
                },
            )
        return encode_response(
            review, decision
        ), "patched" if decision.patch else "allowed"

    async def _reject(self, send: Send, error: MalformedReview) -> None:
        """Log, count and respond to a call that carries no review to decide."""
        logger.warning(
            "malformed admission call rejected",
            extra={"status": error.status, "reason": error.message},
        )
        self._metrics.reviews.labels(kind="", operation="", outcome="malformed").inc()
        await send_json(send, error.status, malformed_content(error))
