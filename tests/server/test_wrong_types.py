"""Reviews with wrongly typed fields: every response is a 4xx or an AdmissionReview.

A field of the request or of its object is replaced by a JSON value of any
type, and the review goes through the real app, pipeline and templates.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client import ApiClient, Configuration

from tests.templates.builders import template
from webhook.admission.injection import InjectionOptions
from webhook.admission.lookups import SecretLookup
from webhook.server import logs
from webhook.server.app import create_app
from webhook.server.metrics import new_metrics
from webhook.server.mutate import MutateEndpoint
from webhook.server.pipeline import ReviewPipeline
from webhook.server.readiness import Readiness
from webhook.server.templates_route import templates_router
from webhook.templates.service import TemplateService

PREFIX = "runai-secrets-webhook"

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


async def resolve(
    namespace: str, name: str, keys: object, deadline: float
) -> SecretLookup:
    return SecretLookup.found({"k"}) if name == "db" else SecretLookup.not_found()


def deployment_review() -> dict[str, Any]:
    container = {
        "name": "app",
        "image": "busybox",
        "env": [{"name": "A", "value": "SECRET:db,k"}],
    }
    pod_template = {
        "metadata": {"annotations": {f"{PREFIX}/env": "B=SECRET:db,k"}},
        "spec": {"containers": [container]},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "annotations": {
                f"{PREFIX}/templates": "gpu",
                f"{PREFIX}/containers": "app",
            },
        },
        "spec": {"template": pod_template},
    }
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "namespace": "team-a",
        "operation": "UPDATE",
        "userInfo": {"username": "alice"},
        "object": deployment,
        "oldObject": copy.deepcopy(deployment),
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }


def field_paths(node: object, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """List the path of every value in `node`, containers included."""
    paths = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths.extend(field_paths(value, (*path, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths.extend(field_paths(value, (*path, index)))
    return paths


REQUEST_PATHS = [
    ("request", *path) for path in field_paths(deployment_review()["request"])
]


def replace_at(review: dict[str, Any], path: tuple[Any, ...], value: object) -> None:
    node: Any = review
    for step in path[:-1]:
        node = node[step]
    if isinstance(node, dict) and not isinstance(path[-1], str):
        # An earlier replacement put an object where a list was, and JSON
        # object keys are strings.
        raise TypeError(f"no index {path[-1]} in an object")
    node[path[-1]] = value


def build_app() -> Any:
    configuration = Configuration()
    # Never contacted: the service's watch is not started.
    configuration.host = "https://127.0.0.1:9"
    metrics = new_metrics()
    templates = TemplateService(ApiClient(configuration), "runai", metrics.registry)
    templates.store.replace_all(
        [template("template-admin", "LOG=info"), template("gpu", "G=1")]
    )
    pipeline = ReviewPipeline(InjectionOptions(), [resolve], templates)
    readiness = Readiness(source_answered=lambda: True, certificate_ready=lambda: True)
    router = templates_router("runai")
    return create_app(MutateEndpoint(pipeline, metrics), readiness, metrics, [router])


APP = build_app()


def post(path: str, review: dict[str, Any]) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=APP, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test"
        ) as client:
            return await client.post(
                path,
                content=orjson.dumps(review),
                headers={"content-type": "application/json"},
            )

    return asyncio.run(call())


def check_answer(response: httpx.Response, review: dict[str, Any]) -> None:
    if response.status_code != 200:
        assert 400 <= response.status_code < 500, response.text
        assert "message" in response.json()
        return
    answer = response.json()
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == review["request"]["uid"]
    status = answer["response"].get("status", {})
    assert "Traceback" not in status.get("message", "")
    # An internal error is a bug this test is here to find.
    assert status.get("code") != 500 or "internal error" not in status["message"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    paths=st.lists(st.sampled_from(REQUEST_PATHS), min_size=1, max_size=3),
    values=st.lists(JSON_VALUES, min_size=3, max_size=3),
    route=st.sampled_from(["/mutate", "/validate-template"]),
)
def test_wrong_types_answered_as_review(
    paths: list[tuple[Any, ...]], values: list[object], route: str
) -> None:
    review = deployment_review()
    for path, value in zip(paths, values, strict=False):
        try:
            replace_at(review, path, value)
        except (KeyError, IndexError, TypeError):
            # An earlier replacement removed this path.
            continue

    response = post(route, review)

    check_answer(response, review)


def test_metadata_string_rejected() -> None:
    for metadata in ("x", [1]):
        review = deployment_review()
        review["request"]["object"]["metadata"] = metadata

        for route in ("/mutate", "/validate-template"):
            response = post(route, review)

            assert response.status_code == 400
            assert "request.object.metadata" in response.json()["message"]


def test_log_field_crash_answered_with_uid(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: object) -> dict[str, object]:
        raise TypeError("unexpected field type")

    monkeypatch.setattr(logs, "review_fields", broken)
    caplog.set_level("DEBUG")
    for route in ("/mutate", "/validate-template"):
        review = deployment_review()
        uid = review["request"]["uid"]

        response = post(route, review)

        assert response.status_code == 200
        answer = response.json()["response"]
        assert answer["uid"] == uid
        assert "status" not in answer or "Traceback" not in answer["status"]["message"]
        lines = [r for r in caplog.records if getattr(r, "uid", None) == uid]
        assert lines, f"no log line of {route} carries the uid"
