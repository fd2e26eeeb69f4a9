"""Benchmark of the admission webhook against a minimal reference server.

Run it with `python -m bench` (see bench/README.md).
"""
