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
from prometheus_client import REGISTRY

from tests.admission.builders import apply, container, pod, review
from tests.harness.fakekube import FakeKube
from tests.propagation.conftest import (
    CLUSTER_WIDE,
    PROJECT,
    secret,
    writes,
)
from webhook.admission import InjectionOptions
from webhook.admission.decisions import Decision
from webhook.admission.reviews import Review
from webhook.kube.lookups import SecretKeyLookups
from webhook.kube.secrets import ClusterSecrets
from webhook.propagation.clusterwide import build_cluster_wide_lookups
from webhook.server.logs import bind, review_fields
from webhook.server.pipeline import ReviewPipeline

JOB_NAMESPACE = "runai-team-b"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def new_pipeline(
    kube: FakeKube, executor: ThreadPoolExecutor, copy_on_admission: bool = True
) -> ReviewPipeline:
    client = kube.api_client()
    local = SecretKeyLookups(ClusterSecrets(client), executor, ttl=0)
    cluster_wide = build_cluster_wide_lookups(
        client, executor, request_timeout=5.0, copy_on_admission=copy_on_admission
    )
    return ReviewPipeline(InjectionOptions(), [local.lookup], cluster_wide=cluster_wide)


def run_review(
    pipeline: ReviewPipeline, reviewed: Review, seconds: float = 5.0
) -> Decision:
    log = bind(logging.getLogger("test"), review_fields(reviewed["request"]))
    return asyncio.run(pipeline(reviewed, time.monotonic() + seconds, log))


def admit(
    kube: FakeKube, executor: ThreadPoolExecutor, dry_run: bool
) -> tuple[Decision, object]:
    job = pod(container("main", {"name": "AUTH", "value": "SECRET:regcred,auth"}))
    reviewed = review(job, namespace=JOB_NAMESPACE, dry_run=dry_run)
    decision = run_review(new_pipeline(kube, executor), reviewed)
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


def test_denied_review_writes_no_copy(
    cluster: FakeKube, executor: ThreadPoolExecutor
) -> None:
    job = pod(
        container(
            "main",
            {"name": "AUTH", "value": "SECRET:regcred,auth"},
            {"name": "OTHER", "value": "SECRET:missing,x"},
        )
    )

    decision = run_review(
        new_pipeline(cluster, executor), review(job, namespace=JOB_NAMESPACE)
    )

    assert not decision.allowed
    assert '"missing"' in decision.message
    # regcred alone would be admitted, but the review as a whole is denied.
    assert secret(cluster, JOB_NAMESPACE, "regcred") is None
    assert writes(cluster) == []


def test_source_timeout_names_source_and_never_writes(
    cluster: FakeKube, executor: ThreadPoolExecutor
) -> None:
    # Each read in the source namespace takes longer than the whole review.
    cluster.add_fault(namespace="runai", latency=1.2)
    job = pod(container("main", {"name": "AUTH", "value": "SECRET:regcred,auth"}))

    decision = run_review(
        new_pipeline(cluster, executor), review(job, namespace=JOB_NAMESPACE), 0.5
    )

    assert not decision.allowed
    assert 'secret "regcred" in namespace "runai"' in decision.message
    assert "retrying the request is safe" in decision.message
    # The read left running in the pool finishes, and nothing follows it.
    time.sleep(2.0)
    assert writes(cluster) == []


def test_copy_log_lines_carry_review_fields(
    cluster: FakeKube, executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    decision, _ = admit(cluster, executor, dry_run=False)

    assert decision.allowed, decision.message
    [line] = [r for r in caplog.records if r.message == "copy created on admission"]
    assert line.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"  # type: ignore[attr-defined]
    assert line.kind == "Pod"  # type: ignore[attr-defined]
    assert line.operation == "CREATE"  # type: ignore[attr-defined]
    assert line.secret == "regcred"  # type: ignore[attr-defined]


def test_failed_copy_still_admits_and_logs_error(
    cluster: FakeKube, executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.add_fault(verb="create", resource="secrets", status=500)
    before = copies_counted("failed")

    decision, _ = admit(cluster, executor, dry_run=False)

    assert decision.allowed, decision.message
    assert copies_counted("failed") == before + 1
    [line] = [r for r in caplog.records if r.message == "copy on admission failed"]
    assert line.levelno == logging.ERROR
    assert line.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"  # type: ignore[attr-defined]
    assert "500" in line.error  # type: ignore[attr-defined]


def test_copy_on_admission_off_writes_nothing(
    cluster: FakeKube, executor: ThreadPoolExecutor
) -> None:
    job = pod(container("main", {"name": "AUTH", "value": "SECRET:regcred,auth"}))
    pipeline = new_pipeline(cluster, executor, copy_on_admission=False)

    decision = run_review(pipeline, review(job, namespace=JOB_NAMESPACE))

    # Admitted on the source's keys; the controller makes the copy later.
    assert decision.allowed, decision.message
    assert writes(cluster) == []


def copies_counted(result: str) -> float:
    value = REGISTRY.get_sample_value(
        "runai_secrets_webhook_cluster_wide_admission_copies_total",
        {"result": result},
    )
    return value or 0.0
