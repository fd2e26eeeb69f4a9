"""Secret checks end to end: denials, deadline, single-flight and cache."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import Cluster, caller_for, start_cluster
from tests.e2e.pods import container, env_of, placeholder, pod, secret_ref
from tests.harness.apiserver import AdmissionResult
from webhook.tls.generate import CertificatePaths


def test_missing_secret_denied(cluster: Cluster) -> None:
    manifest = pod(container("main", placeholder("TOKEN", secret="api-token", key="t")))

    result = cluster.caller.admit(manifest, namespace="runai-team-a")

    assert not result.allowed
    assert result.code == 403
    assert (
        'Secret "api-token" was not found in namespace "runai-team-a"' in result.message
    )
    assert 'env var "TOKEN" in container "main"' in result.message


def test_missing_key_denied(cluster: Cluster) -> None:
    manifest = pod(container("main", placeholder("TOKEN", key="token")))

    result = cluster.caller.admit(manifest, namespace="runai-team-a")

    assert not result.allowed
    assert (
        'Secret "db-creds" in namespace "runai-team-a" has no key "token"'
        in result.message
    )
    # The other keys stay unnamed: the author may not be allowed to read them.
    assert "username" not in result.message
    assert "password" not in result.message


def test_api_error_denied_as_unavailable(cluster: Cluster) -> None:
    cluster.kube.add_fault(verb="get", resource="secrets", status=500, times=1)

    result = cluster.caller.admit(
        pod(container("main", placeholder("DB_USER"))), namespace="runai-team-a"
    )

    assert not result.allowed
    assert result.code == 503
    assert "the Kubernetes API failed" in result.message


def test_api_timeout_answered_in_deadline(cluster: Cluster) -> None:
    # timeoutSeconds 2 gives the review 1.6 s; the API takes 5 s.
    cluster.kube.add_fault(verb="get", resource="secrets", latency=5.0, times=1)
    with caller_for(
        cluster.service, cluster.kube, cluster.certificates, timeout_seconds=2
    ) as with_short_timeout:
        started = time.monotonic()
        result = with_short_timeout.admit(
            pod(container("main", placeholder("DB_USER"))), namespace="runai-team-a"
        )
        elapsed = time.monotonic() - started

    assert result.calls[-1].outcome == "denied", result.calls[-1].error
    assert "did not answer in time" in result.message
    assert result.code == 503
    assert elapsed < 2.0


@pytest.fixture(scope="module")
def cached_cluster(
    tmp_path_factory: pytest.TempPathFactory, certificates: CertificatePaths
) -> Iterator[Cluster]:
    """A webhook with a 30 s cache, so that a test cannot outlive an entry."""
    workdir = tmp_path_factory.mktemp("cached")
    with start_cluster(workdir, certificates, "--cache-ttl", "30") as started:
        yield started


def test_concurrent_reviews_share_call(cached_cluster: Cluster) -> None:
    kube = cached_cluster.kube
    kube.add_secret("runai-team-a", "shared-creds", {"username": "u"})
    kube.add_fault(verb="get", resource="secrets", name="shared-creds", latency=0.5)
    kube.clear_log()
    manifest = pod(container("main", placeholder("U", secret="shared-creds")))

    def admit(_: int) -> AdmissionResult:
        return cached_cluster.caller.admit(manifest, namespace="runai-team-a")

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(admit, range(6)))

    assert all(result.allowed for result in results), [r.message for r in results]
    assert kube.count(verb="get", resource="secrets", name="shared-creds") == 1


def test_second_review_served_from_cache(cached_cluster: Cluster) -> None:
    kube = cached_cluster.kube
    kube.add_secret("runai-team-a", "cached-creds", {"username": "u", "password": "p"})
    kube.clear_log()

    first = cached_cluster.caller.admit(
        pod(container("main", placeholder("U", secret="cached-creds"))),
        namespace="runai-team-a",
    )
    second = cached_cluster.caller.admit(
        pod(container("main", placeholder("P", secret="cached-creds", key="password"))),
        namespace="runai-team-a",
    )

    assert first.allowed, first.message
    assert second.allowed, second.message
    assert env_of(second) == [secret_ref("P", secret="cached-creds", key="password")]
    assert kube.count(verb="get", resource="secrets", name="cached-creds") == 1


def test_missing_key_rechecked_live(cached_cluster: Cluster) -> None:
    kube = cached_cluster.kube
    kube.add_secret("runai-team-a", "growing", {"username": "u"})
    kube.clear_log()
    cached_cluster.caller.admit(
        pod(container("main", placeholder("U", secret="growing"))),
        namespace="runai-team-a",
    )

    # The key appears after the first lookup cached the secret's key names.
    kube.add_secret("runai-team-a", "growing", {"username": "u", "token": "t"})
    result = cached_cluster.caller.admit(
        pod(container("main", placeholder("T", secret="growing", key="token"))),
        namespace="runai-team-a",
    )

    assert result.allowed, result.message
    assert kube.count(verb="get", resource="secrets", name="growing") == 2
