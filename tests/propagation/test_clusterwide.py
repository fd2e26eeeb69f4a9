"""The webhook's resolver for cluster-wide secrets missing from a project."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.harness.fakekube import FakeKube
from tests.propagation.conftest import (
    CLUSTER_WIDE,
    PROJECT,
    fast_settings,
    secret,
    writes,
)
from webhook.admission.lookups import LookupStatus
from webhook.propagation.api import KubeApi
from webhook.propagation.clusterwide import (
    ClusterWideLookups,
    ClusterWideResolver,
    CopyResult,
)

SENTINEL = "sentinel-value-never-logged"
# A deadline no test reaches, as a time.monotonic() value.
FAR = float("inf")


@pytest.fixture
def resolver(fake_kube: FakeKube) -> ClusterWideResolver:
    fake_kube.add_namespace("runai-team-b", PROJECT)
    fake_kube.add_namespace("plain")
    fake_kube.add_secret(
        "runai", "regcred", {"auth": SENTINEL, "user": "u"}, CLUSTER_WIDE
    )
    fake_kube.add_secret("runai", "local", {"auth": "x"})
    return ClusterWideResolver(KubeApi(fake_kube.api_client(), 5.0), fast_settings())


def test_resolve_reads_only(
    fake_kube: FakeKube, resolver: ClusterWideResolver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")

    keys = resolver.resolve("runai-team-b", "regcred")

    assert keys == frozenset({"auth", "user"})
    # The copy is written only after the whole review is allowed.
    assert secret(fake_kube, "runai-team-b", "regcred") is None
    assert writes(fake_kube) == []
    assert SENTINEL not in caplog.text


def test_create_copy(
    fake_kube: FakeKube, resolver: ClusterWideResolver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")

    result = resolver.create_copy("runai-team-b", "regcred", FAR, time.monotonic)

    assert result is CopyResult.CREATED
    copy = secret(fake_kube, "runai-team-b", "regcred")
    assert copy is not None
    assert copy["metadata"]["labels"]["runai-secrets-webhook/source"] == "regcred"
    assert copy["data"] == secret(fake_kube, "runai", "regcred")["data"]  # type: ignore[index]
    assert SENTINEL not in caplog.text


def test_create_copy_after_deadline_writes_nothing(
    fake_kube: FakeKube, resolver: ClusterWideResolver
) -> None:
    # The clock is read after the source: the deadline passed during that read.
    result = resolver.create_copy("runai-team-b", "regcred", 5.0, lambda: 10.0)

    assert result is CopyResult.LATE
    assert writes(fake_kube) == []


def test_create_copy_of_unlabelled_source_skipped(
    fake_kube: FakeKube, resolver: ClusterWideResolver
) -> None:
    result = resolver.create_copy("runai-team-b", "local", FAR, time.monotonic)

    assert result is CopyResult.SKIPPED
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
    assert resolver.resolve(namespace, name) is None
    assert writes(fake_kube) == []


def test_resolve_never_overwrites(
    fake_kube: FakeKube, resolver: ClusterWideResolver
) -> None:
    # The user's secret appears between the webhook's lookup and the resolver.
    users = fake_kube.add_secret("runai-team-b", "regcred", {"auth": "users-own"})

    result = resolver.create_copy("runai-team-b", "regcred", FAR, time.monotonic)

    assert result is CopyResult.EXISTS
    assert secret(fake_kube, "runai-team-b", "regcred") == users


class SlowResolver:
    """Return key names after `delay` seconds per read, counting the reads."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.reads = 0

    def resolve(self, namespace: str, name: str) -> frozenset[str] | None:
        self.reads += 1
        time.sleep(self.delay)
        return frozenset({"auth"})


async def test_lookup_queued_past_deadline_made_no_call() -> None:
    resolver = SlowResolver(delay=1.0)
    with ThreadPoolExecutor(max_workers=1) as executor:
        lookups = ClusterWideLookups(resolver, executor, "runai")  # type: ignore[arg-type]
        busy = asyncio.create_task(
            lookups.lookup("runai-team-b", "first", {"auth"}, time.monotonic() + 5)
        )
        await asyncio.sleep(0.1)

        queued = await lookups.lookup(
            "runai-team-b", "second", {"auth"}, time.monotonic() + 0.2
        )
        first = await busy

    assert first.status is LookupStatus.FOUND
    assert queued.status is LookupStatus.TIMEOUT
    assert not queued.api_called
    assert "no lookup thread was free" in queued.detail
    assert queued.namespace == "runai"


async def test_slow_read_past_deadline_was_called() -> None:
    resolver = SlowResolver(delay=0.5)
    with ThreadPoolExecutor(max_workers=1) as executor:
        lookups = ClusterWideLookups(resolver, executor, "runai")  # type: ignore[arg-type]
        answer = await lookups.lookup(
            "runai-team-b", "slow", {"auth"}, time.monotonic() + 0.1
        )

    assert answer.status is LookupStatus.TIMEOUT
    assert answer.api_called
    assert resolver.reads == 1
