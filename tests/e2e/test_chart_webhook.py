"""The chart's MutatingWebhookConfiguration in front of the real service.

helm renders the chart with its default values. The test takes the
rendered MutatingWebhookConfiguration and sets its caBundle to the test CA,
which in a cluster the webhook or cert-manager writes. The admission caller
then applies the rules, selectors, CEL match condition, failure policy and
timeout the way kube-apiserver does. The service runs as a subprocess over
real TLS against the fake Kubernetes API, so what the chart ships is what is
tested here.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chart.fixtures import helm  # noqa: F401
from tests.chart.helm import NAMESPACE, RELEASE, find, render
from tests.harness.apiserver import AdmissionCaller, AdmissionResult
from tests.harness.fakekube import FakeKube
from tests.harness.objectvalidation import Kind
from tests.harness.service import WebhookService

PROJECT = "runai-team-a"
UNLABELLED = "scratch"
PROJECT_LABELS = {"runai/queue": "team-a"}
REFERENCE = "SECRET:db-creds,username"
TRAINING_WORKLOAD = Kind(
    "run.ai", "v2alpha1", "TrainingWorkload", "trainingworkloads", True, None
)


@pytest.fixture(scope="module")
def chart_manifests(helm: Path) -> list[dict[str, Any]]:  # noqa: F811
    return render(helm)


@pytest.fixture
def configuration(chart_manifests: list[dict[str, Any]]) -> dict[str, Any]:
    rendered = find(chart_manifests, "MutatingWebhookConfiguration")
    return copy.deepcopy(rendered)


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeKube]:
    # Every namespace but one carries the project label, so that only the
    # name-based exclusions can keep the webhook away from them.
    with FakeKube() as kube:
        for namespace in (PROJECT, NAMESPACE, "kube-system"):
            kube.add_namespace(namespace, PROJECT_LABELS)
            kube.add_secret(namespace, "db-creds", {"username": "alice"})
        kube.add_namespace(UNLABELLED)
        kube.add_secret(UNLABELLED, "db-creds", {"username": "alice"})
        yield kube


def start_service(fake_api: FakeKube, directory: Path) -> WebhookService:
    # The kubeconfig is passed explicitly, so the service never reads one
    # from the environment or the home directory.
    kubeconfig = fake_api.write_kubeconfig(directory / "kubeconfig")
    return WebhookService(["--log-format", "text"], kubeconfig=kubeconfig)


@pytest.fixture(scope="module")
def service(
    fake_api: FakeKube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookService]:
    with start_service(fake_api, tmp_path_factory.mktemp("service")) as running:
        yield running


@pytest.fixture
def caller(
    service: WebhookService, fake_api: FakeKube, configuration: dict[str, Any]
) -> Iterator[AdmissionCaller]:
    with caller_for(service, fake_api, configuration) as admission:
        yield admission


def caller_for(
    service: WebhookService, fake_api: FakeKube, configuration: dict[str, Any]
) -> AdmissionCaller:
    (entry,) = configuration["webhooks"]
    assert "caBundle" not in entry["clientConfig"]
    entry["clientConfig"]["caBundle"] = service.certificate.ca_bundle
    return service.caller(mutating=[configuration], kube=fake_api)


def webhook_name(configuration: dict[str, Any]) -> str:
    return str(configuration["webhooks"][0]["name"])


def pod(
    env_value: str = REFERENCE, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "job-", "labels": labels or {}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "env": [{"name": "USERNAME", "value": env_value}],
                }
            ]
        },
    }


def skip_reasons(result: AdmissionResult) -> list[str]:
    return [skip.reason for skip in result.skipped]


def first_env(result: AdmissionResult) -> dict[str, Any]:
    assert result.object is not None
    env: dict[str, Any] = result.object["spec"]["containers"][0]["env"][0]
    return env


def test_project_namespace_called(
    caller: AdmissionCaller, configuration: dict[str, Any]
) -> None:
    result = caller.admit(pod(), namespace=PROJECT)
    assert result.allowed, result.message
    assert result.called(webhook_name(configuration)) == 1
    assert first_env(result) == {
        "name": "USERNAME",
        "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "username"}},
    }


@pytest.mark.parametrize("namespace", [NAMESPACE, "kube-system", UNLABELLED])
def test_namespace_not_called(
    caller: AdmissionCaller, configuration: dict[str, Any], namespace: str
) -> None:
    result = caller.admit(pod(), namespace=namespace)
    assert result.allowed, result.message
    assert result.called(webhook_name(configuration)) == 0
    assert skip_reasons(result) == ["namespaceSelector does not match"]
    # Nothing converted the reference.
    assert first_env(result) == {"name": "USERNAME", "value": REFERENCE}


def test_pod_without_placeholder_skipped(
    caller: AdmissionCaller, configuration: dict[str, Any]
) -> None:
    result = caller.admit(pod(env_value="plain"), namespace=PROJECT)
    assert result.allowed, result.message
    assert result.called(webhook_name(configuration)) == 0
    assert skip_reasons(result) == [
        "matchCondition 'has-placeholder-or-annotation' is false"
    ]


@pytest.mark.parametrize(
    ("prefix", "fix"),
    [
        ("secret:", "Write SECRET: in upper case"),
        ("Secret:", "Write SECRET: in upper case"),
        ("SECRETS:", "Start the value with SECRET:"),
    ],
)
def test_misspelled_prefix_warned(
    caller: AdmissionCaller, configuration: dict[str, Any], prefix: str, fix: str
) -> None:
    # The service warns about such a value, so the match condition must send it.
    result = caller.admit(
        pod(env_value=f"{prefix}db-creds,username"), namespace=PROJECT
    )
    assert result.allowed, result.message
    assert result.called(webhook_name(configuration)) == 1
    assert first_env(result) == {
        "name": "USERNAME",
        "value": f"{prefix}db-creds,username",
    }
    assert len(result.warnings) == 1
    assert fix in result.warnings[0]


def test_own_pod_not_called(
    caller: AdmissionCaller,
    configuration: dict[str, Any],
    chart_manifests: list[dict[str, Any]],
) -> None:
    # A pod as the chart's Deployment creates it, with a placeholder added so
    # that only the objectSelector can keep it from the webhook. It goes to a
    # project namespace, where the namespaceSelector would let it through.
    template = find(chart_manifests, "Deployment", RELEASE)["spec"]["template"]
    own = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{RELEASE}-",
            **copy.deepcopy(template["metadata"]),
        },
        "spec": copy.deepcopy(template["spec"]),
    }
    own["spec"]["containers"][0]["env"] = [{"name": "USERNAME", "value": REFERENCE}]
    result = caller.admit(own, namespace=PROJECT)
    assert result.allowed, result.message
    assert result.called(webhook_name(configuration)) == 0
    assert skip_reasons(result) == ["objectSelector does not match"]


def test_opt_out_label_not_called(
    caller: AdmissionCaller, configuration: dict[str, Any]
) -> None:
    labelled = pod(labels={"runai-secrets-webhook/inject": "false"})
    result = caller.admit(labelled, namespace=PROJECT)
    assert result.allowed, result.message
    assert result.called(webhook_name(configuration)) == 0
    assert skip_reasons(result) == ["objectSelector does not match"]


def test_deployment_template_converted(
    caller: AdmissionCaller, configuration: dict[str, Any]
) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "trainer"},
        "spec": {
            "selector": {"matchLabels": {"app": "trainer"}},
            "template": {
                "metadata": {"labels": {"app": "trainer"}},
                "spec": pod()["spec"],
            },
        },
    }
    result = caller.admit(deployment, namespace=PROJECT)
    assert result.allowed, result.message
    assert result.called(webhook_name(configuration)) == 1
    assert result.object is not None
    env = result.object["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0]["valueFrom"]["secretKeyRef"] == {
        "name": "db-creds",
        "key": "username",
    }


def test_training_workload_finalizer_removed_after_secret_deleted(
    caller: AdmissionCaller, configuration: dict[str, Any]
) -> None:
    # The workload was admitted while secret "wandb" existed; the secret has
    # been deleted since, and the workload is being deleted too.
    deleting: dict[str, Any] = {
        "apiVersion": "run.ai/v2alpha1",
        "kind": "TrainingWorkload",
        "metadata": {
            "name": "train",
            "namespace": PROJECT,
            "finalizers": ["run.ai/cleanup"],
            "deletionTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"environment": {"items": {"WANDB": {"value": "SECRET:wandb,token"}}}},
    }
    released = copy.deepcopy(deleting)
    released["metadata"]["finalizers"] = []

    result = caller.admit(
        released, "UPDATE", PROJECT, old_object=deleting, kind=TRAINING_WORKLOAD
    )

    assert result.allowed, result.message
    assert result.called(webhook_name(configuration)) == 1


def test_missing_secret_denied(
    caller: AdmissionCaller, configuration: dict[str, Any]
) -> None:
    result = caller.admit(pod(env_value="SECRET:absent,username"), namespace=PROJECT)
    assert not result.allowed
    assert result.called(webhook_name(configuration)) == 1
    assert '"absent"' in result.message


def test_fails_closed_when_down(
    fake_api: FakeKube, configuration: dict[str, Any], tmp_path: Path
) -> None:
    # failurePolicy Fail: when no replica responds, the pod is rejected
    # rather than created with the literal reference in its env.
    with start_service(fake_api, tmp_path) as stopped:
        admission = caller_for(stopped, fake_api, configuration)
        stopped.stop()
    with admission:
        result = admission.admit(pod(), namespace=PROJECT)
    assert not result.allowed
    assert result.code == 500
    assert f'failed calling webhook "{webhook_name(configuration)}"' in result.message
    assert result.calls[0].outcome == "failed-closed"


def test_answers_within_timeout(
    caller: AdmissionCaller, configuration: dict[str, Any]
) -> None:
    result = caller.admit(pod(), namespace=PROJECT)
    assert result.allowed, result.message
    timeout = configuration["webhooks"][0]["timeoutSeconds"]
    assert timeout == 5
    # The caller sends ?timeout=5s from the configuration, because the user's
    # request has no shorter deadline, and the service answers well within it.
    assert result.calls[0].seconds < timeout
