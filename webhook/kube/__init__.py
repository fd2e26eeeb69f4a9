"""Wrappers around the Kubernetes client: configuration and secret lookups."""
