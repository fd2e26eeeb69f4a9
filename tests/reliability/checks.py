"""Checks that a reply to any AdmissionReview call is one kube-apiserver accepts."""

from __future__ import annotations

import base64
import copy
from typing import Any

import jsonpatch
import orjson

from tests.reliability.calls import Reply

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")


def request_uid(document: Any) -> str | None:
    """Return the request's uid if the document carries a usable one."""
    if not isinstance(document, dict):
        return None
    request = document.get("request")
    uid = request.get("uid") if isinstance(request, dict) else None
    return uid if isinstance(uid, str) and uid else None


def check_reply(document: Any, reply: Reply) -> None:
    """Assert that `reply` is a 4xx error or a valid response to `document`."""
    assert reply.status != 0, f"no answer: {reply.error}"
    assert reply.status < 500, f"HTTP {reply.status}: {reply.body[:300]!r}"
    if reply.status != 200:
        assert 400 <= reply.status < 500, reply.status
        error = orjson.loads(reply.body)
        assert isinstance(error["message"], str) and error["message"], error
        return
    check_review(document, orjson.loads(reply.body))


def check_review(document: Any, answer: Any) -> None:
    """Assert that `answer` is a well-formed response to `document`."""
    assert answer["apiVersion"] == document["apiVersion"]
    assert answer["apiVersion"] in API_VERSIONS
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == document["request"]["uid"]
    assert isinstance(response["allowed"], bool)

    if not response["allowed"]:
        status = response["status"]
        assert 400 <= status["code"] < 600
        assert status["message"], "a denial must say why"
        # A crash in the logic is denied with this message: a bug here.
        assert "internal error" not in status["message"], status["message"]
        assert "patch" not in response
    assert ("patch" in response) == ("patchType" in response)
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
        check_patch_applies(document["request"]["object"], response["patch"])
    for warning in response.get("warnings", []):
        assert isinstance(warning, str)


def check_patch_applies(obj: Any, encoded: str) -> None:
    operations = orjson.loads(base64.b64decode(encoded, validate=True))
    assert isinstance(operations, list) and operations
    patched = jsonpatch.apply_patch(copy.deepcopy(obj), operations)
    assert isinstance(patched, dict)
