"""Tests of the propagation of cluster-wide secrets."""
