"""No secret value stays in the service's objects after it has used a secret.

The webhook reads a whole Secret to list its keys, and it reads a
cluster-wide source to copy it at admission. The controller reads sources
to copy them. Each test does that work against the fake API server and
then walks every object the component references.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.admission.builders import container, pod, review
from tests.harness.fakekube import FakeKube
from tests.heldvalues import held_values
from tests.propagation.conftest import (
    CLUSTER_WIDE,
    PROJECT,
    wait_for_copy,
)
from webhook.admission import InjectionOptions
from webhook.kube.lookups import SecretKeyLookups
from webhook.kube.secrets import ClusterSecrets
from webhook.propagation.clusterwide import build_cluster_wide_lookups
from webhook.propagation.controller import Controller
from webhook.server.logs import bind, review_fields
from webhook.server.pipeline import ReviewPipeline

PROJECT_NAMESPACE = "runai-team-a"


def planted() -> str:
    return f"planted-value-{secrets.token_hex(8)}"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def test_walk_finds_values_in_the_fake(fake_kube: FakeKube) -> None:
    """The walk finds a value where one is held, so an empty result means none."""
    value = planted()
    fake_kube.add_secret(PROJECT_NAMESPACE, "db", {"password": value})

    assert held_values(fake_kube.store, [value]) != []


def test_webhook_keeps_no_value(
    fake_kube: FakeKube, executor: ThreadPoolExecutor
) -> None:
    local, cluster_wide = planted(), planted()
    fake_kube.add_namespace(PROJECT_NAMESPACE, PROJECT)
    fake_kube.add_secret(PROJECT_NAMESPACE, "db", {"password": local})
    fake_kube.add_secret("runai", "regcred", {"auth": cluster_wide}, CLUSTER_WIDE)
    client = fake_kube.api_client()
    lookups = SecretKeyLookups(ClusterSecrets(client), executor, ttl=60)
    pipeline = ReviewPipeline(
        InjectionOptions(),
        [lookups.lookup],
        cached=lookups.cached_all,
        cluster_wide=build_cluster_wide_lookups(
            client, executor, request_timeout=5.0, copy_on_admission=True
        ),
    )
    job = pod(
        container(
            "main",
            {"name": "DB", "value": "SECRET:db,password"},
            {"name": "AUTH", "value": "SECRET:regcred,auth"},
        )
    )
    reviewed = review(job, namespace=PROJECT_NAMESPACE)
    log = bind(logging.getLogger("test"), review_fields(reviewed["request"]))

    for _ in range(2):
        decision = asyncio.run(pipeline(reviewed, time.monotonic() + 5.0, log))
        assert decision.allowed, decision.message

    # The copy made at admission contains the value, in the fake's store.
    copy = fake_kube.get("v1", "secrets", PROJECT_NAMESPACE, "regcred")
    assert held_values(copy, [cluster_wide]) != []
    assert held_values(pipeline, [local, cluster_wide]) == []


def test_controller_keeps_no_value(
    fake_kube: FakeKube, run_controller: Callable[..., Controller]
) -> None:
    first, second = planted(), planted()
    fake_kube.add_namespace(PROJECT_NAMESPACE, PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": first}, CLUSTER_WIDE)

    controller = run_controller()
    wait_for_copy(fake_kube, PROJECT_NAMESPACE)
    fake_kube.add_secret("runai", "regcred", {"auth": second}, CLUSTER_WIDE)
    wait_for_copy(
        fake_kube,
        PROJECT_NAMESPACE,
        where=lambda copy: held_values(copy, [second]) != [],
        message="the updated copy",
    )

    assert held_values(controller, [first, second]) == []
