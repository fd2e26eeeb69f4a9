"""Self-managed certificates against the fake Kubernetes API server."""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry, generate_latest

from tests.harness.fakekube import FakeKube
from tests.harness.kubestore import resource
from tests.tls.inprocess import running_server
from tests.tls.support import (
    MUTATING,
    NAMESPACE,
    SECRET,
    VALIDATING,
    bundle_certs,
    ca_bundles,
    client_context,
    handshake,
    issued_by_bundle,
    issuing_ca,
    unsupported_curve_key,
)
from webhook.tls import pki
from webhook.tls.authority import CAPolicy
from webhook.tls.cluster import ClusterClient
from webhook.tls.metrics import EXPIRY_METRIC as EXPIRY
from webhook.tls.pairs import ServingPair
from webhook.tls.selfmanaged import SelfManagedCertificates, SelfManagedOptions
from webhook.tls.serving import ServingCertificates


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
        replica.installs.append((pair, trusted, ca_bundles(kube)))
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
    assert secret["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "runai-secrets-webhook",
        "app.kubernetes.io/component": "webhook-ca",
    }
    bundles = ca_bundles(kube) + ca_bundles(kube, "validatingwebhookconfigurations")
    assert bundles == [secret["data"]["ca.crt"]] * 3

    served = replica.serving.served
    assert served is not None
    assert replica.serving.ready()
    assert issued_by_bundle(served.leaf, bundles[0])
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
    expected = ca_bundles(kube)
    config = kube.get(
        "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", MUTATING
    )
    config["webhooks"][1]["clientConfig"]["caBundle"] = base64.b64encode(
        b"stale"
    ).decode()
    kube.preload([config])

    replica.manager.reconcile()

    assert ca_bundles(kube) == expected
    assert len(replica.installs) == 1


def test_two_replicas_end_with_one_ca(kube: FakeKube) -> None:
    replicas = [_replica(kube), _replica(kube)]
    # Slow creates make both replicas find no Secret before either writes
    # one, so both POST and the API server picks the winner.
    kube.add_fault(verb="create", resource="secrets", latency=1.0)
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
    creates = [
        r.status
        for r in kube.requests
        if r.verb == "create" and r.resource == "secrets"
    ]
    assert sorted(status or 0 for status in creates) == [201, 409]
    secret = kube.get("v1", "secrets", NAMESPACE, SECRET)
    ca_certs = bundle_certs(secret["data"]["ca.crt"])
    assert len(ca_certs) == 1
    bundle = ca_bundles(kube)[0]
    for replica in replicas:
        served = replica.serving.served
        assert served is not None
        assert served.leaf.issuer == ca_certs[0].subject
        assert issued_by_bundle(served.leaf, bundle)
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
        bundle = ca_bundles(kube)[0]
        ca_file = tmp_path / "bundle.pem"
        ca_file.write_bytes(base64.b64decode(bundle))
        serials = {
            handshake(port, client_context(ca_file)) for port in (port_a, port_b)
        }

    assert len(serials) == 2
    assert len(bundle_certs(bundle)) == 1


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
            [c.serial_number for c in bundle_certs(ca_bundles(kube)[0])]
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
            assert issued_by_bundle(pair.leaf, bundle)
        issuer = issuing_ca(pair.leaf, bundles[0])
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


def test_promoted_ca_waits_for_bundle(
    kube: FakeKube, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(datetime.now(UTC))
    policy = CAPolicy(ca_lifetime=timedelta(days=6), leaf_lifetime=timedelta(days=1))
    leader = _replica(kube, clock, policy=policy)
    follower = _replica(kube, clock, policy=policy)
    leader.manager.reconcile()
    follower.manager.reconcile()
    first_ca = bundle_certs(ca_bundles(kube)[0])[0]

    # The leader publishes the next CA at day 4 and promotes it at day 5;
    # the follower renews its leaf from the first CA in between.
    clock.now += timedelta(days=4, hours=1)
    leader.manager.reconcile()
    clock.now += timedelta(hours=12)
    follower.manager.reconcile()
    clock.now += timedelta(hours=12)
    leader.manager.reconcile()
    secret = kube.get("v1", "secrets", NAMESPACE, SECRET)
    promoted = x509.load_pem_x509_certificate(
        base64.b64decode(secret["data"]["tls.crt"])
    )
    assert promoted != first_ca

    # A stale writer leaves only the first CA in the bundle, and patches fail.
    config = kube.get(
        "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", MUTATING
    )
    for webhook in config["webhooks"]:
        webhook["clientConfig"]["caBundle"] = base64.b64encode(
            first_ca.public_bytes(serialization.Encoding.PEM)
        ).decode()
    kube.preload([config])
    fault = kube.add_fault(
        verb="patch", resource="mutatingwebhookconfigurations", status=500
    )
    installs_before = len(follower.installs)

    with caplog.at_level(logging.WARNING, logger="webhook.tls"):
        follower.manager.reconcile()

    assert len(follower.installs) == installs_before
    served = follower.serving.served
    assert served is not None
    served.leaf.verify_directly_issued_by(first_ca)
    assert follower.serving.ready()
    assert "waiting for every caBundle to trust the signing CA" in caplog.text

    kube.clear_faults()
    assert fault.hits > 0
    follower.manager.reconcile()
    pair, trusted, bundles = follower.installs[-1]
    assert trusted
    pair.leaf.verify_directly_issued_by(promoted)
    for bundle in bundles:
        assert promoted in bundle_certs(bundle)


def test_invalid_ca_secret_replaced(
    kube: FakeKube, caplog: pytest.LogCaptureFixture
) -> None:
    kube.add_secret(
        NAMESPACE, SECRET, {"tls.crt": "garbage"}, type_="kubernetes.io/tls"
    )
    replica = _replica(kube)

    with caplog.at_level(logging.ERROR, logger="webhook.tls"):
        replica.manager.reconcile()

    assert "CA Secret is invalid; replacing it with a new CA" in caplog.text
    secret = kube.get("v1", "secrets", NAMESPACE, SECRET)
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    served = replica.serving.served
    assert served is not None
    assert issued_by_bundle(served.leaf, ca_bundles(kube)[0])


def test_opaque_ca_secret_replaced_in_place(
    kube: FakeKube, caplog: pytest.LogCaptureFixture
) -> None:
    # Kubernetes does not allow an update to change a Secret's type, so a
    # Secret made with `kubectl create secret generic` keeps type Opaque.
    kube.add_secret(NAMESPACE, SECRET, {"note": "made by hand"})
    replica = _replica(kube)

    with caplog.at_level(logging.ERROR, logger="webhook.tls"):
        replica.manager.reconcile()

    assert "CA Secret is invalid; replacing it with a new CA" in caplog.text
    secret = kube.get("v1", "secrets", NAMESPACE, SECRET)
    assert secret["type"] == "Opaque"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    served = replica.serving.served
    assert served is not None
    assert issued_by_bundle(served.leaf, ca_bundles(kube)[0])


def test_opaque_ca_secret_rotates(kube: FakeKube) -> None:
    clock = Clock(datetime.now(UTC))
    policy = CAPolicy(ca_lifetime=timedelta(days=6), leaf_lifetime=timedelta(days=1))
    replica = _replica(kube, clock, policy=policy)
    replica.manager.reconcile()
    # The same CA, stored in a Secret of type Opaque.
    stored = kube.get("v1", "secrets", NAMESPACE, SECRET)
    kube.store.remove(resource("", "v1", "secrets"), NAMESPACE, SECRET)
    data = {key: base64.b64decode(value) for key, value in stored["data"].items()}
    kube.add_secret(NAMESPACE, SECRET, data)

    # Two thirds of the CA's life: the next CA joins the Secret.
    clock.now += timedelta(days=4, hours=1)
    replica.manager.reconcile()

    secret = kube.get("v1", "secrets", NAMESPACE, SECRET)
    assert secret["type"] == "Opaque"
    assert {"next.crt", "next.key"} <= set(secret["data"])


@pytest.mark.parametrize("ca_crt", [None, "not a certificate"])
def test_broken_bundle_key_keeps_signing_ca(
    kube: FakeKube, caplog: pytest.LogCaptureFixture, ca_crt: str | None
) -> None:
    # Other replicas serve leaves of this CA: replacing it over a missing or
    # garbled ca.crt would make kube-apiserver reject them until they renew.
    ca = pki.create_ca("kept CA", now=datetime.now(UTC), lifetime=timedelta(days=365))
    data = {"tls.crt": ca.cert_pem.decode(), "tls.key": ca.key_pem.decode()}
    if ca_crt is not None:
        data["ca.crt"] = ca_crt
    kube.add_secret(NAMESPACE, SECRET, data, type_="kubernetes.io/tls")
    replica = _replica(kube)

    with caplog.at_level(logging.WARNING, logger="webhook.tls"):
        replica.manager.reconcile()

    assert "replacing it with a new CA" not in caplog.text
    stored = kube.get("v1", "secrets", NAMESPACE, SECRET)
    kept = x509.load_pem_x509_certificate(base64.b64decode(stored["data"]["tls.crt"]))
    assert kept == ca.cert
    assert bundle_certs(stored["data"]["ca.crt"]) == [ca.cert]
    assert all(bundle_certs(bundle) == [ca.cert] for bundle in ca_bundles(kube))
    served = replica.serving.served
    assert served is not None
    served.leaf.verify_directly_issued_by(ca.cert)

    # Once repaired, the Secret is left alone.
    writes = kube.count(verb="update", resource="secrets")
    replica.manager.reconcile()
    assert writes == 1
    assert kube.count(verb="update", resource="secrets") == writes


def test_unsupported_curve_ca_key_replaced(
    kube: FakeKube, caplog: pytest.LogCaptureFixture
) -> None:
    ca = pki.create_ca("old CA", now=datetime.now(UTC), lifetime=timedelta(days=1))
    kube.add_secret(
        NAMESPACE,
        SECRET,
        {
            "tls.crt": ca.cert_pem.decode(),
            "tls.key": unsupported_curve_key().decode(),
            "ca.crt": ca.cert_pem.decode(),
        },
        type_="kubernetes.io/tls",
    )
    replica = _replica(kube)

    with caplog.at_level(logging.ERROR, logger="webhook.tls"):
        replica.manager.reconcile()

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "CA Secret is invalid; replacing it with a new CA"
    ]
    assert errors[0].__dict__["secret"] == SECRET
    assert "unsupported private key algorithm" in errors[0].__dict__["reason"]
    stored = kube.get("v1", "secrets", NAMESPACE, SECRET)
    signing = x509.load_pem_x509_certificate(
        base64.b64decode(stored["data"]["tls.crt"])
    )
    assert signing != ca.cert
    assert replica.serving.ready()
    served = replica.serving.served
    assert served is not None
    assert issued_by_bundle(served.leaf, ca_bundles(kube)[0])


def test_missing_configuration_does_not_block(
    kube: FakeKube, caplog: pytest.LogCaptureFixture
) -> None:
    replica = _replica(kube, validating_webhook_configuration="not-installed")

    with caplog.at_level(logging.WARNING, logger="webhook.tls"):
        replica.manager.reconcile()

    assert "webhook configuration not found" in caplog.text
    assert replica.serving.ready()
    assert all(ca_bundles(kube))


def test_expiry_gauge_shows_leaf_and_ca(kube: FakeKube) -> None:
    registry = CollectorRegistry()
    serving = ServingCertificates(registry=registry)
    cluster = ClusterClient(kube.api_client(), NAMESPACE, SECRET)
    manager = SelfManagedCertificates(_options(), cluster, serving.install)
    manager.install_bootstrap()
    assert registry.get_sample_value(
        EXPIRY, {"role": "serving", "serial": _serial(serving)}
    )

    manager.reconcile()

    served = serving.served
    assert served is not None
    leaf_expiry = registry.get_sample_value(
        EXPIRY, {"role": "serving", "serial": _serial(serving)}
    )
    assert leaf_expiry == served.leaf.not_valid_after_utc.timestamp()
    ca = bundle_certs(ca_bundles(kube)[0])[0]
    ca_expiry = registry.get_sample_value(
        EXPIRY, {"role": "ca", "serial": f"{ca.serial_number:x}"}
    )
    assert ca_expiry == ca.not_valid_after_utc.timestamp()
    exported = generate_latest(registry).decode()
    assert exported.count(f"{EXPIRY}{{") == 2


def _serial(serving: ServingCertificates) -> str:
    assert serving.served is not None
    return f"{serving.served.leaf.serial_number:x}"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"service_name": "Bad_Name"}, "invalid service name 'Bad_Name'"),
        ({"extra_ip_addresses": ("10.0.0.300",)}, "invalid IP address '10.0.0.300'"),
        ({"resync_interval": 0}, "invalid resync_interval 0 s"),
    ],
)
def test_options_reject_invalid_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _options(**overrides)
