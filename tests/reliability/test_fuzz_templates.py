"""Generated reviews against the service with templates on.

Template ConfigMaps, valid to hostile (wrong types, unclosed YAML, a YAML
alias bomb), go to /validate-template, and generated workloads go to
/mutate, where the templates are added. Each response must be a 4xx or a
well-formed AdmissionReview with the request's uid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService
from tests.reliability.calls import client_for, post
from tests.reliability.checks import check_reply
from tests.reliability.cluster import populate, running_service
from tests.reliability.strategies import YAML_BOMB, reviews, template_reviews

FUZZ_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def configmap(name: str, values: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "runai",
            "labels": {"runai/template": "true"},
        },
        "data": {"values": values},
    }


@pytest.fixture(scope="module")
def templated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookService]:
    with FakeKube(bookmark_interval=0.2) as fake:
        populate(fake)
        fake.add_namespace("runai")
        fake.preload(
            [
                configmap(
                    "template-admin", "environments:\n  - ADMIN=SECRET:db,user\n"
                ),
                configmap("verbose", "environments:\n  - LOG=debug\n"),
                configmap("bomb", YAML_BOMB),
            ]
        )
        directory: Path = tmp_path_factory.mktemp("templated")
        with running_service(fake, directory, ["--templates"]) as running:
            yield running


@pytest.fixture(scope="module")
def http(templated: WebhookService) -> Iterator[httpx.Client]:
    with client_for(templated) as client:
        yield client


@FUZZ_SETTINGS
@given(document=template_reviews())
def test_template_review_answered(http: httpx.Client, document: Any) -> None:
    reply = post(http, json.dumps(document).encode(), path="/validate-template")

    check_reply(document, reply)


@FUZZ_SETTINGS
@given(document=reviews())
def test_review_with_templates_answered(http: httpx.Client, document: Any) -> None:
    reply = post(http, json.dumps(document).encode())

    check_reply(document, reply)


def test_no_traceback_with_templates(templated: WebhookService) -> None:
    assert "Traceback" not in templated.logs()
