"""Bounded metric labels and which collectors `serve` exports."""

from __future__ import annotations

import subprocess
import sys

import httpx
import orjson
import pytest

from tests.server.test_mutate import JSON, allow_all, pod_review
from webhook.server.app import create_app
from webhook.server.metrics import Metrics, new_metrics
from webhook.server.mutate import MutateEndpoint
from webhook.server.readiness import Readiness


def reviews_counted(metrics: Metrics, kind: str, operation: str) -> float:
    labels = {"kind": kind, "operation": operation, "outcome": "allowed"}
    value = metrics.registry.get_sample_value(
        "runai_secrets_webhook_reviews_total", labels
    )
    return value or 0.0


async def post_kinds(
    metrics: Metrics, kinds: list[str], known: set[str] | None = None
) -> None:
    readiness = Readiness(source_answered=lambda: True, certificate_ready=lambda: True)
    if known is None:
        endpoint = MutateEndpoint(allow_all, metrics)
    else:
        endpoint = MutateEndpoint(allow_all, metrics, known)
    transport = httpx.ASGITransport(app=create_app(endpoint, readiness, metrics))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as http:
        for kind in kinds:
            review = pod_review(kind={"group": "x", "version": "v1", "kind": kind})
            response = await http.post(
                "/mutate", content=orjson.dumps(review), headers=JSON
            )
            assert response.status_code == 200


async def test_unknown_kinds_counted_as_other() -> None:
    metrics = new_metrics()
    invented = [f"Invented{number}" for number in range(20)]

    await post_kinds(metrics, [*invented, "Pod", "PyTorchJob"], {"Pod", "PyTorchJob"})

    assert reviews_counted(metrics, "other", "CREATE") == 20
    assert reviews_counted(metrics, "Pod", "CREATE") == 1
    assert reviews_counted(metrics, "PyTorchJob", "CREATE") == 1
    exported = metrics.registry.get_sample_value
    assert (
        exported(
            "runai_secrets_webhook_reviews_total",
            {"kind": "Invented0", "operation": "CREATE", "outcome": "allowed"},
        )
        is None
    )


async def test_builtin_kinds_known_by_default() -> None:
    metrics = new_metrics()

    await post_kinds(metrics, ["Deployment", "PyTorchJob"])

    assert reviews_counted(metrics, "Deployment", "CREATE") == 1
    assert reviews_counted(metrics, "other", "CREATE") == 1


def test_bounded_operation_and_outcome() -> None:
    metrics = new_metrics()

    metrics.count_review("Pod", "PATCH", "exploded", {"Pod"})

    labels = {"kind": "Pod", "operation": "other", "outcome": "other"}
    value = metrics.registry.get_sample_value(
        "runai_secrets_webhook_reviews_total", labels
    )
    assert value == 1


@pytest.mark.parametrize(
    ("setup", "exported"),
    [
        ("", False),
        ("from webhook.propagation.metrics import register_metrics\n"
         "register_metrics()\nregister_metrics()\n", True),
    ],
)  # fmt: skip
def test_propagation_metrics_only_when_started(setup: str, exported: bool) -> None:
    # A new process, because the default registry is global to it.
    script = (
        "import webhook.cli\n"
        "from prometheus_client import REGISTRY, generate_latest\n"
        f"{setup}"
        "print(generate_latest(REGISTRY).decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": ""},
    )

    assert ("runai_secrets_webhook_propagation_leader" in result.stdout) is exported
    assert ("runai_secrets_webhook_propagation_copies" in result.stdout) is exported
