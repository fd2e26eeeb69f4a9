"""Reviews of jobs that reference cluster-wide secrets without a copy yet.

The review runs through the service's own pipeline: the lookup in the job's
namespace first, then the cluster-wide resolver, against the fake API server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.admission.builders import apply, container, pod, review
from tests.harness.fakekube import FakeKube
from tests.propagation.conftest import (
    CLUSTER_WIDE,
    PROJECT,
    fast_settings,
    secret,
    writes,
)
from webhook.admission import InjectionOptions
from webhook.admission.decisions import Decision
from webhook.kube.lookups import SecretKeyLookups
from webhook.kube.secrets import ClusterSecrets
from webhook.propagation.api import KubeApi
from webhook.propagation.clusterwide import ClusterWideLookups, ClusterWideResolver
from webhook.server.logs import bind
from webhook.server.pipeline import ReviewPipeline

JOB_NAMESPACE = "runai-team-b"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def admit(
    kube: FakeKube, executor: ThreadPoolExecutor, dry_run: bool
) -> tuple[Decision, object]:
    client = kube.api_client()
    settings = fast_settings()
    local = SecretKeyLookups(ClusterSecrets(client), executor, ttl=0)
    cluster_wide = ClusterWideLookups(
        ClusterWideResolver(KubeApi(client, 5.0), settings), executor, "runai"
    )
    pipeline = ReviewPipeline(
        InjectionOptions(), [local.lookup, cluster_wide.for_review(dry_run)]
    )
    job = pod(container("main", {"name": "AUTH", "value": "SECRET:regcred,auth"}))
    reviewed = review(job, namespace=JOB_NAMESPACE, dry_run=dry_run)
    log = bind(logging.getLogger("test"), {})
    decision = asyncio.run(pipeline(reviewed, time.monotonic() + 5, log))
    return decision, apply(reviewed, decision)


@pytest.fixture
def cluster(fake_kube: FakeKube) -> FakeKube:
    fake_kube.add_namespace(JOB_NAMESPACE, PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": "token"}, CLUSTER_WIDE)
    return fake_kube


def test_job_admitted_and_copy_created(
    cluster: FakeKube, executor: ThreadPoolExecutor
) -> None:
    decision, patched = admit(cluster, executor, dry_run=False)

    assert decision.allowed, decision.message
    env = patched["spec"]["containers"][0]["env"]  # type: ignore[index]
    assert env == [
        {
            "name": "AUTH",
            "valueFrom": {"secretKeyRef": {"name": "regcred", "key": "auth"}},
        }
    ]
    copy = secret(cluster, JOB_NAMESPACE, "regcred")
    assert copy is not None
    assert (
        copy["metadata"]["labels"]["app.kubernetes.io/managed-by"]
        == "runai-secrets-webhook"
    )


def test_dry_run_admitted_without_copy(
    cluster: FakeKube, executor: ThreadPoolExecutor
) -> None:
    decision, _ = admit(cluster, executor, dry_run=True)

    assert decision.allowed, decision.message
    assert secret(cluster, JOB_NAMESPACE, "regcred") is None
    assert writes(cluster) == []


def test_unlabelled_source_still_denied(
    cluster: FakeKube, executor: ThreadPoolExecutor
) -> None:
    source = cluster.get("v1", "secrets", "runai", "regcred")
    source["metadata"]["labels"] = {}
    cluster.store.put(source)

    decision, _ = admit(cluster, executor, dry_run=False)

    assert not decision.allowed
    assert "regcred" in decision.message
    assert secret(cluster, JOB_NAMESPACE, "regcred") is None
