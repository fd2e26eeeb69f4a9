"""The cluster around the webhook: a fake API server, certificates, a caller.

Each module gets one fake Kubernetes API server and one webhook process, so
a test file starts the service once. The webhook runs with `--cache-ttl 0`
unless a test starts its own, so every review calls the API and the request
log shows exactly which secrets were read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.apiserver import AdmissionCaller
from tests.harness.fakekube import FakeKube
from tests.harness.service import JSON_DEBUG_LOGS, WebhookService
from webhook.tls.generate import CertificatePaths, ca_bundle, generate_certificates

SERVICE = "runai-secrets-webhook"
SERVICE_NAMESPACE = "runai-secrets-webhook"
WEBHOOK_NAME = "secrets.runai-secrets-webhook.io"

# Secret values the tests plant in the fake API; none may ever show up in a
# response, a log line or a metric.
SENTINEL = "sentinel-5ecret-value-93f1"
TEAM_A_SECRETS = {"username": f"alice-{SENTINEL}", "password": f"pw-{SENTINEL}"}


@dataclass
class Cluster:
    """One fake API server with a webhook process and a caller in front."""

    kube: FakeKube
    service: WebhookService
    caller: AdmissionCaller
    certificates: CertificatePaths

    def secret_gets(self, namespace: str | None = None) -> int:
        match: dict[str, Any] = {"verb": "get", "resource": "secrets"}
        if namespace is not None:
            match["namespace"] = namespace
        return self.kube.count(**match)


def webhook_configuration(
    ca_bundle_text: str,
    timeout_seconds: int = 10,
    exclude_namespaces: bool = True,
    versions: tuple[str, ...] | list[str] = ("v1", "v1beta1"),
) -> dict[str, Any]:
    """Return a MutatingWebhookConfiguration like the one a cluster admin installs."""
    rules = [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["pods", "pods/ephemeralcontainers"],
            "scope": "Namespaced",
        },
        {
            "apiGroups": ["batch"],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["jobs", "cronjobs"],
            "scope": "Namespaced",
        },
    ]
    webhook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": list(versions),
        "clientConfig": {
            "service": {
                "name": SERVICE,
                "namespace": SERVICE_NAMESPACE,
                "path": "/mutate",
            },
            "caBundle": ca_bundle_text,
        },
        "rules": rules,
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "timeoutSeconds": timeout_seconds,
        "reinvocationPolicy": "IfNeeded",
    }
    if exclude_namespaces:
        webhook["namespaceSelector"] = {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": ["kube-system", SERVICE_NAMESPACE],
                }
            ]
        }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": SERVICE},
        "webhooks": [webhook],
    }


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificatePaths:
    """Certificates made by the product's own generator, as `certs generate` does."""
    return generate_certificates(
        tmp_path_factory.mktemp("certs"),
        SERVICE,
        SERVICE_NAMESPACE,
        ip_addresses=("127.0.0.1",),
        ca_days=2,
        leaf_days=1,
    )


def populate(kube: FakeKube) -> None:
    kube.add_secret("runai-team-a", "db-creds", TEAM_A_SECRETS)
    kube.add_secret("runai-team-b", "db-creds", {"username": "bob", "password": "x"})
    kube.add_namespace("kube-system")


def caller_for(
    service: WebhookService, kube: FakeKube, paths: CertificatePaths, **config: Any
) -> AdmissionCaller:
    configuration = webhook_configuration(ca_bundle(paths.ca_cert), **config)
    address = f"{SERVICE}.{SERVICE_NAMESPACE}.svc:443"
    return AdmissionCaller(
        mutating=[configuration],
        services={address: ("127.0.0.1", service.port)},
        kube=kube,
    )


@contextlib.contextmanager
def start_cluster(
    workdir: Path, paths: CertificatePaths, *serve_args: str, **config: Any
) -> Iterator[Cluster]:
    """Start a fake API server and a webhook process; stop both afterwards."""
    with FakeKube() as kube:
        populate(kube)
        kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig")
        tls = ["--tls-cert-file", str(paths.cert), "--tls-key-file", str(paths.key)]
        service = WebhookService(
            [*JSON_DEBUG_LOGS, *tls, *serve_args],
            tls_files=False,
            ca_file=paths.ca_cert,
            kubeconfig=kubeconfig,
            startup_seconds=15,
            directory=workdir,
        )
        with service, caller_for(service, kube, paths, **config) as caller:
            kube.clear_log()
            yield Cluster(kube, service, caller, paths)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, certificates: CertificatePaths
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("cluster")
    with start_cluster(workdir, certificates, "--cache-ttl", "0") as started:
        yield started


@pytest.fixture(autouse=True)
def fresh_fake_api(request: pytest.FixtureRequest) -> None:
    """Clear the request log, faults and RBAC denials before each test.

    Module-scoped clusters outlive a test, so a fault left by a failing test
    must not leak into the next one.
    """
    for name in ("cluster", "cached_cluster"):
        if name in request.fixturenames:
            kube = request.getfixturevalue(name).kube
            kube.clear_faults()
            kube.clear_denials()
            kube.clear_log()
