import base64

import orjson
import pytest

from webhook.admission import (
    MAX_REVIEW_BYTES,
    MalformedReview,
    allow,
    deny,
    encode_response,
    parse_review,
)
from webhook.admission.reviews import build_response

from .builders import pod, review


def envelope(**request: object) -> bytes:
    base: dict[str, object] = {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "object": {},
    }
    base.update(request)
    return orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": base,
        }
    )


def malformed(body: bytes, content_type: str = "application/json") -> MalformedReview:
    with pytest.raises(MalformedReview) as caught:
        parse_review(body, content_type)
    return caught.value


def test_parse_accepts_v1_and_v1beta1() -> None:
    for version in ("admission.k8s.io/v1", "admission.k8s.io/v1beta1"):
        parsed = review(pod(), api_version=version)
        assert parsed["apiVersion"] == version
        assert parsed["request"]["operation"] == "CREATE"


def test_parse_accepts_json_with_charset() -> None:
    parsed = parse_review(envelope(), "application/json; charset=utf-8")
    assert parsed["request"]["uid"] == "u-1"


def test_empty_body_is_400() -> None:
    error = malformed(b"")
    assert error.status == 400
    assert str(error) == "request body is empty. Send an AdmissionReview."


def test_body_over_limit_is_413() -> None:
    error = malformed(b" " * (MAX_REVIEW_BYTES + 1))
    assert error.status == 413
    assert str(error) == (
        f"request body has {MAX_REVIEW_BYTES + 1} bytes, over the limit of "
        f"{MAX_REVIEW_BYTES} bytes for an AdmissionReview"
    )


def test_body_at_limit_is_parsed() -> None:
    body = envelope()
    padded = body + b" " * (MAX_REVIEW_BYTES - len(body))
    assert parse_review(padded)["request"]["uid"] == "u-1"


def test_wrong_content_type_is_415() -> None:
    error = malformed(envelope(), "text/plain")
    assert error.status == 415
    assert (
        str(error)
        == "content type 'text/plain' is not supported. Send application/json."
    )


def test_size_is_checked_before_content_type() -> None:
    assert malformed(b"x" * (MAX_REVIEW_BYTES + 1), "text/plain").status == 413


def test_invalid_json_is_400() -> None:
    error = malformed(b"{not json")
    assert error.status == 400
    assert str(error).startswith("request body is not valid JSON: ")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "request body is not a JSON object. Send an AdmissionReview."),
        (
            b'{"apiVersion": "v1", "kind": "AdmissionReview", "request": {}}',
            "apiVersion 'v1' is not supported. Use one of "
            "admission.k8s.io/v1, admission.k8s.io/v1beta1.",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "Pod", "request": {}}',
            "kind 'Pod' is not 'AdmissionReview'",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
            "AdmissionReview has no request object",
        ),
        (envelope(uid=""), "AdmissionReview request has no uid"),
        (
            envelope(operation="PATCH"),
            "request.operation 'PATCH' is not a known operation",
        ),
        (
            envelope(kind={"kind": "Pod"}),
            "request.kind must hold string group, version and kind",
        ),
        (envelope(object=[1]), "request.object must be a JSON object or null"),
        (envelope(oldObject="x"), "request.oldObject must be a JSON object or null"),
        (envelope(namespace=3), "request.namespace must be a string"),
    ],
)
def test_bad_envelope_is_400(body: bytes, message: str) -> None:
    error = malformed(body)
    assert error.status == 400
    assert str(error) == message


def test_allowed_response_echoes_envelope_without_patch_keys() -> None:
    for version in ("admission.k8s.io/v1", "admission.k8s.io/v1beta1"):
        rv = review(pod(), api_version=version, uid="abc-123")
        body = orjson.loads(encode_response(rv, allow()))
        assert body == {
            "apiVersion": version,
            "kind": "AdmissionReview",
            "response": {"uid": "abc-123", "allowed": True},
        }


def test_patch_is_padded_standard_base64_with_type() -> None:
    operation = {"op": "add", "path": "/metadata/annotations", "value": {"a": "?>"}}
    response = build_response(review(pod()), allow([operation]))["response"]
    assert response["patchType"] == "JSONPatch"
    assert len(response["patch"]) % 4 == 0
    assert orjson.loads(base64.b64decode(response["patch"], validate=True)) == [
        operation
    ]


def test_denial_carries_code_and_message() -> None:
    response = build_response(review(pod()), deny(403, "no"))["response"]
    assert response == {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "allowed": False,
        "status": {"code": 403, "message": "no"},
    }


def test_denial_code_is_at_least_400() -> None:
    assert deny(200, "no").code == 400


def test_warnings_and_audit_annotations_are_sent() -> None:
    decision = allow(
        warnings=["careful"], audit_annotations={"injected-env-count": "2"}
    )
    response = build_response(review(pod()), decision)["response"]
    assert response["warnings"] == ["careful"]
    assert response["auditAnnotations"] == {"injected-env-count": "2"}


def test_warnings_lose_control_characters() -> None:
    decision = allow(warnings=["line one\nline two\x85end\x7f", "tab\there"])
    assert decision.warnings == ("line one line two end", "tab here")
