"""The webhook's certificates as kube-apiserver meets them.

The harness's AdmissionCaller does what kube-apiserver does: it reads the
MutatingWebhookConfiguration, verifies the server against its caBundle and
the name `<service>.<namespace>.svc`, and reuses idle connections.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.harness import service as harness
from tests.harness.apiserver import AdmissionCaller, AdmissionResult
from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService
from tests.tls.support import MountedSecret, new_ca, new_leaf, serve
from webhook.tls import pki

SENTINEL = "sentinel-secret-value-7f3a"
SERVICE_KEY = f"{harness.SERVICE}.{harness.NAMESPACE}.svc:443"


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "env": [{"name": "DB_PASSWORD", "value": "SECRET:db,password"}],
                }
            ]
        },
    }


def _converted(result: AdmissionResult) -> bool:
    """Return whether the pod's env var now refers to the secret's key."""
    assert result.object is not None
    env = result.object["spec"]["containers"][0]["env"]
    reference = env[0].get("valueFrom", {}).get("secretKeyRef", {})
    return bool(reference.get("name") == "db" and reference.get("key") == "password")


@pytest.fixture
def cluster(fake_kube: FakeKube) -> FakeKube:
    fake_kube.add_namespace(harness.NAMESPACE)
    fake_kube.add_namespace("team-a", {harness.PROJECT_LABEL: "team-a"})
    fake_kube.add_secret("team-a", "db", {"password": SENTINEL})
    return fake_kube


def test_self_managed_admits_through_ca_bundle(
    cluster: FakeKube, tmp_path: Path
) -> None:
    cluster.preload([harness.mutating_configuration("")])
    flags = [
        "--self-managed-certs",
        "--kubeconfig", str(tmp_path / "kubeconfig"),
        "--service-name", harness.SERVICE,
        "--service-namespace", harness.NAMESPACE,
        "--webhook-configuration-name", harness.CONFIGURATION_NAME,
    ]  # fmt: skip

    with serve(tmp_path / "work", *flags) as service:
        configuration = _wait_for_bundle(cluster)
        with AdmissionCaller(
            mutating=[configuration],
            services={SERVICE_KEY: ("127.0.0.1", service.port)},
            kube=cluster,
        ) as caller:
            deadline = time.monotonic() + 20
            while True:
                result = caller.admit(_pod("job-0"), namespace="team-a")
                if result.allowed or time.monotonic() > deadline:
                    break
                time.sleep(0.2)  # the leaf may still be on its way

    assert result.allowed, result.message
    assert _converted(result)
    assert SENTINEL not in service.logs()


def test_reload_under_connection_reuse(cluster: FakeKube, tmp_path: Path) -> None:
    ca = new_ca()
    names = pki.service_dns_names(harness.SERVICE, harness.NAMESPACE)
    mount = MountedSecret(tmp_path / "mount")
    mount.update(new_leaf(ca, dns_names=names))
    bundle = base64.b64encode(ca.cert_pem).decode()

    with (
        serve(
            tmp_path / "work",
            "--kubeconfig",
            str(tmp_path / "kubeconfig"),
            "--tls-cert-file",
            str(mount.cert_file),
            "--tls-key-file",
            str(mount.key_file),
            "--cert-reload-interval",
            "0.2",
        ) as service,  # fmt: skip
        _admitting(service, bundle, cluster) as outcomes,
    ):
        for _ in range(4):
            time.sleep(0.5)
            mount.update(new_leaf(ca, dns_names=names))
        time.sleep(0.5)

    failures = [message for allowed, message in outcomes if not allowed]
    assert failures == []
    assert len(outcomes) >= 10
    loaded = [
        line
        for line in service.log_records()
        if line.get("message") == "loaded certificate files"
    ]
    assert len(loaded) == 5


class _Admitting:
    """Admits pods one after another until stopped, recording each outcome."""

    def __init__(self, caller: AdmissionCaller) -> None:
        self.caller = caller
        self.outcomes: list[tuple[bool, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        index = 0
        while not self.stop.is_set():
            index += 1
            result = self.caller.admit(_pod(f"job-{index}"), namespace="team-a")
            ok = result.allowed and _converted(result)
            self.outcomes.append((ok, result.message))


@contextmanager
def _admitting(
    service: WebhookService, bundle: str, cluster: FakeKube
) -> Iterator[list[tuple[bool, str]]]:
    """Admit pods through the service in a thread, as kube-apiserver would."""
    configuration = harness.mutating_configuration(bundle)
    with AdmissionCaller(
        mutating=[configuration],
        services={SERVICE_KEY: ("127.0.0.1", service.port)},
        kube=cluster,
    ) as caller:
        worker = _Admitting(caller)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            yield worker.outcomes
        finally:
            worker.stop.set()
            thread.join(timeout=30)


def _wait_for_bundle(kube: FakeKube, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        configuration = kube.get(
            "admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations",
            "",
            harness.CONFIGURATION_NAME,
        )
        if all(w["clientConfig"].get("caBundle") for w in configuration["webhooks"]):
            return configuration
        time.sleep(0.1)
    raise AssertionError("caBundle not set in time")
