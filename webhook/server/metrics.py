"""Prometheus metrics of the service, in a registry owned by one app."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

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


@dataclass(frozen=True)
class Metrics:
    """The service's collectors and the registry that exports them."""

    registry: CollectorRegistry
    reviews: Counter
    review_seconds: Histogram
    lookups: Counter

    def count_lookup(self, result: str) -> None:
        self.lookups.labels(result=result).inc()


def new_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Create the collectors in `registry`, or in a fresh one.

    The service passes prometheus-client's default registry, so that /metrics
    also shows the process metrics and the certificate expiry gauge.
    """
    registry = registry or CollectorRegistry()
    reviews = Counter(
        "runai_secrets_webhook_reviews",
        "AdmissionReviews answered, by object kind, operation and outcome "
        "(allowed, patched, denied, error, malformed).",
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
    for result in LOOKUP_RESULTS:
        lookups.labels(result=result)
    return Metrics(registry, reviews, review_seconds, lookups)
