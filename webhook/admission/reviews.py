"""The AdmissionReview wire format: parse a request, encode a response.

The TypedDicts keep Kubernetes' camelCase keys so that code reads like the
API reference (admission.k8s.io/v1 `AdmissionReview`). `v1beta1` has the same
shape and is still sent by kube-apiserver when a configuration lists it first.
"""

import base64
from typing import Any, Literal, NotRequired, TypedDict

import orjson

from webhook.admission.decisions import Decision
from webhook.admission.errors import MalformedReview

API_VERSIONS = frozenset({"admission.k8s.io/v1", "admission.k8s.io/v1beta1"})
REVIEW_KIND = "AdmissionReview"

# Largest request body accepted, in bytes. kube-apiserver rejects request
# bodies over 3 MiB (MaxRequestBodyBytes in k8s.io/apiserver
# pkg/server/config.go), so an object and the old object in one review take
# at most 2 x 3 MiB. 1 MiB more covers the envelope, userInfo and options.
MAX_REVIEW_BYTES = 7 * 1024 * 1024

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
JsonObject = dict[str, Any]


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class GroupVersionResource(TypedDict):
    group: str
    version: str
    resource: str


class UserInfo(TypedDict, total=False):
    username: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]


class Request(TypedDict):
    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    subResource: NotRequired[str]
    requestKind: NotRequired[GroupVersionKind]
    requestResource: NotRequired[GroupVersionResource]
    requestSubResource: NotRequired[str]
    name: NotRequired[str]
    namespace: NotRequired[str]
    operation: Operation
    userInfo: NotRequired[UserInfo]
    object: NotRequired[JsonObject | None]
    oldObject: NotRequired[JsonObject | None]
    dryRun: NotRequired[bool]
    options: NotRequired[JsonObject | None]


class Review(TypedDict):
    apiVersion: str
    kind: str
    request: Request


class Status(TypedDict, total=False):
    code: int
    message: str


class Response(TypedDict):
    uid: str
    allowed: bool
    status: NotRequired[Status]
    patch: NotRequired[str]
    patchType: NotRequired[Literal["JSONPatch"]]
    warnings: NotRequired[list[str]]
    auditAnnotations: NotRequired[dict[str, str]]


class ResponseReview(TypedDict):
    apiVersion: str
    kind: str
    response: Response


# A wrong envelope field is quoted in the 400 message and its log line. A
# hostile caller could send megabytes there, so the quote is cut.
MAX_SHOWN_CHARS = 80

_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})


def parse_review(body: bytes, content_type: str = "application/json") -> Review:
    """Parse and check an AdmissionReview request body.

    Checks run in the order of a careful webhook server: empty body, size,
    content type, JSON, then the envelope fields the logic relies on.
    Raises `MalformedReview` with the HTTP status to respond with.
    """
    if not body:
        raise MalformedReview(400, "request body is empty. Send an AdmissionReview.")
    if len(body) > MAX_REVIEW_BYTES:
        raise MalformedReview(
            413,
            f"request body has {len(body)} bytes, over the limit of "
            f"{MAX_REVIEW_BYTES} bytes for an AdmissionReview",
        )
    if not is_json(content_type):
        raise MalformedReview(
            415,
            f"content type {content_type!r} is not supported. Send application/json.",
        )

    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedReview(400, f"request body is not valid JSON: {error}") from None
    return _check_envelope(document)


def is_json(content_type: str) -> bool:
    """Tell whether a Content-Type header names JSON, parameters aside."""
    # kube-apiserver sends exactly this, so the usual call returns here.
    if content_type == "application/json":
        return True
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _check_envelope(document: object) -> Review:
    if not isinstance(document, dict):
        raise MalformedReview(
            400, "request body is not a JSON object. Send an AdmissionReview."
        )
    api_version = document.get("apiVersion")
    # A list or object here is unhashable, so the type is checked first.
    if not isinstance(api_version, str) or api_version not in API_VERSIONS:
        raise MalformedReview(
            400,
            f"apiVersion {_shown(api_version)} is not supported. Use one of "
            f"{', '.join(sorted(API_VERSIONS))}.",
        )
    if document.get("kind") != REVIEW_KIND:
        raise MalformedReview(
            400, f"kind {_shown(document.get('kind'))} is not {REVIEW_KIND!r}"
        )

    request = document.get("request")
    if not isinstance(request, dict):
        raise MalformedReview(400, "AdmissionReview has no request object")
    _check_request(request)
    return document  # type: ignore[return-value]


def _shown(value: object) -> str:
    """Quote a field value for an error message, cut so a huge value stays short."""
    text = repr(value)
    if len(text) > MAX_SHOWN_CHARS:
        return text[:MAX_SHOWN_CHARS] + "..."
    return text


def _check_request(request: JsonObject) -> None:
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReview(400, "AdmissionReview request has no uid")
    operation = request.get("operation")
    if not isinstance(operation, str) or operation not in _OPERATIONS:
        raise MalformedReview(
            400,
            f"request.operation {_shown(operation)} is not a known operation",
        )
    kind = request.get("kind")
    if not (
        isinstance(kind, dict)
        and isinstance(kind.get("group"), str)
        and isinstance(kind.get("version"), str)
        and isinstance(kind.get("kind"), str)
    ):
        raise MalformedReview(
            400, "request.kind must hold string group, version and kind"
        )
    for field in ("object", "oldObject"):
        obj = request.get(field)
        if not isinstance(obj, dict | None):
            raise MalformedReview(400, f"request.{field} must be a JSON object or null")
        # Every Kubernetes object has metadata as an object; kube-apiserver
        # never sends another type, so any other value is a forged review.
        if obj is not None and not isinstance(obj.get("metadata"), dict | None):
            raise MalformedReview(
                400,
                f"request.{field}.metadata {_shown(obj['metadata'])} is not a JSON "
                "object. Send the object as kube-apiserver stores it.",
            )
    namespace = request.get("namespace")
    if not isinstance(namespace, str | None):
        raise MalformedReview(400, "request.namespace must be a string")


def build_response(review: Review, decision: Decision) -> ResponseReview:
    """Build the response envelope, echoing the request's apiVersion, kind and uid."""
    response: Response = {"uid": review["request"]["uid"], "allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {"code": decision.code, "message": decision.message}
    if decision.patch:
        # Standard padded base64: kube-apiserver decodes the patch as a []byte.
        # orjson writes a tuple as a JSON array, so the patch is not copied.
        response["patch"] = base64.b64encode(orjson.dumps(decision.patch)).decode(
            "ascii"
        )
        response["patchType"] = "JSONPatch"
    if decision.warnings:
        response["warnings"] = list(decision.warnings)
    if decision.audit_annotations:
        response["auditAnnotations"] = dict(decision.audit_annotations)
    return {
        "apiVersion": review["apiVersion"],
        "kind": review["kind"],
        "response": response,
    }


def encode_response(review: Review, decision: Decision) -> bytes:
    """Serialise the response envelope for `decision` to JSON bytes."""
    return orjson.dumps(build_response(review, decision))
