"""The /mutate edge: malformed calls, internal errors, envelope echo, metrics."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from webhook.admission.decisions import Decision
from webhook.admission.quick import PodReview, QuickAnswer, decode_pod_review
from webhook.admission.reviews import MAX_REVIEW_BYTES, Review
from webhook.server.app import create_app
from webhook.server.logs import BoundLogger
from webhook.server.metrics import Metrics, new_metrics
from webhook.server.mutate import MutateEndpoint, QuickReviewer, Reviewer
from webhook.server.readiness import Readiness

JSON = {"Content-Type": "application/json"}


def pod_review(
    api_version: str = "admission.k8s.io/v1", **request: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "runai-team-a",
        "operation": "CREATE",
        "userInfo": {"username": "alice"},
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
        "oldObject": None,
        "dryRun": False,
    }
    body.update(request)
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": body}


async def allow_all(review: Review, deadline: float, log: BoundLogger) -> Decision:
    return Decision(allowed=True)


async def crash(review: Review, deadline: float, log: BoundLogger) -> Decision:
    raise RuntimeError("boom in the logic")


def client_for(
    reviewer: Reviewer, metrics: Metrics, quick: QuickReviewer | None = None
) -> httpx.AsyncClient:
    readiness = Readiness(source_answered=lambda: True, certificate_ready=lambda: True)
    endpoint = MutateEndpoint(reviewer, metrics, quick=quick)
    app = create_app(endpoint, readiness, metrics)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="https://webhook.test")


@pytest.fixture
def metrics() -> Metrics:
    return new_metrics()


@pytest.fixture
async def client(metrics: Metrics) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(allow_all, metrics) as http:
        yield http


@pytest.mark.parametrize(
    ("content", "headers", "status", "fragment"),
    [
        (b"", JSON, 400, "empty"),
        (b"{not json", JSON, 400, "not valid JSON"),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
            JSON,
            400,
            "no request",
        ),
        (
            orjson.dumps(pod_review()),
            {"Content-Type": "text/plain"},
            415,
            "application/json",
        ),
        (orjson.dumps(pod_review()), {}, 415, "content type"),
        (orjson.dumps(pod_review())[:-1] + b',"x":"\xff"}', JSON, 400, "not valid"),
    ],
)
@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
async def test_malformed_call_rejected(
    metrics: Metrics,
    content: bytes,
    headers: dict[str, str],
    status: int,
    fragment: str,
    quick: bool,
) -> None:
    """A malformed call is rejected, even where a quick path would respond.

    The quick path here responds to every review it is given, so it must not
    be given one that the full path rejects.
    """

    def answer_all(review: PodReview) -> QuickAnswer | None:
        return QuickAnswer(b'{"kind":"AdmissionReview"}', False)

    async with client_for(allow_all, metrics, answer_all if quick else None) as http:
        response = await http.post("/mutate", content=content, headers=headers)

    assert response.status_code == status
    assert fragment in response.json()["message"]


async def test_declared_oversize_body_rejected(client: httpx.AsyncClient) -> None:
    headers = {**JSON, "Content-Length": str(MAX_REVIEW_BYTES + 1)}

    response = await client.post("/mutate", content=b"{}", headers=headers)

    assert response.status_code == 413
    assert str(MAX_REVIEW_BYTES) in response.json()["message"]


async def test_streamed_oversize_body_rejected(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * (1024 * 1024)

    response = await client.post("/mutate", content=chunks(), headers=JSON)

    assert response.status_code == 413


async def test_internal_error_denies_with_uid(metrics: Metrics) -> None:
    review = pod_review()

    async with client_for(crash, metrics) as http:
        response = await http.post(
            "/mutate", content=orjson.dumps(review), headers=JSON
        )
    answer = response.json()["response"]

    assert response.status_code == 200
    assert answer["uid"] == review["request"]["uid"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 500
    assert review["request"]["uid"] in answer["status"]["message"]
    assert "Traceback" not in response.text
    assert "boom" not in response.text


@pytest.mark.parametrize(
    "api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]
)
async def test_envelope_echoed(client: httpx.AsyncClient, api_version: str) -> None:
    review = pod_review(api_version)

    response = await client.post("/mutate", content=orjson.dumps(review), headers=JSON)
    body = response.json()

    assert body["apiVersion"] == api_version
    assert body["kind"] == "AdmissionReview"
    assert body["response"] == {"uid": review["request"]["uid"], "allowed": True}


async def test_reviews_counted_by_outcome(
    client: httpx.AsyncClient, metrics: Metrics
) -> None:
    await client.post("/mutate", content=orjson.dumps(pod_review()), headers=JSON)
    await client.post("/mutate", content=b"", headers=JSON)

    text = (await client.get("/metrics")).text

    assert 'reviews_total{kind="Pod",operation="CREATE",outcome="allowed"} 1.0' in text
    assert 'outcome="malformed"} 1.0' in text
    assert "runai_secrets_webhook_review_duration_seconds_bucket" in text


async def test_probes(metrics: Metrics) -> None:
    answered = {"value": False}
    readiness = Readiness(
        source_answered=lambda: answered["value"], certificate_ready=lambda: True
    )
    app = create_app(MutateEndpoint(allow_all, metrics), readiness, metrics)
    transport = httpx.ASGITransport(app=app)

    async with httpx.AsyncClient(
        transport=transport, base_url="https://webhook.test"
    ) as http:
        assert (await http.get("/healthz")).status_code == 200
        not_ready = await http.get("/readyz")
        answered["value"] = True
        ready = await http.get("/readyz")
        readiness.stopping = True
        stopping = await http.get("/readyz")

    assert not_ready.status_code == 503
    assert "Kubernetes API has not answered" in not_ready.text
    assert ready.status_code == 200
    assert stopping.status_code == 503
    assert "shutting down" in stopping.text


@pytest.mark.parametrize(
    ("patched", "outcome"), [(True, "patched"), (False, "allowed")]
)
async def test_quick_answer_sent_and_counted(
    metrics: Metrics, patched: bool, outcome: str
) -> None:
    content = b'{"apiVersion":"admission.k8s.io/v1","response":{"allowed":true}}'

    async with client_for(
        crash, metrics, lambda review: QuickAnswer(content, patched)
    ) as http:
        response = await http.post(
            "/mutate", content=orjson.dumps(pod_review()), headers=JSON
        )
        text = (await http.get("/metrics")).text

    counted = f'reviews_total{{kind="Pod",operation="CREATE",outcome="{outcome}"}} 1.0'
    assert response.status_code == 200
    assert response.content == content
    assert counted in text
    assert "review_duration_seconds_count 1.0" in text


async def test_quick_path_fault_falls_back(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(review: PodReview) -> QuickAnswer | None:
        raise RuntimeError("quick path bug")

    review = pod_review()
    async with client_for(allow_all, metrics, broken) as http:
        response = await http.post(
            "/mutate", content=orjson.dumps(review), headers=JSON
        )

    assert response.json()["response"] == {
        "uid": review["request"]["uid"],
        "allowed": True,
    }
    assert "quick path failed" in caplog.text


async def test_quick_path_skipped_under_debug(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """Under DEBUG the reviewer logs every review, so no body is decoded for it."""
    caplog.set_level(logging.DEBUG, logger="webhook.server.mutate")
    calls = []

    def recorded(review: PodReview) -> QuickAnswer | None:
        calls.append(review)
        return None

    async with client_for(allow_all, metrics, recorded) as http:
        for body in (orjson.dumps(pod_review()), large_pod_review()):
            response = await http.post("/mutate", content=body, headers=JSON)
            assert response.status_code == 200

    assert calls == []
    assert "review received" in caplog.text


def test_quick_path_off_with_templates(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client
    from prometheus_client import CollectorRegistry

    from webhook.kube.lookups import SecretKeyLookups
    from webhook.kube.secrets import DirectorySecrets
    from webhook.server.pipeline import build_reviewer, injection_options
    from webhook.settings import ServeSettings
    from webhook.templates.service import TemplateService

    # The template service is never started, so its client sends nothing.
    api = client.ApiClient(client.Configuration(host="https://127.0.0.1:9"))
    templates = TemplateService(api, "runai", CollectorRegistry())
    with ThreadPoolExecutor(1) as executor:
        lookups = SecretKeyLookups(DirectorySecrets(tmp_path), executor, 5)
        options = injection_options(ServeSettings())
        plain = build_reviewer(options, lookups)
        templated = build_reviewer(options, lookups, templates)

    assert plain.quick_enabled
    assert not templated.quick_enabled


async def test_pipeline_patches_from_directory(
    tmp_path: Path, metrics: Metrics
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from webhook.kube.lookups import SecretKeyLookups
    from webhook.kube.secrets import DirectorySecrets
    from webhook.server.pipeline import build_reviewer, injection_options
    from webhook.settings import ServeSettings

    (tmp_path / "s.yaml").write_text(
        "kind: Secret\nmetadata: {name: db-creds, namespace: runai-team-a}\n"
        "data: {username: YQ==}\n"
    )
    executor = ThreadPoolExecutor(2)
    lookups = SecretKeyLookups(
        DirectorySecrets(tmp_path), executor, 5, metrics.count_lookup
    )
    reviewer = build_reviewer(injection_options(ServeSettings()), lookups)
    review = pod_review()
    review["request"]["object"]["spec"]["containers"][0]["env"] = [
        {"name": "U", "value": "SECRET:db-creds,username"}
    ]

    # The first review looks the secret up, the second finds it in the
    # cache and takes the quick path: both get the same response.
    responses = []
    async with client_for(reviewer, metrics, reviewer.quick) as http:
        for _ in range(2):
            response = await http.post(
                "/mutate", content=orjson.dumps(review), headers=JSON
            )
            responses.append(response.content)
        text = (await http.get("/metrics")).text
    decoded = decode_pod_review(orjson.dumps(review))
    assert decoded is not None
    quick = reviewer.quick(decoded)
    executor.shutdown()
    answer = response.json()["response"]

    assert quick is not None
    assert quick.content == responses[1]
    assert responses[0] == responses[1]
    assert 'secret_lookups_total{result="fetched"} 1.0' in text
    assert 'secret_lookups_total{result="cached"} 1.0' in text
    patch = orjson.loads(base64.b64decode(answer["patch"]))

    assert answer["allowed"] is True
    assert answer["patchType"] == "JSONPatch"
    assert {
        "op": "replace",
        "path": "/spec/containers/0/env/0",
        "value": {
            "name": "U",
            "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "username"}},
        },
    } in patch


def large_pod_review(operation: str = "CREATE") -> bytes:
    """Return a review of a pod with a 3 MiB annotation, object and old object."""
    review = pod_review(operation=operation)
    big = "x" * (3 * 1024 * 1024 - 4096)
    review["request"]["object"]["metadata"]["annotations"] = {"big": big}
    review["request"]["oldObject"] = review["request"]["object"]
    return orjson.dumps(review)


async def test_large_update_review_accepted(client: httpx.AsyncClient) -> None:
    body = large_pod_review("UPDATE")

    response = await client.post("/mutate", content=body, headers=JSON)

    assert len(body) > 6_000_000
    assert response.status_code == 200
    assert response.json()["response"]["allowed"] is True
