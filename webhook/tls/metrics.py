"""Prometheus gauge with the expiry time of each certificate the server uses."""

from __future__ import annotations

import os
from collections.abc import Iterable

from cryptography import x509
from prometheus_client import CollectorRegistry, Gauge

EXPIRY_METRIC = "runai_secrets_webhook_certificate_expiry_timestamp_seconds"

# prometheus-client (0.26) runs in multiprocess mode when either variable is set.
MULTIPROCESS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def multiprocess_mode() -> bool:
    """Return whether prometheus-client writes samples to per-process files."""
    return any(name in os.environ for name in MULTIPROCESS_VARIABLES)


class ExpiryGauge:
    """Expiry gauge of one server, so that replaced certificates drop out."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._gauge = Gauge(
            EXPIRY_METRIC,
            "Expiry time (notAfter, Unix seconds) of each certificate the server "
            "uses: role=serving for the served leaf, role=ca for the CA that "
            "signed it (self-managed mode only).",
            ["role", "serial"],
            registry=registry if registry is not None else CollectorRegistry(),
        )
        self._labels: dict[str, set[str]] = {}

    def show(self, role: str, certs: Iterable[x509.Certificate]) -> None:
        """Set the gauge for role to exactly these certificates."""
        serials = set()
        for cert in certs:
            serial = f"{cert.serial_number:x}"
            serials.add(serial)
            self._gauge.labels(role=role, serial=serial).set(
                cert.not_valid_after_utc.timestamp()
            )
        # In multiprocess mode the client cannot drop a sample from its files
        # and logs a UserWarning on every remove(), at each reload and stop.
        # The replaced series then stays until the worker restarts.
        if not multiprocess_mode():
            for stale in self._labels.get(role, set()) - serials:
                self._gauge.remove(role, stale)
        self._labels[role] = serials

    def clear(self) -> None:
        for role in list(self._labels):
            self.show(role, ())
