"""Fixtures shared by the template tests: the helm binary from the chart tests."""

from tests.chart.conftest import helm  # noqa: F401 - pytest fixture
