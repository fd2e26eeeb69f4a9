"""`POST /validate-template`: the check of a template ConfigMap when saved.

The call is read and checked like a `/mutate` call: size limit, content
type, JSON and envelope, each rejected with an HTTP error status. After that
every outcome is an HTTP 200 AdmissionReview with the request's uid.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request, Response

from webhook.admission.decisions import deny
from webhook.admission.errors import MalformedReview
from webhook.admission.reviews import encode_response, parse_review
from webhook.server import logs
from webhook.server.deadlines import ReadDeadlines, query_budget
from webhook.server.mutate import JSON, content_headers, malformed_content, read_body
from webhook.templates.validating import review_template

logger = logging.getLogger(__name__)

PATH = "/validate-template"

INTERNAL_ERROR_MESSAGE = (
    "runai-secrets-webhook failed with an internal error while checking this "
    "template, so it is rejected rather than saved unchecked. Retry; if it "
    "fails again, look up uid {uid} in the webhook's logs."
)


def templates_router(template_namespace: str) -> APIRouter:
    """Build the router that validates templates in `template_namespace`."""
    router = APIRouter()
    deadlines = ReadDeadlines()

    @router.post(PATH)
    async def validate_template(request: Request) -> Response:
        try:
            content_type, declared = content_headers(request.scope["headers"])
            deadline = time.monotonic() + query_budget(request.scope["query_string"])
            body = await read_body(request.receive, declared, deadline, deadlines)
            review = parse_review(body, content_type)
        except MalformedReview as error:
            logger.warning(
                "malformed template review rejected",
                extra={"status": error.status, "reason": error.message},
            )
            return Response(
                malformed_content(error), status_code=error.status, media_type=JSON
            )

        admission = review["request"]
        log = logs.ReviewLogger(logger, admission)
        try:
            decision = review_template(admission, template_namespace)
        except Exception:
            # Reject, so that a template the webhook could not check is not
            # saved as if it were valid.
            log.exception("template review failed with an internal error")
            message = INTERNAL_ERROR_MESSAGE.format(uid=admission["uid"])
            decision = deny(500, message)

        # The reason stays out of the log: it quotes the entry, and a literal
        # value in a template may be something that must not be logged.
        log.info("template reviewed", extra={"allowed": decision.allowed})
        return Response(encode_response(review, decision), media_type=JSON)

    return router
