"""Fixtures of the chart tests."""

from tests.chart.fixtures import helm

__all__ = ["helm"]
