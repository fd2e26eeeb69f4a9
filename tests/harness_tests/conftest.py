"""Fixtures shared by the harness tools' own tests."""

from tests.harness.fixtures import fake_kube

__all__ = ["fake_kube"]
