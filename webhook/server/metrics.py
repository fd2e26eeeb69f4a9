"""Prometheus metrics of the service, in a registry owned by one app."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess

# prometheus-client switches to multiprocess mode when this variable is set
# at its first import.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# A review with warm caches takes about a millisecond (measured on the
# examples), and an API call adds tens of milliseconds. The top bucket is
# kube-apiserver's maximum webhook timeoutSeconds, 30 s.
LATENCY_BUCKETS_SECONDS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
LOOKUP_RESULTS = ("cached", "fetched", "not_found", "forbidden", "error")

# Label values of the reviews counter. Any client that reaches /mutate
# chooses the kind and operation, so values outside these sets are counted
# as "other" to keep the number of series bounded.
REVIEW_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
REVIEW_OUTCOMES = frozenset(
    {"allowed", "patched", "denied", "error", "malformed", "shed"}
)
OTHER = "other"


@dataclass(frozen=True)
class Metrics:
    """The service's collectors and the registry that exports them."""

    registry: CollectorRegistry
    reviews: Counter
    review_seconds: Histogram
    lookups: Counter

    # Labelled children by label values. labels() checks and locks on every
    # call, about 5% of the CPU time of a review with a warm cache.
    _children: dict[tuple[Counter, tuple[str, ...]], Counter] = field(
        default_factory=dict, repr=False, compare=False
    )
    # The lookup counter's children by result, so a count skips the labels.
    _lookup_children: dict[str, Counter] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for result in LOOKUP_RESULTS:
            self._lookup_children[result] = self.lookups.labels(result)

    def review_counter(self, kind: str, operation: str, outcome: str) -> Counter:
        """Return the reviews counter's child for these label values.

        A caller that counts one combination often keeps the child, because
        `count_review` picks it again on every call.
        """
        return self._child(self.reviews, (kind, operation, outcome))

    def count_lookup(self, result: str, count: int = 1) -> None:
        child = self._lookup_children.get(result)
        if child is None:
            child = self._child(self.lookups, (result,))
        child.inc(count)

    def _child(self, counter: Counter, values: tuple[str, ...]) -> Counter:
        key = (counter, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*values)
        return child

    def count_review(
        self, kind: str, operation: str, outcome: str, known_kinds: Collection[str]
    ) -> None:
        """Count one review, with `kind` "other" unless it is in `known_kinds`.

        Bounding the values also bounds the cache of labelled children.
        """
        values = (
            kind if kind in known_kinds else OTHER,
            operation if operation in REVIEW_OPERATIONS else OTHER,
            outcome if outcome in REVIEW_OUTCOMES else OTHER,
        )
        self._child(self.reviews, values).inc()


def new_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Create the collectors in `registry`, or in a fresh one.

    The service passes prometheus-client's default registry, so that /metrics
    also shows the process metrics and the certificate expiry gauge.
    """
    registry = registry or CollectorRegistry()
    reviews = Counter(
        "runai_secrets_webhook_reviews",
        "AdmissionReviews answered, by object kind (built-in and configured "
        "kinds, else other), operation and outcome (allowed, patched, denied, "
        "error, malformed, shed).",
        ["kind", "operation", "outcome"],
        registry=registry,
    )
    review_seconds = Histogram(
        "runai_secrets_webhook_review_duration_seconds",
        "Time from receiving an AdmissionReview to sending the response.",
        buckets=LATENCY_BUCKETS_SECONDS,
        registry=registry,
    )
    lookups = Counter(
        "runai_secrets_webhook_secret_lookups",
        "Secret key lookups, by result (cached, fetched, not_found, forbidden, error).",
        ["result"],
        registry=registry,
    )
    return Metrics(registry, reviews, review_seconds, lookups)


def exported_registry(registry: CollectorRegistry) -> CollectorRegistry:
    """Return the registry that /metrics exports.

    That is `registry`, unless prometheus-client runs in multiprocess mode
    (`serve --workers` above 1 sets PROMETHEUS_MULTIPROC_DIR). Then each
    scrape reads every worker's sample files, so any worker returns the sum.
    """
    if MULTIPROCESS_DIR_VARIABLE not in os.environ:
        return registry
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    return combined
