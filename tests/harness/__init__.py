"""Test tools that play the cluster: a fake API server and an admission caller."""
