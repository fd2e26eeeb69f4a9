"""Propagation of cluster-wide secrets from the runai namespace to projects."""
