"""Prometheus metrics of the propagation controller.

The collectors are created unregistered, so that a `serve` without the
controller exports none of them. `register_metrics` adds them to
prometheus-client's default registry when the controller starts, and then
`serve --propagate` exposes them on its `/metrics` endpoint and `propagate`
on its own metrics port. The webhook's cluster-wide lookups register only
`ADMISSION_COPIES`, with `register_admission_metrics`: a webhook that runs
no controller must not report a leader status or a resync time.
"""

from __future__ import annotations

import functools
import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

COPIES = Gauge(
    "runai_secrets_webhook_propagation_copies",
    "Copies of cluster-wide secrets by state, as of the last reconcile of each"
    " source: synced, conflict (a secret we did not create has the name) or"
    " failed (an API error).",
    ["state"],
    registry=None,
)
RECONCILES = Counter(
    "runai_secrets_webhook_propagation_reconciles_total",
    "Reconciles of one source by result: success, error or not_leader.",
    ["result"],
    registry=None,
)
API_ERRORS = Counter(
    "runai_secrets_webhook_propagation_api_errors_total",
    "Failed Kubernetes API calls by operation.",
    ["operation"],
    registry=None,
)
WATCH_RESTARTS = Counter(
    "runai_secrets_webhook_propagation_watch_restarts_total",
    "Watch restarts by watch and reason: expired, short, idle, gone, error.",
    ["watch", "reason"],
    registry=None,
)
ADMISSION_COPIES = Counter(
    "runai_secrets_webhook_cluster_wide_admission_copies_total",
    "Copies of cluster-wide secrets the webhook wrote for allowed reviews, by"
    " result: created, exists (a secret of the name was already there),"
    " skipped (the source changed since the lookup), late (the review's"
    " deadline passed first) or failed (an API error).",
    ["result"],
    registry=None,
)
ADMISSION_RESULTS = ("created", "exists", "skipped", "late", "failed")

STATES = ("synced", "conflict", "failed")


# The collectors without labels are built on first use, not at import. Such
# a collector gets its value when it is built, and in prometheus-client's
# multiprocess mode (`serve --workers`) every process that merely imports
# this module would write that value to the shared directory: each worker
# would export a leader status of 0.
@functools.cache
def conflicts() -> Counter:
    """Count the targets found holding a secret of the source's name."""
    return Counter(
        "runai_secrets_webhook_propagation_conflicts_total",
        "Times a target namespace was found holding a secret of the source's"
        " name that the controller did not create.",
        registry=None,
    )


@functools.cache
def leader() -> Gauge:
    """Report whether this replica holds the propagation Lease."""
    return Gauge(
        "runai_secrets_webhook_propagation_leader",
        "1 while this replica holds the propagation Lease, else 0.",
        registry=None,
    )


@functools.cache
def last_full_resync() -> Gauge:
    """Report when this replica last started a full resync as leader."""
    return Gauge(
        "runai_secrets_webhook_propagation_last_full_resync_timestamp_seconds",
        "Unix time of the last full resync this replica started as leader.",
        registry=None,
    )


def _controller_collectors() -> tuple[Counter | Gauge, ...]:
    return (
        COPIES,
        conflicts(),
        RECONCILES,
        API_ERRORS,
        WATCH_RESTARTS,
        leader(),
        last_full_resync(),
    )


_registered: set[tuple[str, int]] = set()
_register_lock = threading.Lock()


def _register_once(
    group: str, collectors: tuple[Counter | Gauge, ...], registry: CollectorRegistry
) -> None:
    with _register_lock:
        if (group, id(registry)) in _registered:
            return
        for collector in collectors:
            registry.register(collector)
        _registered.add((group, id(registry)))


def register_metrics(registry: CollectorRegistry = REGISTRY) -> None:
    """Add the controller's collectors to `registry`, once per registry."""
    _register_once("controller", _controller_collectors(), registry)


def register_admission_metrics(registry: CollectorRegistry = REGISTRY) -> None:
    """Add the webhook's copy counter to `registry`, once per registry."""
    _register_once("admission", (ADMISSION_COPIES,), registry)
    for result in ADMISSION_RESULTS:
        ADMISSION_COPIES.labels(result=result)


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
