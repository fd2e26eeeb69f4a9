"""Prometheus gauge with the expiry time of each certificate the server uses."""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from prometheus_client import CollectorRegistry, Gauge

EXPIRY_METRIC = "runai_secrets_webhook_certificate_expiry_timestamp_seconds"


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
        for stale in self._labels.get(role, set()) - serials:
            self._gauge.remove(role, stale)
        self._labels[role] = serials

    def clear(self) -> None:
        for role in list(self._labels):
            self.show(role, ())
