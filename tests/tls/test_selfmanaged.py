"""Self-managed certificates against the fake Kubernetes API server."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tests.harness.fakekube import FakeKube
from tests.harness.fixtures import fake_kube  # noqa: F401
from tests.tls.inprocess import running_server
from tests.tls.support import client_context, handshake
from webhook.tls.authority import CAPolicy
from webhook.tls.cluster import ClusterClient
from webhook.tls.pairs import ServingPair
from webhook.tls.selfmanaged import SelfManagedCertificates, SelfManagedOptions
from webhook.tls.serving import ServingCertificates

NAMESPACE = "runai-secrets-webhook"
SECRET = "runai-secrets-webhook-ca"
MUTATING = "runai-secrets-webhook"
VALIDATING = "runai-secrets-webhook-templates"


def _configuration(kind: str, name: str, webhooks: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": webhook,
                "clientConfig": {
                    "service": {"name": "runai-secrets-webhook", "namespace": NAMESPACE}
                },
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
            }
            for webhook in webhooks
        ],
    }


@pytest.fixture
def kube(fake_kube: FakeKube) -> FakeKube:  # noqa: F811
    fake_kube.add_namespace(NAMESPACE)
    fake_kube.preload(
        [
            _configuration(
                "MutatingWebhookConfiguration",
                MUTATING,
                ["pods.secrets.run.ai", "workloads.secrets.run.ai"],
            ),
            _configuration(
                "ValidatingWebhookConfiguration",
                VALIDATING,
                ["templates.secrets.run.ai"],
            ),
        ]
    )
    return fake_kube


def _bundles(
    kube: FakeKube, plural: str = "mutatingwebhookconfigurations"
) -> list[str]:
    name = MUTATING if plural.startswith("mutating") else VALIDATING
    config = kube.get("admissionregistration.k8s.io/v1", plural, "", name)
    return [w["clientConfig"].get("caBundle", "") for w in config["webhooks"]]


def _bundle_certs(bundle_b64: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(base64.b64decode(bundle_b64))


def _issuing_ca(leaf: x509.Certificate, bundle_b64: str) -> x509.Certificate | None:
    """Return the CA in the bundle that signed leaf, or None."""
    for ca in _bundle_certs(bundle_b64):
        try:
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def _issued_by_bundle(leaf: x509.Certificate, bundle_b64: str) -> bool:
    return _issuing_ca(leaf, bundle_b64) is not None


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Replica:
    serving: ServingCertificates
    manager: SelfManagedCertificates
    installs: list[tuple[ServingPair, bool, list[str]]] = field(default_factory=list)
    install_steps: list[int] = field(default_factory=list)
    step: int = 0


def _options(**overrides: Any) -> SelfManagedOptions:
    values: dict[str, Any] = {
        "service_name": "runai-secrets-webhook",
        "service_namespace": NAMESPACE,
        "ca_secret_name": SECRET,
        "mutating_webhook_configuration": MUTATING,
        "validating_webhook_configuration": VALIDATING,
        "extra_dns_names": ("localhost",),
        "extra_ip_addresses": ("127.0.0.1",),
    }
    values.update(overrides)
    return SelfManagedOptions(**values)


def _replica(
    kube: FakeKube,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    **overrides: Any,
) -> Replica:
    """A replica whose installs also record the caBundles at that moment."""
    serving = ServingCertificates(clock=clock)
    options = _options(**overrides)
    cluster = ClusterClient(kube.api_client(), NAMESPACE, SECRET)
    replica = Replica(
        serving, SelfManagedCertificates(options, cluster, serving.install)
    )

    def install(pair: ServingPair, ca_certs: Any, trusted: bool) -> None:
        replica.installs.append((pair, trusted, _bundles(kube)))
        replica.install_steps.append(replica.step)
        serving.install(pair, ca_certs, trusted)

    replica.manager = SelfManagedCertificates(options, cluster, install, clock=clock)
    return replica


def test_first_start_creates_ca_and_patches_bundles(kube: FakeKube) -> None:
    replica = _replica(kube)
    replica.manager.install_bootstrap()
    assert not replica.serving.ready()

    replica.manager.reconcile()

    secret = kube.get("v1", "secrets", NAMESPACE, SECRET)
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == (
        "runai-secrets-webhook"
    )
    bundles = _bundles(kube) + _bundles(kube, "validatingwebhookconfigurations")
    assert bundles == [secret["data"]["ca.crt"]] * 3

    served = replica.serving.served
    assert served is not None
    assert replica.serving.ready()
    assert _issued_by_bundle(served.leaf, bundles[0])
    san = served.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert (
        "runai-secrets-webhook.runai-secrets-webhook.svc"
        in san.value.get_values_for_type(x509.DNSName)
    )


def test_bundle_patched_only_when_it_differs(kube: FakeKube) -> None:
    replica = _replica(kube)
    replica.manager.reconcile()
    replica.manager.reconcile()
    replica.manager.reconcile()

    patches = kube.count(verb="patch", resource="mutatingwebhookconfigurations")
    assert patches == 1
    assert len(replica.installs) == 1


def test_bundle_changed_by_hand_is_restored(kube: FakeKube) -> None:
    replica = _replica(kube)
    replica.manager.reconcile()
    expected = _bundles(kube)
    config = kube.get(
        "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", MUTATING
    )
    config["webhooks"][1]["clientConfig"]["caBundle"] = base64.b64encode(
        b"stale"
    ).decode()
    kube.preload([config])

    replica.manager.reconcile()

    assert _bundles(kube) == expected
    assert len(replica.installs) == 1


def test_two_replicas_end_with_one_ca(kube: FakeKube) -> None:
    replicas = [_replica(kube), _replica(kube)]
    barrier = threading.Barrier(len(replicas))
    errors: list[BaseException] = []

    def start(replica: Replica) -> None:
        try:
            barrier.wait()
            replica.manager.reconcile()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=start, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert kube.count(verb="create", resource="secrets") == 2
    secret = kube.get("v1", "secrets", NAMESPACE, SECRET)
    ca_certs = _bundle_certs(secret["data"]["ca.crt"])
    assert len(ca_certs) == 1
    bundle = _bundles(kube)[0]
    for replica in replicas:
        served = replica.serving.served
        assert served is not None
        assert served.leaf.issuer == ca_certs[0].subject
        assert _issued_by_bundle(served.leaf, bundle)
    first, second = (r.serving.served for r in replicas)
    assert first is not None and second is not None
    assert first.leaf.serial_number != second.leaf.serial_number


def test_two_served_replicas_verify_over_tls(kube: FakeKube, tmp_path: Path) -> None:
    servers = [
        ServingCertificates.self_managed(
            _options(resync_interval=0.2, retry_interval=0.2), kube.api_client()
        )
        for _ in range(2)
    ]
    with running_server(servers[0]) as port_a, running_server(servers[1]) as port_b:
        for serving in servers:
            _wait(serving.ready, "replica not ready")
        bundle = _bundles(kube)[0]
        ca_file = tmp_path / "bundle.pem"
        ca_file.write_bytes(base64.b64decode(bundle))
        serials = {
            handshake(port, client_context(ca_file)) for port in (port_a, port_b)
        }

    assert len(serials) == 2
    assert len(_bundle_certs(bundle)) == 1


def test_ca_rotation_publishes_before_signing(kube: FakeKube) -> None:
    clock = Clock(datetime.now(UTC))
    policy = CAPolicy(ca_lifetime=timedelta(days=6), leaf_lifetime=timedelta(days=1))
    replica = _replica(kube, clock, policy=policy)
    bundle_serials: list[list[int]] = []
    # 12 days in steps of 12 hours: CAs are promoted at days 5 and 9.
    for step in range(24):
        replica.step = step
        replica.manager.reconcile()
        bundle_serials.append(
            [c.serial_number for c in _bundle_certs(_bundles(kube)[0])]
        )
        clock.now += timedelta(hours=12)

    issuers: list[int] = []
    for (pair, trusted, bundles), step in zip(
        replica.installs, replica.install_steps, strict=True
    ):
        assert trusted
        # Every served leaf was signed by a CA that every caBundle held then,
        # and it ends no later than that CA.
        for bundle in bundles:
            assert _issued_by_bundle(pair.leaf, bundle)
        issuer = _issuing_ca(pair.leaf, bundles[0])
        assert issuer is not None
        assert pair.leaf.not_valid_after_utc <= issuer.not_valid_after_utc
        if issuers and issuers[-1] == issuer.serial_number:
            continue

        # The first leaf of a new CA: the bundle held the old and the new CA
        # already, and the new one had been published at an earlier step.
        if issuers:
            assert set(bundle_serials[step]) >= {issuers[-1], issuer.serial_number}
            published = min(
                i
                for i, serials in enumerate(bundle_serials)
                if issuer.serial_number in serials
            )
            assert published < step
        issuers.append(issuer.serial_number)

    assert len(issuers) == 3
    assert max(len(serials) for serials in bundle_serials) == 2
    assert len(bundle_serials[-1]) in (1, 2)


def _wait(condition: Callable[[], bool], message: str, timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)
