"""POST /mutate: read, check and respond to one AdmissionReview.

The call is checked in a fixed order before any admission logic runs: size
limit (413), empty body, content type (415), JSON and envelope (400). After
that every outcome, an internal error included, is an HTTP 200
AdmissionReview that carries the request's uid.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection

import orjson
from fastapi import Request, Response
from starlette.requests import ClientDisconnect

from webhook.admission.decisions import Decision, deny
from webhook.admission.errors import MalformedReview
from webhook.admission.podspecs import BUILTIN_KINDS
from webhook.admission.reviews import (
    MAX_REVIEW_BYTES,
    Review,
    encode_response,
    parse_review,
)
from webhook.server import logs, offload
from webhook.server.deadlines import review_budget
from webhook.server.metrics import Metrics

logger = logging.getLogger(__name__)

JSON = "application/json"

BUILTIN_KIND_NAMES = frozenset(kind.kind for kind in BUILTIN_KINDS)

# Decides one parsed review before the absolute time.monotonic() deadline.
Reviewer = Callable[[Review, float, logs.BoundLogger], Awaitable[Decision]]

INTERNAL_ERROR_MESSAGE = (
    "runai-secrets-webhook failed with an internal error while checking this "
    "object, so it is denied rather than admitted with unchecked SECRET: "
    "values. Retry; if it fails again, ask the cluster admin to look up "
    "uid {uid} in the webhook's logs."
)


async def read_body(
    request: Request, deadline: float | None = None, limit: int = MAX_REVIEW_BYTES
) -> bytes:
    """Read the request body, raising a 413 as soon as it exceeds `limit` bytes.

    The default limit is 7 MiB. etcd takes requests of up to 1.5 MiB by
    default (--max-request-bytes), but an object's JSON, which is usually
    larger than its stored form, may be up to kube-apiserver's 3 MiB request
    body limit. An UPDATE review carries `object` and `oldObject`, so 2 x
    3 MiB, plus 1 MiB for the envelope and userInfo.

    The read must end by `deadline`, a time.monotonic() value that defaults
    to the review's own deadline from `?timeout=`. Past it the read raises a
    408, because a client that sends its body slowly would otherwise keep a
    --max-in-flight slot for as long as it likes. A client that disconnects
    mid-body gets a 400.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    if deadline is None:
        deadline = time.monotonic() + review_budget(request.query_params.get("timeout"))

    body = bytearray()
    try:
        async with asyncio.timeout(deadline - time.monotonic()):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise too_large(len(body), limit)
    except TimeoutError:
        raise MalformedReview(
            408,
            f"request body was not complete before the review's deadline: "
            f"{len(body)} bytes arrived, {declared or 'an unknown number of'} "
            "bytes were declared. Send the whole body at once; kube-apiserver "
            "does.",
        ) from None
    except ClientDisconnect:
        raise MalformedReview(
            400,
            f"client disconnected after {len(body)} bytes of the request body, "
            "so there is no review to answer",
        ) from None
    return bytes(body)


def too_large(size: int, limit: int) -> MalformedReview:
    return MalformedReview(
        413,
        f"request body has at least {size} bytes, over the limit of {limit} "
        "bytes for an AdmissionReview",
    )


class MutateEndpoint:
    """The /mutate route: turns an HTTP call into a review and back."""

    def __init__(
        self,
        reviewer: Reviewer,
        metrics: Metrics,
        known_kinds: Collection[str] = BUILTIN_KIND_NAMES,
    ) -> None:
        self._reviewer = reviewer
        self._metrics = metrics
        # Kinds counted under their own name in the metrics; others as "other".
        self._known_kinds = frozenset(known_kinds)

    async def __call__(self, request: Request) -> Response:
        started = time.monotonic()
        deadline = started + review_budget(request.query_params.get("timeout"))
        try:
            body = await read_body(request, deadline)
            offload.body_bytes.set(len(body))
            content_type = request.headers.get("content-type", "")
            review = await offload.off_loop_if_large(parse_review, body, content_type)
        except MalformedReview as error:
            return self._malformed(error)

        content, outcome = await self._answer(review, deadline)

        kind = review["request"]["kind"]["kind"]
        operation = review["request"]["operation"]
        self._metrics.count_review(kind, operation, outcome, self._known_kinds)
        self._metrics.review_seconds.observe(time.monotonic() - started)
        return Response(content, media_type=JSON)

    async def _answer(self, review: Review, deadline: float) -> tuple[bytes, str]:
        """Decide the review; return the encoded response and the outcome label."""
        uid = review["request"]["uid"]
        log = logs.bind(logger, {logs.UID: uid})
        try:
            # Inside the try, so that a bug in reading the fields still ends
            # in an AdmissionReview with the uid.
            log = logs.bind(logger, logs.review_fields(review["request"]))
            log.debug("review received")
            decision = await self._reviewer(review, deadline, log)
        except Exception:
            # Deny, because admitting after a crash could let an unchecked
            # SECRET: value through.
            log.exception("review failed with an internal error")
            decision = deny(500, INTERNAL_ERROR_MESSAGE.format(uid=uid))
            return encode_response(review, decision), "error"

        if not decision.allowed:
            log.info(
                "review denied",
                extra={"code": decision.code, "reason": decision.message},
            )
            return encode_response(review, decision), "denied"
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

    def _malformed(self, error: MalformedReview) -> Response:
        logger.warning(
            "malformed admission call rejected",
            extra={"status": error.status, "reason": error.message},
        )
        self._metrics.reviews.labels(kind="", operation="", outcome="malformed").inc()
        content = orjson.dumps({"message": error.message, "code": error.status})
        return Response(content, status_code=error.status, media_type=JSON)
