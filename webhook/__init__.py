"""Mutating admission webhook for Run:AI secret references."""

__version__ = "0.1.0"
