"""The review pipeline asks the cache first and looks up only the misses."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from webhook.admission.decisions import Decision
from webhook.admission.injection import InjectionOptions
from webhook.admission.lookups import SecretLookup
from webhook.admission.reviews import Review
from webhook.kube.lookups import SecretKeyLookups
from webhook.server.logs import bind
from webhook.server.pipeline import ReviewPipeline

NAMESPACE = "team-a"


class CountingSource:
    """A key source that finds every secret with both keys and logs calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def fetch(self, namespace: str, name: str, timeout: float) -> SecretLookup:
        self.calls.append(name)
        return SecretLookup.found(frozenset({"username", "password"}))


def review(*references: str) -> Review:
    env = [
        {"name": f"VAR_{index}", "value": f"SECRET:{reference}"}
        for index, reference in enumerate(references)
    ]
    request: dict[str, Any] = {
        "uid": "7b9f6c2e-0000-4000-8000-000000000001",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": NAMESPACE,
        "operation": "CREATE",
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "env": env}]},
        },
    }
    document = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }
    return document  # type: ignore[return-value]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(2)
    yield pool
    pool.shutdown(wait=False)


async def decide(pipeline: ReviewPipeline, document: Review) -> Decision:
    log = bind(logging.getLogger(__name__), {})
    return await pipeline(document, time.monotonic() + 5, log)


async def test_cached_secrets_skip_lookups(executor: ThreadPoolExecutor) -> None:
    source = CountingSource()
    results: list[str] = []
    lookups = SecretKeyLookups(
        source, executor, 60, lambda result, count: results.extend([result] * count)
    )
    resolver_calls: list[str] = []

    async def counting_lookup(
        namespace: str, name: str, keys: Collection[str], deadline: float
    ) -> SecretLookup:
        resolver_calls.append(name)
        return await lookups.lookup(namespace, name, keys, deadline)

    pipeline = ReviewPipeline(
        InjectionOptions(), [counting_lookup], cached=lookups.cached_all
    )

    first = await decide(pipeline, review("db,username", "s3,password"))
    second = await decide(pipeline, review("db,username", "s3,password"))
    third = await decide(pipeline, review("db,username", "new,password"))

    assert first.allowed
    assert second.allowed
    assert third.allowed
    assert sorted(source.calls) == ["db", "new", "s3"]
    assert sorted(resolver_calls) == ["db", "new", "s3"]
    assert results.count("cached") == 3


async def test_cached_needs_every_key(executor: ThreadPoolExecutor) -> None:
    lookups = SecretKeyLookups(CountingSource(), executor, 60)
    await lookups.lookup(NAMESPACE, "db", {"username"}, time.monotonic() + 5)

    assert lookups.cached(NAMESPACE, "db", {"username", "password"}) is not None
    assert lookups.cached(NAMESPACE, "db", {"token"}) is None
    assert lookups.cached(NAMESPACE, "other", {"username"}) is None
    assert lookups.cached("team-b", "db", {"username"}) is None
