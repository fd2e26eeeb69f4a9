"""AdmissionReview requests and responses as kube-apiserver builds and checks them.

Sources: k8s.io/api admission/v1 types, and CreateAdmissionObjects and
VerifyAdmissionResponse in k8s.io/apiserver/pkg/admission/plugin/webhook/request
(Kubernetes 1.30).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from tests.harness import kubestatus

Object = dict[str, Any]
KNOWN_REVIEW_VERSIONS = ("v1", "v1beta1")
OPTIONS_KIND = {
    "CREATE": "CreateOptions",
    "UPDATE": "UpdateOptions",
    "DELETE": "DeleteOptions",
}


class WebhookCallFailed(Exception):
    """A "failed calling webhook" error; `failurePolicy` decides what it does."""


def review_version(webhook: Object) -> str:
    """Pick the first of `admissionReviewVersions` that kube-apiserver supports."""
    for version in webhook.get("admissionReviewVersions") or []:
        if version in KNOWN_REVIEW_VERSIONS:
            return str(version)
    raise WebhookCallFailed(
        "could not create admission objects: "
        "webhook does not accept v1 or v1beta1 AdmissionReview"
    )


def build_request(base: Object, obj: Object | None, old: Object | None) -> Object:
    """Return a request with a fresh uid and the fields in `base`."""
    request: Object = {"uid": str(uuid.uuid4()), **base}
    request["object"] = obj
    request["oldObject"] = old
    return request


def base_request(
    *,
    kind: tuple[str, str, str],
    resource: tuple[str, str, str],
    sub_resource: str,
    name: str,
    namespace: str,
    operation: str,
    user_info: Object,
    dry_run: bool,
    options: Object | None,
) -> Object:
    """Build the fields of an AdmissionRequest that stay the same for every webhook."""
    group, version, kind_name = kind
    kind_field = {"group": group, "version": version, "kind": kind_name}
    resource_group, resource_version, resource_name = resource
    resource_field = {
        "group": resource_group,
        "version": resource_version,
        "resource": resource_name,
    }
    base: Object = {"kind": kind_field, "resource": resource_field}
    if sub_resource:
        base["subResource"] = sub_resource
    base["requestKind"] = dict(kind_field)
    base["requestResource"] = dict(resource_field)
    if sub_resource:
        base["requestSubResource"] = sub_resource
    # name and namespace are omitted when empty (omitempty in k8s.io/api).
    if name:
        base["name"] = name
    if namespace:
        base["namespace"] = namespace
    base["operation"] = operation
    base["userInfo"] = user_info
    base["dryRun"] = dry_run
    if options is None and operation in OPTIONS_KIND:
        options = {"kind": OPTIONS_KIND[operation], "apiVersion": "meta.k8s.io/v1"}
    base["options"] = options
    return base


def envelope(version: str, request: Object) -> Object:
    return {
        "kind": "AdmissionReview",
        "apiVersion": f"admission.k8s.io/{version}",
        "request": request,
    }


@dataclass
class Response:
    """The checked `response` of a webhook's AdmissionReview."""

    allowed: bool
    status: Object
    patch: bytes  # decoded from base64, still JSON text
    patch_type: str
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)


def parse_response(body: bytes, version: str, uid: str, mutating: bool) -> Response:
    """Decode and verify a response in kube-apiserver's order.

    Raise WebhookCallFailed for a response that kube-apiserver rejects.

    Decoding comes first, so a wrong type or bad base64 anywhere fails
    before the uid, apiVersion and patch fields are checked.
    """
    try:
        review = json.loads(body)
    except ValueError as error:
        raise WebhookCallFailed(
            f"failed to call webhook: invalid JSON in response body: {error}"
        ) from None
    if not isinstance(review, dict):
        raise WebhookCallFailed(
            "failed to call webhook: response body is not a JSON object"
        )
    response = review.get("response")
    if response is not None and not isinstance(response, dict):
        raise WebhookCallFailed(
            "failed to call webhook: json: cannot unmarshal response"
        )
    fields = response or {}
    decoded = Response(
        allowed=_typed(fields, "allowed", bool) or False,
        status=_typed(fields, "status", dict) or {},
        patch=_decode_base64(_typed(fields, "patch", str)),
        patch_type=_typed(fields, "patchType", str) or "",
        warnings=_typed(fields, "warnings", list) or [],
        audit_annotations=_typed(fields, "auditAnnotations", dict) or {},
    )
    _check_status(decoded.status)
    _check_strings("warnings", decoded.warnings)
    _check_strings("auditAnnotations", list(decoded.audit_annotations.values()))
    decoded.warnings = [text or "" for text in decoded.warnings]
    decoded.audit_annotations = {
        key: value or "" for key, value in decoded.audit_annotations.items()
    }

    if response is None:
        raise _invalid("webhook response was absent")
    if version != "v1":
        # v1beta1 responses are checked for none of uid, kind and patchType,
        # and kube-apiserver applies any patch from a mutating one as a JSON patch.
        decoded.patch_type = "JSONPatch" if mutating and decoded.patch else ""
        decoded.patch = decoded.patch if mutating else b""
        return decoded
    _verify_v1(review, response, uid)
    _verify_patch_fields(decoded.patch, fields.get("patchType"), mutating)
    return decoded


def _typed(response: Object, key: str, expected: type) -> Any:
    value = response.get(key)
    if value is not None and not isinstance(value, expected):
        raise WebhookCallFailed(
            "failed to call webhook: json: cannot unmarshal "
            f"{type(value).__name__} into Go struct field "
            f"AdmissionResponse.response.{key} of type {expected.__name__}"
        )
    return value


# metav1.Status fields other than `code`, with the Go type each decodes into.
_STATUS_FIELDS = {
    "status": (str, "string"),
    "message": (str, "string"),
    "reason": (str, "v1.StatusReason"),
    "details": (dict, "v1.StatusDetails"),
}
_INT32 = range(-(2**31), 2**31)


def _check_status(status: Object) -> None:
    """Reject a `status` that does not decode into metav1.Status, as Go's JSON does.

    `code` is an int32: a string, a fraction, a float such as 403.0 or a
    value out of range fails the call, while null decodes to 0.
    """
    code = status.get("code")
    is_int = isinstance(code, int) and not isinstance(code, bool)
    if code is not None and not (is_int and code in _INT32):
        raise _cannot_unmarshal(_go_value(code), "code", "int32")
    for key, (expected, go_type) in _STATUS_FIELDS.items():
        value = status.get(key)
        if value is not None and not isinstance(value, expected):
            raise _cannot_unmarshal(_json_kind(value), key, go_type)


def _cannot_unmarshal(value: str, key: str, go_type: str) -> WebhookCallFailed:
    return WebhookCallFailed(
        f"failed to call webhook: json: cannot unmarshal {value} into Go struct "
        f"field Status.response.status.{key} of type {go_type}"
    )


def _go_value(value: Any) -> str:
    """Name a value that fails to decode into an integer, as encoding/json does.

    Go quotes the number's literal text; json.dumps gives the same text for
    plain integers and decimals but not for exponents such as 4e2.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"number {json.dumps(value)}"
    return _json_kind(value)


def _check_strings(key: str, values: list[Any]) -> None:
    """Reject a non-string item, as decoding into a Go []string or map does.

    A null item decodes to "" in Go, so it passes.
    """
    for value in values:
        if value is not None and not isinstance(value, str):
            raise WebhookCallFailed(
                f"failed to call webhook: json: cannot unmarshal {_json_kind(value)} "
                f"into Go struct field AdmissionResponse.response.{key} of type string"
            )


def _json_kind(value: Any) -> str:
    """Name a JSON value's kind the way Go's encoding/json errors do."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _decode_base64(value: str | None) -> bytes:
    """Decode `patch` with padded standard base64, as Go decodes JSON []byte."""
    if not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise WebhookCallFailed(
            f"failed to call webhook: illegal base64 data in response.patch: {error}"
        ) from None


def _invalid(reason: str) -> WebhookCallFailed:
    return WebhookCallFailed(f"received invalid webhook response: {reason}")


def _gvk(review: Object) -> str:
    api_version = str(review.get("apiVersion") or "")
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={review.get('kind') or ''}"


def _verify_v1(review: Object, response: Object, uid: str) -> None:
    got = response.get("uid") or ""
    if got != uid:
        raise _invalid(f'expected response.uid="{uid}", got "{got}"')
    if (review.get("apiVersion"), review.get("kind")) != (
        "admission.k8s.io/v1",
        "AdmissionReview",
    ):
        raise _invalid(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, "
            f"got {_gvk(review)}"
        )


def _verify_patch_fields(patch: bytes, patch_type: str | None, mutating: bool) -> None:
    """Check `patch` and `patchType` of a v1 response.

    `patch_type` is None only when the field is absent or null: `patchType`
    is a pointer in k8s.io/api, so an empty string counts as set.
    """
    if not mutating:
        if patch:
            raise _invalid("validating webhook may not return response.patch")
        if patch_type is not None:
            raise _invalid("validating webhook may not return response.patchType")
        return
    if patch and patch_type is None:
        raise _invalid("webhook returned response.patch but not response.patchType")
    if not patch and patch_type is not None:
        raise _invalid("webhook returned response.patchType but not response.patch")
    if patch_type == "":
        raise _invalid('webhook returned invalid response.patchType of ""')


def decode_patch(patch: bytes, patch_type: str) -> list[Object]:
    """Decode a JSON patch; the apiserver does this only for allowed responses."""
    try:
        operations = json.loads(patch)
    except ValueError as error:
        raise WebhookCallFailed(
            f"received undecodable patch in webhook response: {error}"
        ) from None
    if operations is None:
        # Go decodes `null` into an empty jsonpatch.Patch, which changes nothing.
        return []
    if not isinstance(operations, list) or not all(
        isinstance(op, dict) for op in operations
    ):
        raise WebhookCallFailed(
            "received undecodable patch in webhook response: json: cannot unmarshal "
            f"{type(operations).__name__} into Go value of type jsonpatch.Patch"
        )
    if patch_type != "JSONPatch" and operations:
        raise WebhookCallFailed(f'unsupported patch type "{patch_type}"')
    return operations


def apply_patch(obj: Object, operations: list[Object]) -> Object:
    """Apply a JSON patch; a failure is 500 InternalError regardless of `failurePolicy`.

    NOTE: python-jsonpatch replaces evanphx/json-patch v4 here. Both reject
    `add` under a missing parent and `remove` or `replace` of a missing path;
    their error texts differ.
    """
    try:
        patched: Object = jsonpatch.apply_patch(obj, _with_null_values(operations))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise kubestatus.internal_error(f"{_operation_word(error)}{error}") from None
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise kubestatus.internal_error(
            f"invalid JSON patch operation: {error}"
        ) from None
    return patched


def _operation_word(error: Exception) -> str:
    text = str(error)
    return "" if "operation" in text else "patch operation does not apply: "


def _with_null_values(operations: list[Object]) -> list[Object]:
    """Give `add` and `replace` without `value` a null one, as json-patch v4 does.

    python-jsonpatch rejects such an operation, but v4 (Operation.value in
    gopkg.in/evanphx/json-patch.v4) stores a nil node that encodes as null.
    """
    return [
        {**operation, "value": None}
        if operation.get("op") in ("add", "replace") and "value" not in operation
        else operation
        for operation in operations
    ]
