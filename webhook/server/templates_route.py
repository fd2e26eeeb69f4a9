"""`POST /validate-template`: the check of a template ConfigMap when saved."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from webhook.admission.decisions import deny
from webhook.admission.errors import MalformedReview
from webhook.admission.reviews import encode_response, parse_review
from webhook.templates.validating import review_template

logger = logging.getLogger(__name__)

PATH = "/validate-template"


def templates_router(template_namespace: str) -> APIRouter:
    """Build the router that validates templates in `template_namespace`."""
    router = APIRouter()

    @router.post(PATH)
    async def validate_template(request: Request) -> Response:
        body = await request.body()
        try:
            review = parse_review(body, request.headers.get("content-type", ""))
        except MalformedReview as error:
            logger.info(
                "malformed template review",
                extra={"status": error.status, "error": error.message},
            )
            return JSONResponse({"message": error.message}, status_code=error.status)

        admission = review["request"]
        fields = {
            "uid": admission["uid"],
            "name": admission.get("name", ""),
            "operation": admission["operation"],
        }
        try:
            decision = review_template(admission, template_namespace)
        except Exception:
            # Still answer with the request's uid, so kube-apiserver reports a
            # denial with a reason instead of a failed call.
            logger.exception("template review failed", extra=fields)
            decision = deny(
                500, "the webhook failed to check the template; see its logs"
            )

        logger.debug("template reviewed", extra={**fields, "allowed": decision.allowed})
        return Response(
            encode_response(review, decision), media_type="application/json"
        )

    return router
