"""The check of template ConfigMaps when saved, as a function and as a route."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.templates.builders import (
    TEMPLATE_NAMESPACE,
    request_for,
    review_for,
    template_configmap,
)
from webhook.admission.reviews import Request
from webhook.server.templates_route import templates_router
from webhook.templates.validating import review_template


def configmap_request(
    configmap: dict[str, Any], operation: str = "CREATE", namespace: str = "runai"
) -> Request:
    return request_for(
        configmap, operation=operation, kind="ConfigMap", namespace=namespace
    )


def test_valid_template_is_allowed() -> None:
    configmap = template_configmap(
        "gpu", ["LOG_LEVEL=debug", "MYPASSWORD=SECRET:my-secret,cred-pass"]
    )

    decision = review_template(configmap_request(configmap), TEMPLATE_NAMESPACE)

    assert decision.allowed


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("environments: [BROKEN]\n", "line 1: entry 'BROKEN' has no '='"),
        (
            "environments:\n- X=SECRET:only-a-name\n",
            "line 2: entry 'X=SECRET:only-a-name'",
        ),
        ("environments:\n- 9LIVES=x\n", "line 2: invalid env var name '9LIVES'"),
        ("environments:\n- ..DATA=x\n", "line 2: invalid env var name '..DATA'"),
        ("environments:\n- A=1\n  B: [\n", "YAML does not parse"),
        ("environments:\n  A: 1\n", "line 2: 'environments' must be a list"),
        (
            "environments:\n- 5\n",
            "line 2: an 'environments' entry must be a NAME=VALUE string",
        ),
    ],
)
def test_invalid_template_is_denied_naming_entry(values: str, expected: str) -> None:
    configmap = template_configmap("gpu", values=values)

    decision = review_template(configmap_request(configmap), TEMPLATE_NAMESPACE)

    assert not decision.allowed
    assert decision.code == 422
    assert "ConfigMap runai/gpu is not a valid Run:AI template" in decision.message
    assert expected in decision.message


@pytest.mark.parametrize(
    "case", ["no label", "label false", "other namespace", "delete", "secret"]
)
def test_non_templates_are_allowed(case: str) -> None:
    configmap = template_configmap("gpu", values="environments: [BROKEN]\n")
    request = configmap_request(configmap)
    if case == "no label":
        del configmap["metadata"]["labels"]
    elif case == "label false":
        configmap["metadata"]["labels"]["runai/template"] = "false"
    elif case == "other namespace":
        request = configmap_request(configmap, namespace="team-a")
    elif case == "delete":
        request = configmap_request(configmap, operation="DELETE")
        request["oldObject"], request["object"] = request["object"], None
    else:
        request = request_for(configmap, kind="Secret", namespace="runai")

    assert review_template(request, TEMPLATE_NAMESPACE).allowed


def test_update_to_invalid_is_denied() -> None:
    old = template_configmap("template-admin", ["A=1"])
    new = copy.deepcopy(old)
    new["data"]["values"] = "environments:\n- A=1\n- B\n"
    request = configmap_request(new, operation="UPDATE")
    request["oldObject"] = old

    decision = review_template(request, TEMPLATE_NAMESPACE)

    assert not decision.allowed
    assert "line 3: entry 'B' has no '='" in decision.message


async def post_review(
    body: bytes, content_type: str = "application/json"
) -> httpx.Response:
    app = FastAPI()
    app.include_router(templates_router(TEMPLATE_NAMESPACE))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(
            "/validate-template?timeout=10s",
            content=body,
            headers={"content-type": content_type},
        )


async def test_route_answers_with_request_uid() -> None:
    request = configmap_request(
        template_configmap("gpu", values="environments: [BROKEN]\n")
    )

    response = await post_review(orjson.dumps(review_for(request)))

    assert response.status_code == 200
    review = response.json()
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert review["kind"] == "AdmissionReview"
    assert review["response"]["uid"] == request["uid"]
    assert review["response"]["allowed"] is False
    assert review["response"]["status"]["code"] == 422
    assert "'BROKEN'" in review["response"]["status"]["message"]
    assert "patch" not in review["response"]


async def test_route_allows_valid_template() -> None:
    request = configmap_request(template_configmap("gpu", ["OPTS=a=b"]))

    response = await post_review(orjson.dumps(review_for(request)))

    assert response.json()["response"] == {"uid": request["uid"], "allowed": True}


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "application/json", 400),
        (b"{not json", "application/json", 400),
        (b"{}", "text/plain", 415),
        (b'{"apiVersion": "v1", "kind": "Pod"}', "application/json", 400),
    ],
)
async def test_route_rejects_malformed_calls(
    body: bytes, content_type: str, status: int
) -> None:
    response = await post_review(body, content_type)

    assert response.status_code == status
    assert response.json()["message"]


def test_lower_case_prefix_is_allowed_with_warning() -> None:
    configmap = template_configmap(
        "gpu", ["LOG_LEVEL=debug", "TOKEN=secret:api-token,value", "A=Secret:x,y"]
    )

    decision = review_template(configmap_request(configmap), TEMPLATE_NAMESPACE)

    assert decision.allowed
    assert len(decision.warnings) == 2
    first, second = decision.warnings
    assert first.startswith("data.values line 3: env var 'TOKEN' starts with 'secret:'")
    assert "Write SECRET: in upper case" in first
    # Only the prefix is quoted, because the rest of the value may be a literal.
    assert "api-token" not in first
    assert second.startswith("data.values line 4: env var 'A' starts with 'Secret:'")


def test_misspelled_prefix_is_allowed_with_warning() -> None:
    configmap = template_configmap(
        "gpu", ["TOKEN=SECRETS:api-token,value", "B=Secretary"]
    )

    decision = review_template(configmap_request(configmap), TEMPLATE_NAMESPACE)

    assert decision.allowed
    (warning,) = decision.warnings
    assert warning.startswith(
        "data.values line 2: env var 'TOKEN' starts with 'SECRETS:'"
    )
    assert "Start the value with SECRET: to refer to a secret" in warning
    assert "api-token" not in warning


def test_valid_template_has_no_warning() -> None:
    configmap = template_configmap("gpu", ["MYPASSWORD=SECRET:my-secret,cred-pass"])

    decision = review_template(configmap_request(configmap), TEMPLATE_NAMESPACE)

    assert decision.warnings == ()
