"""The webhook's resolver for cluster-wide secrets missing from a project."""

from __future__ import annotations

import pytest

from tests.harness.fakekube import FakeKube
from tests.propagation.conftest import (
    CLUSTER_WIDE,
    PROJECT,
    fast_settings,
    secret,
    writes,
)
from webhook.propagation.api import KubeApi
from webhook.propagation.clusterwide import ClusterWideResolver

SENTINEL = "sentinel-value-never-logged"


@pytest.fixture
def resolver(fake_kube: FakeKube) -> ClusterWideResolver:
    fake_kube.add_namespace("runai-team-b", PROJECT)
    fake_kube.add_namespace("plain")
    fake_kube.add_secret(
        "runai", "regcred", {"auth": SENTINEL, "user": "u"}, CLUSTER_WIDE
    )
    fake_kube.add_secret("runai", "local", {"auth": "x"})
    return ClusterWideResolver(KubeApi(fake_kube.api_client(), 5.0), fast_settings())


def test_resolve_creates_copy(
    fake_kube: FakeKube, resolver: ClusterWideResolver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")

    keys = resolver.resolve("runai-team-b", "regcred", dry_run=False)

    assert keys == frozenset({"auth", "user"})
    copy = secret(fake_kube, "runai-team-b", "regcred")
    assert copy is not None
    assert copy["metadata"]["labels"]["runai-secrets-webhook/source"] == "regcred"
    assert copy["data"] == secret(fake_kube, "runai", "regcred")["data"]  # type: ignore[index]
    assert SENTINEL not in caplog.text


def test_resolve_dry_run_writes_nothing(
    fake_kube: FakeKube, resolver: ClusterWideResolver
) -> None:
    keys = resolver.resolve("runai-team-b", "regcred", dry_run=True)

    assert keys == frozenset({"auth", "user"})
    assert secret(fake_kube, "runai-team-b", "regcred") is None
    assert writes(fake_kube) == []


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("runai-team-b", "local"),
        ("runai-team-b", "missing"),
        ("plain", "regcred"),
        ("runai", "regcred"),
        ("absent", "regcred"),
    ],
    ids=[
        "not-cluster-wide",
        "no-source",
        "not-a-project",
        "source-namespace",
        "no-namespace",
    ],
)
def test_resolve_returns_none(
    fake_kube: FakeKube, resolver: ClusterWideResolver, namespace: str, name: str
) -> None:
    assert resolver.resolve(namespace, name, dry_run=False) is None
    assert writes(fake_kube) == []


def test_resolve_never_overwrites(
    fake_kube: FakeKube, resolver: ClusterWideResolver
) -> None:
    # The user's secret appears between the webhook's lookup and the resolver.
    users = fake_kube.add_secret("runai-team-b", "regcred", {"auth": "users-own"})

    resolver.resolve("runai-team-b", "regcred", dry_run=False)

    assert secret(fake_kube, "runai-team-b", "regcred") == users
