"""Test tools that play the cluster: a fake Kubernetes API server and an admission caller."""
