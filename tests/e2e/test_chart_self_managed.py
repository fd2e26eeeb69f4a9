"""The chart's default install, run as rendered: self-managed certificates.

The service starts with the exact arguments of the chart's Deployment, with
only the listen address, port and kubeconfig replaced. The fake API contains
the chart's MutatingWebhookConfiguration without a caBundle.
The service must create its CA Secret, publish the CA in that configuration
and serve a certificate the apiserver accepts. Every API request it makes
must be allowed by the chart's ClusterRole and Role.
"""

from __future__ import annotations

import base64
import copy
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chart.fixtures import helm  # noqa: F401
from tests.chart.helm import NAMESPACE, RELEASE, Manifest, find, render
from tests.chart.rbac import granted_rules, unauthorized
from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService

PROJECT = "runai-team-a"
CA_SECRET = f"{RELEASE}-ca"


class ChartService(WebhookService):
    """`runai-secrets-webhook` started with the chart Deployment's arguments."""

    def __init__(self, chart_args: list[str], kube: FakeKube, directory: Path) -> None:
        super().__init__(directory=directory)
        self.kube = kube
        kubeconfig = kube.write_kubeconfig(directory / "kubeconfig")
        kept = [arg for arg in chart_args if not arg.startswith(("--port=", "--host="))]
        self.command = [
            sys.executable, "-m", "webhook", *kept,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--kubeconfig", str(kubeconfig),
        ]  # fmt: skip

    def published_bundle(self) -> str:
        """Return the caBundle the service wrote, or "" while there is none."""
        configuration = self.kube.get(
            "admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations",
            "",
            RELEASE,
        )
        return str(configuration["webhooks"][0]["clientConfig"].get("caBundle", ""))

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        # Ready means: a certificate from the published CA is served. The
        # leaf names the Service's DNS names, not 127.0.0.1, so only the
        # chain is checked here; the admission caller checks the name.
        bundle = self.published_bundle()
        if not bundle:
            return 0, b""
        context = ssl.create_default_context(cadata=base64.b64decode(bundle).decode())
        context.check_hostname = False
        try:
            response = httpx.get(self.url + path, verify=context, timeout=timeout)
        except httpx.HTTPError:
            return 0, b""
        return response.status_code, response.content


# The default install, and the one with templates on, which adds a watch on
# template ConfigMaps, a read of the webhook configuration and a second
# caBundle to publish.
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "templates": {"templates": {"enabled": True}},
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def manifests(helm: Path, request: pytest.FixtureRequest) -> list[Manifest]:  # noqa: F811
    return render(helm, VARIANTS[request.param])


def webhook_configurations(manifests: list[Manifest]) -> list[Manifest]:
    kinds = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
    return [copy.deepcopy(doc) for doc in manifests if doc["kind"] in kinds]


@pytest.fixture(scope="module")
def fake_api(manifests: list[Manifest]) -> Iterator[FakeKube]:
    with FakeKube() as kube:
        kube.add_namespace(NAMESPACE)
        kube.add_namespace(PROJECT, {"runai/queue": "team-a"})
        kube.add_namespace("runai")
        kube.add_secret(PROJECT, "db-creds", {"username": "alice"})
        # As `helm install` leaves them: no caBundle yet.
        kube.preload(webhook_configurations(manifests))
        yield kube


@pytest.fixture(scope="module")
def service(
    manifests: list[Manifest],
    fake_api: FakeKube,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ChartService]:
    container = find(manifests, "Deployment", RELEASE)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert "--self-managed-certs" in container["args"]
    running = ChartService(container["args"], fake_api, tmp_path_factory.mktemp("svc"))
    with running:
        yield running


def test_ca_secret_created(service: ChartService, fake_api: FakeKube) -> None:
    secret = fake_api.get("v1", "secrets", NAMESPACE, CA_SECRET)
    assert "ca.crt" in secret["data"]


def test_ca_published_in_configurations(
    service: ChartService, fake_api: FakeKube, manifests: list[Manifest]
) -> None:
    secret = fake_api.get("v1", "secrets", NAMESPACE, CA_SECRET)
    expected = base64.b64decode(secret["data"]["ca.crt"])
    for rendered in webhook_configurations(manifests):
        plural = rendered["kind"].lower() + "s"
        stored = fake_api.get("admissionregistration.k8s.io/v1", plural, "", RELEASE)
        for entry in stored["webhooks"]:
            bundle = entry["clientConfig"].get("caBundle", "")
            assert base64.b64decode(bundle) == expected, rendered["kind"]


def test_pod_converted_over_published_ca(
    service: ChartService, fake_api: FakeKube
) -> None:
    configuration = fake_api.get(
        "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", RELEASE
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "job-"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "env": [{"name": "USERNAME", "value": "SECRET:db-creds,username"}],
                }
            ]
        },
    }
    # The caller reaches the Service's DNS name on the service's loopback
    # port and verifies the certificate against the published caBundle.
    with service.caller(mutating=[configuration], kube=fake_api) as caller:
        result = caller.admit(pod, namespace=PROJECT)
    assert result.allowed, result.message
    assert result.called(configuration["webhooks"][0]["name"]) == 1
    assert result.object is not None
    env = result.object["spec"]["containers"][0]["env"]
    assert env == [
        {
            "name": "USERNAME",
            "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "username"}},
        }
    ]


def test_requests_within_chart_rbac(
    service: ChartService, fake_api: FakeKube, manifests: list[Manifest]
) -> None:
    # The tests above made the service create its CA, patch the caBundle and
    # read a secret. This test runs after them, so every kind is logged.
    made = fake_api.requests
    assert {(record.verb, record.resource) for record in made} >= {
        ("create", "secrets"),
        ("get", "secrets"),
        ("patch", "mutatingwebhookconfigurations"),
    }
    assert unauthorized(made, granted_rules(manifests, RELEASE)) == []
