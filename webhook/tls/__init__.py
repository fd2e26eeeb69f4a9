"""Serving certificates: generation, reload and the self-managed CA."""
