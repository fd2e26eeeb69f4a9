"""Settings of the propagation controller and the names of its marks."""

from __future__ import annotations

from dataclasses import dataclass, field

# Run:AI's own names, fixed by Run:AI's documentation and not configurable.
CLUSTER_WIDE_LABEL = "runai/cluster-wide"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "runai-secrets-webhook"

# Secret types the controller does not copy: the token controller owns the
# contents of service account tokens and would rewrite or delete a copy.
UNSUPPORTED_TYPES = frozenset({"kubernetes.io/service-account-token"})


@dataclass(frozen=True)
class Marks:
    """Label and annotation keys derived from the annotation prefix."""

    prefix: str = "runai-secrets-webhook"

    @property
    def source_label(self) -> str:
        return f"{self.prefix}/source"

    @property
    def source_uid_annotation(self) -> str:
        return f"{self.prefix}/source-uid"

    @property
    def opt_out_label(self) -> str:
        return f"{self.prefix}/propagate"

    def copies_selector(self, source: str | None = None) -> str:
        """Return the label selector of every copy, or of the copies of one source."""
        if source is None:
            return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{self.source_label}"
        return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{self.source_label}={source}"


@dataclass(frozen=True)
class WatchTiming:
    """Timeouts of one watch connection, in seconds."""

    # Server-side `timeoutSeconds`: the API server ends the watch after it.
    server_timeout: int = 300
    # The client gives up this much later than the server should have.
    client_margin: float = 10.0
    # A watch that sends no event and no bookmark for this long is restarted.
    idle_timeout: float = 90.0
    connect_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


@dataclass(frozen=True)
class LeaseTiming:
    """Timing of the leader election Lease, in seconds."""

    duration: float = 15.0
    # The leader stops writing when it has not renewed for this long; it is
    # shorter than `duration` so a write in flight ends before others take over.
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def validate(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError(
                f"invalid lease timing: retry period {self.retry_period} s, renew "
                f"deadline {self.renew_deadline} s, duration {self.duration} s; "
                "expected 0 < retry period < renew deadline < duration"
            )


@dataclass(frozen=True)
class PropagationSettings:
    """Everything the controller and the webhook's resolver need to agree on."""

    source_namespace: str = "runai"
    project_label: str = "runai/queue"
    marks: Marks = field(default_factory=Marks)
    # Label and annotation keys copied from the source. An entry ending in
    # "/*" matches every key with that prefix. DENIED_KEYS still apply.
    copy_labels: tuple[str, ...] = ()
    copy_annotations: tuple[str, ...] = ()
    resync_period: float = 300.0
    # How often a source with a conflicting secret in some project is checked
    # again, so its copy appears once the other secret is gone.
    conflict_retry: float = 30.0
    request_timeout: float = 10.0
    watch: WatchTiming = field(default_factory=WatchTiming)
    lease: LeaseTiming = field(default_factory=LeaseTiming)
