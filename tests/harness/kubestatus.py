"""`Status` error bodies worded as kube-apiserver words them.

The wording follows k8s.io/apimachinery/pkg/api/errors (Kubernetes 1.30)
so that clients parsing `reason`, `code` and `details` see what a real
cluster sends. Resources in a named API group are written `plural.group`
in messages, as `GroupResource.String()` does.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API failure that the fake server sends as a `Status` body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:
        # An unknown reason is the empty string, which Go's omitempty leaves out.
        body["reason"] = reason
    body["code"] = code
    if details is not None:
        body["details"] = details
    return body


def success_body(name: str, group: str, plural: str, uid: str) -> dict[str, Any]:
    """Return the body of a DELETE that does not return the deleted object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": _details(name, group, plural) | {"uid": uid},
    }


def qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def _details(name: str, group: str, plural: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def not_found(group: str, plural: str, name: str) -> ApiError:
    message = f'{qualified(group, plural)} "{name}" not found'
    return ApiError(404, "NotFound", message, _details(name, group, plural))


def already_exists(group: str, plural: str, name: str) -> ApiError:
    message = f'{qualified(group, plural)} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, _details(name, group, plural))


def forbidden(
    user: str, verb: str, group: str, plural: str, namespace: str, name: str
) -> ApiError:
    """Build an RBAC denial; list and watch denials name no object."""
    subject = (
        f'{qualified(group, plural)} "{name}"' if name else qualified(group, plural)
    )
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    reason = (
        f'User "{user}" cannot {verb} resource "{plural}" '
        f'in API group "{group}" {scope}'
    )
    return forbidden_because(group, plural, name, f"{subject} is forbidden: {reason}")


def forbidden_because(group: str, plural: str, name: str, message: str) -> ApiError:
    return ApiError(403, "Forbidden", message, _details(name, group, plural))


def conflict(group: str, plural: str, name: str, detail: str) -> ApiError:
    subject = f'{qualified(group, plural)} "{name}"'
    message = f"Operation cannot be fulfilled on {subject}: {detail}"
    return ApiError(409, "Conflict", message, _details(name, group, plural))


MODIFIED = (
    "the object has been modified; please apply your changes to the latest version "
    "and try again"
)


def invalid(
    kind: str, group: str, name: str, causes: list[tuple[str, str]]
) -> ApiError:
    """Build a 422 from `(field, message)` pairs.

    Unlike other errors, `details.kind` is the Kind here, not the plural.
    """
    texts = ", ".join(f"{field}: {text}" for field, text in causes)
    if len(causes) > 1:
        # An aggregate of several field errors prints inside brackets.
        texts = f"[{texts}]"
    qualified_kind = f"{kind}.{group}" if group else kind
    message = f'{qualified_kind} "{name}" is invalid: {texts}'
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [
        {"reason": "FieldValueInvalid", "message": text, "field": field}
        for field, text in causes
    ]
    return ApiError(422, "Invalid", message, details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def internal_error(message: str) -> ApiError:
    details = {"causes": [{"message": message}]}
    return ApiError(
        500, "InternalError", f"Internal error occurred: {message}", details
    )


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": retry_after},
        {"Retry-After": str(retry_after)},
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def unsupported_media_type(content_type: str) -> ApiError:
    message = (
        "the body of the request was in an unknown format - accepted media types "
        "include: application/json-patch+json, application/merge-patch+json, "
        f"application/strategic-merge-patch+json; got {content_type!r}"
    )
    return ApiError(415, "UnsupportedMediaType", message)


def method_not_allowed(method: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource: {method}",
    )


def by_code(code: int, message: str) -> ApiError:
    """Build a generic Status for a fault rule's fixed status code."""
    reasons = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        410: "Expired",
        422: "Invalid",
        429: "TooManyRequests",
        500: "InternalError",
        503: "ServiceUnavailable",
        504: "Timeout",
    }
    return ApiError(code, reasons.get(code, "Unknown"), message)
