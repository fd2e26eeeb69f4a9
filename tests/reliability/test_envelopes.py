"""Fields of the wrong type are malformed calls or ignored, never crashes.

Cases found by the generated reviews in test_fuzz_service.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from webhook.admission import MalformedReview, parse_review
from webhook.server.logs import review_fields


def envelope(**fields: Any) -> dict[str, Any]:
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": "team-a",
        "object": {"metadata": {}},
    }
    document = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }
    for field, value in fields.items():
        if field in document:
            document[field] = value
        else:
            request[field] = value
    return document


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("apiVersion", [], "apiVersion [] is not supported"),
        ("apiVersion", {"a": 1}, "apiVersion {'a': 1} is not supported"),
        ("kind", ["AdmissionReview"], "kind ['AdmissionReview'] is not"),
        ("operation", [], "request.operation [] is not a known operation"),
        ("operation", {}, "request.operation {} is not a known operation"),
    ],
)
def test_unhashable_field_is_malformed(field: str, value: Any, fragment: str) -> None:
    body = json.dumps(envelope(**{field: value})).encode()

    with pytest.raises(MalformedReview) as caught:
        parse_review(body, "application/json")

    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_huge_field_value_is_cut_in_message() -> None:
    body = json.dumps(envelope(apiVersion="v" * 100_000)).encode()

    with pytest.raises(MalformedReview) as caught:
        parse_review(body, "application/json")

    assert len(caught.value.message) < 300
    assert "is not supported" in caught.value.message


@pytest.mark.parametrize(
    "request_fields",
    [
        {"object": {"metadata": True}},
        {"object": {"metadata": "x"}},
        {"object": {"metadata": []}},
        {"object": [], "oldObject": {"metadata": None}},
        {"userInfo": "alice", "kind": ["Pod"]},
    ],
)
def test_log_fields_of_wrongly_typed_request(request_fields: dict[str, Any]) -> None:
    request = {"uid": "u-1", "operation": "CREATE", **request_fields}

    fields = review_fields(request)

    assert fields["uid"] == "u-1"
    assert fields["object_name"] == ""
    assert fields["user"] == ""
    assert fields["kind"] == ""
