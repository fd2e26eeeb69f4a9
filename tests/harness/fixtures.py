"""pytest fixtures for the harness tools; import them in a conftest.py or test module.

Example::

    from tests.harness.fixtures import fake_kube  # noqa: F401

    def test_reads_secret(fake_kube):
        fake_kube.add_secret("team-a", "db", {"password": "x"})

`fake_kube` also points `KUBECONFIG` at the fake and removes the in-cluster
variables, so code under test that loads a default configuration reaches
the fake and never a real cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fakekube import FakeKube


@pytest.fixture
def fake_kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKube]:
    """Start a FakeKube with a kubeconfig at `tmp_path / "kubeconfig"`."""
    with FakeKube(bookmark_interval=0.2) as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
        yield kube
