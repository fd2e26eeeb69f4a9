"""Fixtures for the chart tests: the helm binary, or a skip outside CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chart.helm import find_helm


@pytest.fixture(scope="session")
def helm() -> Path:
    """Path of the helm binary.

    Without helm the chart tests skip on a developer machine, but fail in CI
    (CI=true), where a missing helm means the install step broke.
    """
    found = find_helm()
    if found is not None:
        return found
    message = "helm not found: run `bash .ci/chart.sh --install-only` or set HELM"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
