"""What one admitted request did: the result object and the user's error texts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.harness.kubestatus import ApiError

Object = dict[str, Any]


@dataclass
class WebhookCall:
    """One call to a webhook: what was sent, what came back and what it did."""

    webhook: str
    configuration: str
    round: int
    review: Object
    status: int | None = None
    response: Object | None = None
    outcome: str = ""  # allowed, patched, denied, failed-closed, failed-open
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Skip:
    webhook: str
    configuration: str
    reason: str


@dataclass
class AdmissionResult:
    """The outcome of one admitted request, as the user and the audit log see it."""

    allowed: bool
    code: int
    message: str = ""
    status: Object | None = None  # the Status body the user gets when rejected
    object: Object | None = None  # the object as stored, when allowed
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)
    calls: list[WebhookCall] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    dropped_fields: list[str] = field(default_factory=list)

    @property
    def requests(self) -> list[Object]:
        return [call.review for call in self.calls]

    @property
    def responses(self) -> list[Object | None]:
        return [call.response for call in self.calls]

    def called(self, webhook: str) -> int:
        return sum(call.webhook == webhook for call in self.calls)


def denial(name: str, status: Object) -> ApiError:
    """Build the user's error from a denial, as ToStatusErr in k8s.io/apiserver does."""
    code = status.get("code") or 0
    if code < 400:
        code = 400
    denied_by = f'admission webhook "{name}" denied the request'
    if status.get("message"):
        message = f"{denied_by}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied_by}: {status['reason']}"
    else:
        message = f"{denied_by} without explanation"
    error = ApiError(code, status.get("reason") or "", message, status.get("details"))
    return error


def status_error(status: int, data: bytes) -> str:
    """Word a non-2xx response as client-go does; a Status body's message wins."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("message"):
        return str(body["message"])
    texts = {
        400: "the server rejected our request for an unknown reason",
        401: "the server has asked for the client to provide credentials",
        403: "the server does not allow access to the requested resource",
        404: "the server could not find the requested resource",
        405: "the server does not allow this method on the requested resource",
        409: "the server reported a conflict",
        415: (
            "the server was unable to respond with a content type that the client "
            "supports"
        ),
        422: "the server rejected our request due to an error in our request",
        429: (
            "the server has received too many requests and has asked us to try again "
            "later"
        ),
        503: "the server is currently unable to handle the request",
        504: (
            "the server was unable to return a response in the time allotted, but may "
            "still be processing the request"
        ),
    }
    if status in texts:
        return texts[status]
    if status >= 500:
        snippet = data.decode(errors="replace")[:1024]
        return (
            f'an error on the server ("{snippet}") has prevented the request '
            "from succeeding"
        )
    return (
        f"the server responded with the status code {status} but did not return "
        "more information"
    )
