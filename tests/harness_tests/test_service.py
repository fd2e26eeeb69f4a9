"""The service runner and the webhook configuration it builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness import certs, service
from tests.harness.fakekube import FakeKube
from tests.harness.service import (
    ServiceFailed,
    WebhookService,
    isolated_environment,
    running_services,
)

SENTINEL = "sentinel-secret-value-4242"


def secret_pod(value: str) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "busybox",
        "env": [{"name": "PW", "value": value}],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "job-"},
        "spec": {"containers": [container]},
    }


def test_service_admits_and_stops_cleanly(fake_kube: FakeKube, tmp_path: Path) -> None:
    fake_kube.add_namespace("team-a", {"runai/queue": "team-a"})
    fake_kube.add_secret("team-a", "db", {"password": SENTINEL})
    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "kubeconfig")

    with WebhookService(["--log-format", "json"], kubeconfig=kubeconfig) as running:
        caller = running.caller(kube=fake_kube)
        allowed = caller.admit(secret_pod("SECRET:db,password"), namespace="team-a")
        denied = caller.admit(secret_pod("SECRET:db,missing"), namespace="team-a")
        health = running.get("/healthz")
        code = running.stop()

    assert allowed.allowed, allowed.message
    assert allowed.object is not None
    assert allowed.object["spec"]["containers"][0]["env"] == [
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    ]
    assert not denied.allowed
    assert denied.message.startswith(
        'admission webhook "inject.runai-secrets-webhook.io" denied the request: '
    )
    assert health[0] == 200
    assert code == 0
    assert running.exit_code == 0
    assert fake_kube.count(resource="secrets") >= 1
    assert SENTINEL not in running.logs()
    assert any(record.get("message") for record in running.log_records())


def test_service_that_exits_raises_with_logs(tmp_path: Path) -> None:
    # Flags given by the test come last and override the runner's own.
    failing = WebhookService(["--port", "not-a-port"], directory=tmp_path)

    with pytest.raises(ServiceFailed, match="service exited with 2") as caught:
        failing.start()

    assert "not-a-port" in str(caught.value)
    assert failing.exit_code == 2


def test_environment_cannot_reach_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment of a module-scoped fixture, set up before the per-test one.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "192.0.2.1")
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_KUBECONFIG", "/root/.kube/config")
    monkeypatch.setenv("HTTPS_PROXY", "http://192.0.2.2:3128")
    monkeypatch.setenv("all_proxy", "http://192.0.2.2:3128")
    monkeypatch.setenv("KUBECONFIG", "/root/.kube/config")

    environment = isolated_environment(tmp_path)

    assert "KUBERNETES_SERVICE_HOST" not in environment
    assert "RUNAI_SECRETS_WEBHOOK_KUBECONFIG" not in environment
    assert "HTTPS_PROXY" not in environment
    assert "all_proxy" not in environment
    assert environment["KUBECONFIG"] == str(tmp_path / "no-such-kubeconfig")
    assert environment["HOME"] == str(tmp_path)


def test_services_run_side_by_side(tmp_path: Path) -> None:
    # Without TLS flags each service makes its own certificates in certs/.
    services = [
        WebhookService(
            ["--log-format", "json", "--secrets-dir", str(tmp_path)],
            tls_files=False,
            ca_file=tmp_path / name / "certs" / "ca.crt",
            ready_path=None,
            directory=tmp_path / name,
        )
        for name in ("first", "second")
    ]

    with running_services(*services) as running:
        first, second = running
        # A service listens before it is ready, which needs its own certificate.
        for service in running:
            service.ready_path = "/readyz"
            service.wait_ready(seconds=10)
        statuses = [service.get("/healthz")[0] for service in running]

    assert first.port != second.port
    assert statuses == [200, 200]
    assert [service.exit_code for service in running] == [0, 0]
    assert all(service.log_records(strict=True) for service in running)


def test_configuration_matches_defaults() -> None:
    ca_bundle = certs.issue("x.y.svc").ca_bundle

    configuration = service.mutating_configuration(ca_bundle)

    (webhook,) = configuration["webhooks"]
    assert configuration["kind"] == "MutatingWebhookConfiguration"
    assert webhook["name"] == "inject.runai-secrets-webhook.io"
    assert webhook["clientConfig"]["service"] == {
        "name": "runai-secrets-webhook",
        "namespace": "runai-secrets-webhook",
        "path": "/mutate",
        "port": 443,
    }
    assert webhook["clientConfig"]["caBundle"] == ca_bundle
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["timeoutSeconds"] == 5
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert webhook["admissionReviewVersions"] == ["v1", "v1beta1"]
    expressions = webhook["namespaceSelector"]["matchExpressions"]
    assert {"key": "runai/queue", "operator": "Exists"} in expressions
    assert {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": ["runai-secrets-webhook", "kube-system"],
    } in expressions
    resources = [
        resource for rule in webhook["rules"] for resource in rule["resources"]
    ]
    assert "pods" in resources
    assert "pods/ephemeralcontainers" in resources


def test_configuration_agrees_with_chart() -> None:
    ca_bundle = certs.issue("x.y.svc").ca_bundle
    rendered = service.chart_configuration(ca_bundle)
    if rendered is None:
        pytest.skip("helm or the chart's render helper is not available here")
    built = service.mutating_configuration(ca_bundle)

    chart_hook = rendered["webhooks"][0]
    built_hook = built["webhooks"][0]
    for key in (
        "name",
        "failurePolicy",
        "timeoutSeconds",
        "reinvocationPolicy",
        "namespaceSelector",
    ):
        assert chart_hook[key] == built_hook[key], key
    assert chart_hook["clientConfig"]["service"]["path"] == "/mutate"
    for rule in built_hook["rules"]:
        assert rule in chart_hook["rules"]
