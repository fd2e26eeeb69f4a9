"""ClusterSecrets against the fake API server, through the real client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.certs import issue
from tests.harness.fakekube import FakeKube
from tests.harness.service import free_port
from webhook.admission.lookups import LookupStatus
from webhook.kube.config import new_api_client
from webhook.kube.secrets import ClusterSecrets

SENTINEL = "sentinel-value-4b7e"


@pytest.fixture(scope="module")
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        fake.add_secret("team-a", "db-creds", {"username": SENTINEL, "password": "p"})
        yield fake


@pytest.fixture
def secrets(kube: FakeKube, tmp_path: Path) -> ClusterSecrets:
    kube.clear_faults()
    kube.clear_denials()
    kube.clear_log()
    return ClusterSecrets(
        new_api_client(str(kube.write_kubeconfig(tmp_path / "config")))
    )


def test_found_keeps_key_names(secrets: ClusterSecrets, kube: FakeKube) -> None:
    result = secrets.fetch("team-a", "db-creds", 2.0)

    assert result.status is LookupStatus.FOUND
    assert result.keys == frozenset({"username", "password"})
    assert SENTINEL not in repr(result)
    assert kube.count(verb="get", resource="secrets", namespace="team-a") == 1
    assert secrets.answered


def test_missing_secret_not_found(secrets: ClusterSecrets) -> None:
    assert secrets.fetch("team-a", "nope", 2.0).status is LookupStatus.NOT_FOUND


def test_forbidden_keeps_status_message(
    secrets: ClusterSecrets, kube: FakeKube
) -> None:
    kube.deny("get", "secrets", namespace="team-a")

    result = secrets.fetch("team-a", "db-creds", 2.0)

    assert result.status is LookupStatus.FORBIDDEN
    assert "forbidden" in result.detail
    assert len(result.detail) <= 200


def test_server_error_is_error(secrets: ClusterSecrets, kube: FakeKube) -> None:
    kube.add_fault(verb="get", resource="secrets", status=500, message="etcd down")

    result = secrets.fetch("team-a", "db-creds", 2.0)

    assert result.status is LookupStatus.ERROR
    assert "HTTP 500" in result.detail
    assert "etcd down" in result.detail


def test_slow_api_times_out(secrets: ClusterSecrets, kube: FakeKube) -> None:
    kube.add_fault(verb="get", resource="secrets", latency=2.0, times=1)

    result = secrets.fetch("team-a", "db-creds", 0.3)

    assert result.status is LookupStatus.TIMEOUT


def test_no_retry_on_failure(secrets: ClusterSecrets, kube: FakeKube) -> None:
    kube.add_fault(verb="get", resource="secrets", status=503, retry_after=1)

    result = secrets.fetch("team-a", "db-creds", 2.0)

    assert result.status is LookupStatus.ERROR
    assert kube.count(verb="get", resource="secrets") == 1


def test_refused_connection_is_error(tmp_path: Path, kube: FakeKube) -> None:
    config = kube.write_kubeconfig(tmp_path / "config")
    text = config.read_text().replace(str(kube.port), str(free_port()))
    config.write_text(text)
    secrets = ClusterSecrets(new_api_client(str(config)))

    result = secrets.fetch("team-a", "db-creds", 1.0)

    assert result.status is LookupStatus.ERROR
    probe = secrets.probe(0.5)
    assert not probe.answered
    assert "connection refused" in probe.problem
    assert not secrets.answered


def test_probe_marks_answered(secrets: ClusterSecrets) -> None:
    assert not secrets.answered
    probe = secrets.probe(2.0)
    assert probe.answered
    assert probe.problem == ""
    assert secrets.answered


def test_probe_reports_rejected_token(tmp_path: Path, kube: FakeKube) -> None:
    config = kube.write_kubeconfig(tmp_path / "config", token="not-the-token")
    secrets = ClusterSecrets(new_api_client(str(config)))

    probe = secrets.probe(2.0)

    assert probe.answered
    assert "HTTP 401" in probe.problem
    assert "not-the-token" not in probe.problem


def test_probe_reports_unknown_ca(tmp_path: Path, kube: FakeKube) -> None:
    config = kube.write_kubeconfig(tmp_path / "config")
    other_ca = issue("other.example").ca_bundle
    text = re.sub(
        r"certificate-authority-data: \S+",
        f"certificate-authority-data: {other_ca}",
        config.read_text(),
    )
    config.write_text(text)
    secrets = ClusterSecrets(new_api_client(str(config)))

    probe = secrets.probe(2.0)
    lookup = secrets.fetch("team-a", "db-creds", 2.0)

    assert not probe.answered
    assert "certificate verify failed" in probe.problem
    assert "certificate verify failed" in lookup.detail
    assert not secrets.answered
