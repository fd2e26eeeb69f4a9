"""Fixtures of the reliability tests: one fake cluster and service per module.

Starting the service takes about two seconds, so tests that leave no state
behind share one. A test that injects faults or denials into the shared fake
gets them cleared after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService
from tests.reliability.cluster import populate, running_service


@pytest.fixture(scope="module")
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        populate(fake)
        yield fake


@pytest.fixture(scope="module")
def service(
    kube: FakeKube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookService]:
    with running_service(kube, tmp_path_factory.mktemp("service")) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_fake(request: pytest.FixtureRequest) -> Iterator[None]:
    """Clear faults, denials and the request log of the shared fake after each test."""
    yield
    if "kube" in request.fixturenames:
        fake: FakeKube = request.getfixturevalue("kube")
        fake.clear_faults()
        fake.clear_denials()
        fake.clear_log()
