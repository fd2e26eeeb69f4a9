"""Prometheus metrics of the propagation controller.

They live in prometheus-client's default registry, so `serve` exposes them on
its `/metrics` endpoint and `propagate` on its own metrics port.
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge

COPIES = Gauge(
    "runai_secrets_webhook_propagation_copies",
    "Copies of cluster-wide secrets by state, as of the last reconcile of each"
    " source: synced, conflict (a secret we did not create has the name) or"
    " failed (an API error).",
    ["state"],
)
CONFLICTS = Counter(
    "runai_secrets_webhook_propagation_conflicts_total",
    "Times a target namespace was found holding a secret of the source's name"
    " that the controller did not create.",
)
RECONCILES = Counter(
    "runai_secrets_webhook_propagation_reconciles_total",
    "Reconciles of one source by result: success, error or not_leader.",
    ["result"],
)
API_ERRORS = Counter(
    "runai_secrets_webhook_propagation_api_errors_total",
    "Failed Kubernetes API calls by operation.",
    ["operation"],
)
WATCH_RESTARTS = Counter(
    "runai_secrets_webhook_propagation_watch_restarts_total",
    "Watch restarts by watch and reason: expired, short, idle, gone, error.",
    ["watch", "reason"],
)
LEADER = Gauge(
    "runai_secrets_webhook_propagation_leader",
    "1 while this replica holds the propagation Lease, else 0.",
)
LAST_FULL_RESYNC = Gauge(
    "runai_secrets_webhook_propagation_last_full_resync_timestamp_seconds",
    "Unix time of the last full resync this replica started as leader.",
)

STATES = ("synced", "conflict", "failed")


class CopyStates:
    """Per-source copy counts, summed into the COPIES gauge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_source: dict[str, dict[str, int]] = {}

    def set(self, source: str, counts: dict[str, int]) -> None:
        with self._lock:
            if any(counts.values()):
                self._by_source[source] = counts
            else:
                self._by_source.pop(source, None)
            self._publish()

    def clear(self) -> None:
        with self._lock:
            self._by_source.clear()
            self._publish()

    def _publish(self) -> None:
        for state in STATES:
            total = sum(c.get(state, 0) for c in self._by_source.values())
            COPIES.labels(state=state).set(total)
