"""Fixtures of the TLS tests: the fake API server with webhook configurations."""

from __future__ import annotations

import pytest

from tests.harness.fakekube import FakeKube
from tests.harness.fixtures import fake_kube  # noqa: F401
from tests.tls.support import MUTATING, NAMESPACE, VALIDATING, webhook_configuration


@pytest.fixture
def kube(fake_kube: FakeKube) -> FakeKube:  # noqa: F811
    """The fake API server with the namespace and two webhook configurations."""
    fake_kube.add_namespace(NAMESPACE)
    fake_kube.preload(
        [
            webhook_configuration(
                "MutatingWebhookConfiguration",
                MUTATING,
                ["pods.secrets.run.ai", "workloads.secrets.run.ai"],
            ),
            webhook_configuration(
                "ValidatingWebhookConfiguration",
                VALIDATING,
                ["templates.secrets.run.ai"],
            ),
        ]
    )
    return fake_kube
