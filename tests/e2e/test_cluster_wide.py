"""`serve --cluster-wide-secrets` and `serve --propagate` as real processes.

Each test starts `python -m webhook serve` against its own fake API server
and admits jobs through the admission caller, so the request log of the fake
shows every read and write the webhook made.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.pods import container, pod, secret_ref
from tests.harness.admissionresult import AdmissionResult
from tests.harness.fakekube import FakeKube
from tests.harness.fixtures import fake_kube  # noqa: F401
from tests.harness.kubestatus import ApiError
from tests.harness.service import WebhookService
from tests.propagation.conftest import wait_for

SOURCE_NAMESPACE = "runai"
JOB_NAMESPACE = "runai-team-b"
PROJECT = {"runai/queue": "team-b"}
CLUSTER_WIDE = {"runai/cluster-wide": "true"}
LEASE_NAMESPACE = "runai-secrets-webhook"
LEASE_NAME = "serve-propagation"
SENTINEL = "sentinel-cluster-wide-token-7d2e"

# Short Lease and watch timings keep a test to a few seconds; the fake sends
# a bookmark every 0.2 s, well inside the idle timeout.
FAST_CONTROLLER = [
    "--lease-namespace", LEASE_NAMESPACE,
    "--lease-name", LEASE_NAME,
    "--identity", "serve-under-test",
    "--lease-duration", "2",
    "--renew-deadline", "1.5",
    "--retry-period", "0.3",
    "--watch-timeout", "30",
    "--watch-idle-timeout", "3",
    "--request-timeout", "5",
]  # fmt: skip


def job(secret: str = "regcred", key: str = "token") -> dict[str, Any]:
    reference = {"name": "TOKEN", "value": f"SECRET:{secret},{key}"}
    return pod(container("main", reference), namespace=JOB_NAMESPACE)


def secret_or_none(kube: FakeKube, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kube.get("v1", "secrets", namespace, name)
    except ApiError:
        return None


def secret_writes(kube: FakeKube) -> list[Any]:
    return [
        record
        for record in kube.requests
        if record.resource == "secrets"
        and record.verb in ("create", "update", "patch", "delete")
    ]


def assert_admitted_without_writes(kube: FakeKube, result: AdmissionResult) -> None:
    """Check that the job was admitted on the source's keys and nothing written."""
    assert result.allowed, result.message
    assert result.object is not None
    env = result.object["spec"]["containers"][0]["env"]
    assert env == [secret_ref("TOKEN", "regcred", "token")]
    # The source was read, so the request log covers this review.
    assert kube.count(verb="get", resource="secrets", namespace=SOURCE_NAMESPACE) >= 1
    assert secret_writes(kube) == []
    assert secret_or_none(kube, JOB_NAMESPACE, "regcred") is None


@pytest.fixture
def kube(fake_kube: FakeKube) -> FakeKube:  # noqa: F811
    fake_kube.add_namespace(SOURCE_NAMESPACE)
    fake_kube.add_namespace(JOB_NAMESPACE, PROJECT)
    fake_kube.add_secret(
        SOURCE_NAMESPACE, "regcred", {"token": SENTINEL}, labels=CLUSTER_WIDE
    )
    return fake_kube


@pytest.fixture
def webhook(kube: FakeKube, tmp_path: Path) -> Iterator[WebhookService]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "webhook-kubeconfig")
    args = ["--cluster-wide-secrets", "--cache-ttl", "0"]
    with WebhookService(args, kubeconfig=kubeconfig, directory=tmp_path) as service:
        kube.clear_log()
        yield service
    assert service.exit_code == 0
    assert SENTINEL not in service.logs()
    assert base64.b64encode(SENTINEL.encode()).decode() not in service.logs()


def test_uncopied_secret_admitted_and_copied(
    kube: FakeKube, webhook: WebhookService
) -> None:
    result = webhook.caller(kube=kube).admit(job(), namespace=JOB_NAMESPACE)

    assert result.allowed, result.message
    assert result.object is not None
    env = result.object["spec"]["containers"][0]["env"]
    assert env == [secret_ref("TOKEN", "regcred", "token")]
    copy = secret_or_none(kube, JOB_NAMESPACE, "regcred")
    assert copy is not None
    source = kube.get("v1", "secrets", SOURCE_NAMESPACE, "regcred")
    assert copy["data"] == source["data"]
    labels = copy["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "runai-secrets-webhook"
    assert labels["runai-secrets-webhook/source"] == "regcred"
    annotations = copy["metadata"]["annotations"]
    assert annotations["runai-secrets-webhook/source-uid"] == source["metadata"]["uid"]


def test_lookups_export_copy_counter_not_controller_metrics(
    kube: FakeKube, webhook: WebhookService
) -> None:
    result = webhook.caller(kube=kube).admit(job(), namespace=JOB_NAMESPACE)
    assert result.allowed, result.message

    status, metrics = webhook.get("/metrics")

    assert status == 200
    counter = b"runai_secrets_webhook_cluster_wide_admission_copies_total"
    assert counter + b'{result="created"} 1.0' in metrics
    # No controller runs here, so no leader status or resync time either.
    assert b"runai_secrets_webhook_propagation_" not in metrics


def test_dry_run_admitted_without_copy(kube: FakeKube, webhook: WebhookService) -> None:
    result = webhook.caller(kube=kube).admit(
        job(), namespace=JOB_NAMESPACE, dry_run=True
    )

    assert_admitted_without_writes(kube, result)


def test_key_missing_in_source_denied(kube: FakeKube, webhook: WebhookService) -> None:
    result = webhook.caller(kube=kube).admit(
        job(key="password"), namespace=JOB_NAMESPACE
    )

    assert not result.allowed
    # The key is checked in the source, so the denial names that namespace.
    assert (
        f'Secret "regcred" in namespace "{SOURCE_NAMESPACE}" has no key "password"'
        in result.message
    )
    assert (
        'Ask a cluster admin to add key "password" to the cluster-wide secret'
        in result.message
    )
    # A denied review writes nothing, not even the copy of a shared secret.
    assert secret_writes(kube) == []
    assert secret_or_none(kube, JOB_NAMESPACE, "regcred") is None


def test_unlabelled_source_denied_as_missing(
    kube: FakeKube, webhook: WebhookService
) -> None:
    kube.add_secret(SOURCE_NAMESPACE, "private", {"token": SENTINEL})

    result = webhook.caller(kube=kube).admit(
        job(secret="private"), namespace=JOB_NAMESPACE
    )

    assert not result.allowed
    assert (
        f'Secret "private" was not found in namespace "{JOB_NAMESPACE}"'
        in result.message
    )
    assert secret_writes(kube) == []


def test_copy_on_admission_off_writes_nothing(kube: FakeKube, tmp_path: Path) -> None:
    kubeconfig = kube.write_kubeconfig(tmp_path / "webhook-kubeconfig")
    args = [
        "--cluster-wide-secrets",
        "--no-cluster-wide-copy-on-admission",
        "--cache-ttl",
        "0",
    ]
    with WebhookService(args, kubeconfig=kubeconfig, directory=tmp_path) as service:
        kube.clear_log()

        result = service.caller(kube=kube).admit(job(), namespace=JOB_NAMESPACE)

    # Admitted on the key in the source; the controller makes the copy.
    assert_admitted_without_writes(kube, result)
    assert service.exit_code == 0


def test_rotated_token_reaches_resolver(kube: FakeKube, tmp_path: Path) -> None:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", token_file=True)
    args = ["--cluster-wide-secrets", "--cache-ttl", "0"]
    with WebhookService(args, kubeconfig=kubeconfig, directory=tmp_path) as service:
        kube.rotate_token("rotated-token")
        kube.clear_log()

        result = service.caller(kube=kube).admit(job(), namespace=JOB_NAMESPACE)

    assert result.allowed, result.message
    assert secret_or_none(kube, JOB_NAMESPACE, "regcred") is not None
    # Only the first read met the old token; the resolver used the new one.
    assert kube.count(status=401) == 1


def lease_holder(kube: FakeKube) -> str | None:
    try:
        lease = kube.get(
            "coordination.k8s.io/v1", "leases", LEASE_NAMESPACE, LEASE_NAME
        )
    except ApiError:
        return None
    holder: str | None = lease["spec"].get("holderIdentity")
    return holder


def test_propagate_copies_and_releases_lease(kube: FakeKube, tmp_path: Path) -> None:
    kube.add_namespace(LEASE_NAMESPACE)
    kube.add_namespace("runai-team-c", {"runai/queue": "team-c"})
    kubeconfig = kube.write_kubeconfig(tmp_path / "webhook-kubeconfig")
    service = WebhookService(
        ["--propagate", *FAST_CONTROLLER], kubeconfig=kubeconfig, directory=tmp_path
    )

    with service:
        copy = wait_for(
            lambda: secret_or_none(kube, "runai-team-c", "regcred"),
            timeout=15,
            message="the copy in runai-team-c",
        )
        assert lease_holder(kube) == "serve-under-test"
        # The controller's metrics share the webhook's /metrics endpoint.
        status, metrics = service.get("/metrics")
        assert status == 200
        assert b"runai_secrets_webhook_propagation_leader 1.0" in metrics
        assert service.stop() == 0

    labels = copy["metadata"]["labels"]
    assert labels["runai-secrets-webhook/source"] == "regcred"
    # A released Lease has no holder, so a standby takes over at once.
    assert lease_holder(kube) in (None, "")
    assert "propagation controller stopped" in service.logs()
    assert SENTINEL not in service.logs()


def test_secrets_dir_rejects_cluster_wide(tmp_path: Path) -> None:
    for flag in ("--cluster-wide-secrets", "--propagate"):
        service = WebhookService(
            ["--secrets-dir", str(tmp_path), flag],
            directory=tmp_path / flag.strip("-"),
            startup_seconds=10,
        )

        with pytest.raises(Exception, match="cannot be combined"):
            service.start()

        assert service.exit_code == 2
        assert f"{flag} reads and writes secrets" in service.logs()
        assert "--secrets-dir" in service.logs()


def test_workers_export_no_controller_metrics(kube: FakeKube, tmp_path: Path) -> None:
    # The chart runs the webhook like this, with the controller elsewhere.
    kubeconfig = kube.write_kubeconfig(tmp_path / "webhook-kubeconfig")
    args = ["--cluster-wide-secrets", "--workers", "2", "--cache-ttl", "0"]
    with WebhookService(args, kubeconfig=kubeconfig, directory=tmp_path) as service:
        result = service.caller(kube=kube).admit(job(), namespace=JOB_NAMESPACE)
        assert result.allowed, result.message

        status, metrics = service.get("/metrics")

    assert status == 200
    assert b"runai_secrets_webhook_cluster_wide_admission_copies_total" in metrics
    assert b'result="created"' in metrics
    # Importing the controller's module in a worker must not create series.
    assert b"runai_secrets_webhook_propagation_" not in metrics


def test_propagate_with_workers_rejected(tmp_path: Path) -> None:
    service = WebhookService(
        ["--propagate", "--workers", "2"], directory=tmp_path, startup_seconds=10
    )

    with pytest.raises(Exception, match="exited"):
        service.start()

    assert service.exit_code == 2
    logs = service.logs()
    assert "--propagate cannot be combined with --workers above 1" in logs
    assert "runai-secrets-webhook propagate" in logs
