"""Let the webhook accept references to cluster-wide secrets not yet copied.

When a job references a secret that is missing from its namespace, the
webhook's lookup calls `ClusterWideLookups.lookup`. The secret counts as
found when the source namespace has a secret of that name with the
`runai/cluster-wide: "true"` label and the job's namespace is a project; the
key is checked in the source. The lookup only reads.

The copy is written afterwards by `ClusterWideLookups.write_copies`, which
the webhook calls only once the whole review is allowed and is not a dry
run, so a denied review writes nothing. The write is best effort: the
review stays allowed when it fails, because the controller makes the copy
on its next reconcile and the kubelet waits for the secret until then.

The create never overwrites: a secret that appeared in the meantime makes
the API return 409 and stays as it is. The copy carries the same marks as the
controller's copies, so the controller keeps it in sync and removes it when
the source or the project label goes away.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Executor
from enum import StrEnum

from kubernetes.client import ApiClient
from prometheus_client import REGISTRY, CollectorRegistry

from webhook.admission.lookups import LookupStatus, SecretLookup
from webhook.kube.lookups import NO_THREAD_FREE, NO_TIME_LEFT
from webhook.propagation.api import API_FAILURES, KubeApi, describe, status_of
from webhook.propagation.copies import (
    Object,
    build_copy,
    is_cluster_wide,
    is_supported,
)
from webhook.propagation.metrics import ADMISSION_COPIES, register_admission_metrics
from webhook.propagation.settings import Marks, PropagationSettings
from webhook.propagation.targets import NamespaceInfo, is_target

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class CopyResult(StrEnum):
    """Outcome of one copy written at admission."""

    CREATED = "created"
    # A secret of that name appeared since the lookup; it is left as it is.
    EXISTS = "exists"
    # The source lost its label or was deleted since the lookup.
    SKIPPED = "skipped"
    # The review's deadline came before the create was sent.
    LATE = "late"
    FAILED = "failed"


class ClusterWideResolver:
    """The blocking reads and the create, on the Kubernetes API."""

    def __init__(self, api: KubeApi, settings: PropagationSettings) -> None:
        self._api = api
        self._settings = settings

    def resolve(self, namespace: str, name: str) -> frozenset[str] | None:
        """Return the key names of cluster-wide secret `name` for `namespace`.

        Returns None when no cluster-wide secret of that name applies to the
        namespace, so the caller reports the secret as missing. Only key names
        leave this function; the values are dropped with the response.
        Raises the API errors of the reads.
        """
        source = self._applicable_source(namespace, name)
        if source is None:
            return None
        return frozenset((source.get("data") or {}).keys())

    def create_copy(
        self, namespace: str, name: str, deadline: float, clock: Clock
    ) -> CopyResult:
        """Create the copy of `name` in `namespace` unless `deadline` has passed.

        The source is read again here, so that no secret value is held while
        the review is decided. Raises the API errors of the calls.
        """
        source = self._applicable_source(namespace, name)
        if source is None:
            return CopyResult.SKIPPED
        # A call that outlived the review must not write, because the review
        # may already have been denied with "nothing was changed".
        if clock() >= deadline:
            return CopyResult.LATE
        try:
            self._api.create_secret(
                namespace, build_copy(source, namespace, self._settings)
            )
        except API_FAILURES as error:
            if status_of(error) == 409:
                return CopyResult.EXISTS
            raise
        return CopyResult.CREATED

    def _applicable_source(self, namespace: str, name: str) -> Object | None:
        settings = self._settings
        if namespace == settings.source_namespace:
            return None
        source = self._api.get_secret(settings.source_namespace, name)
        if source is None or not is_cluster_wide(source) or not is_supported(source):
            return None
        target = self._api.get_namespace(namespace)
        if target is None or not is_target(NamespaceInfo.from_object(target), settings):
            return None
        return source


class ClusterWideLookups:
    """The resolver in the shape of `webhook.kube.lookups.Resolver`, plus copies.

    The blocking client runs in `executor`. With `copy_on_admission` off,
    `write_copies` writes nothing and the controller makes every copy.
    """

    def __init__(
        self,
        resolver: ClusterWideResolver,
        executor: Executor,
        source_namespace: str,
        copy_on_admission: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        self._resolver = resolver
        self._executor = executor
        self.source_namespace = source_namespace
        self.copy_on_admission = copy_on_admission
        self._clock = clock

    async def lookup(
        self, namespace: str, name: str, keys: Collection[str], deadline: float
    ) -> SecretLookup:
        """Return FOUND with the source's key names and namespace, or why not.

        `deadline` is a `clock()` value. A read still running when the
        deadline passes finishes in the background and writes nothing.
        """
        remaining = deadline - self._clock()
        if remaining <= 0:
            return self._failed_at_source(
                LookupStatus.TIMEOUT, NO_TIME_LEFT, api_called=False
            )
        loop = asyncio.get_running_loop()
        started = threading.Event()

        def resolve() -> frozenset[str] | None:
            started.set()
            return self._resolver.resolve(namespace, name)

        try:
            found = await asyncio.wait_for(
                loop.run_in_executor(self._executor, resolve), remaining
            )
        except TimeoutError:
            if not started.is_set():
                # Every thread stayed busy, so the API was never called.
                return self._failed_at_source(
                    LookupStatus.TIMEOUT, NO_THREAD_FREE, api_called=False
                )
            return self._failed_at_source(
                LookupStatus.TIMEOUT, "the cluster-wide secret lookup timed out"
            )
        except API_FAILURES as error:
            return self._failed(error)
        if found is None:
            return SecretLookup.not_found()
        return SecretLookup.found(found, namespace=self.source_namespace)

    async def write_copies(
        self,
        namespace: str,
        names: Collection[str],
        deadline: float,
        log: logging.LoggerAdapter,  # type: ignore[type-arg]
    ) -> None:
        """Create the copies of `names` in `namespace` for an allowed review.

        An API error or a late write is logged and counted instead of
        raised, so the review stays allowed; the controller makes the copy.
        """
        if not self.copy_on_admission:
            return
        await asyncio.gather(
            *(self._write_copy(namespace, name, deadline, log) for name in names)
        )

    async def _write_copy(
        self,
        namespace: str,
        name: str,
        deadline: float,
        log: logging.LoggerAdapter,  # type: ignore[type-arg]
    ) -> None:
        fields = {"namespace": namespace, "secret": name}
        remaining = deadline - self._clock()
        error = ""
        if remaining <= 0:
            result = CopyResult.LATE
        else:
            loop = asyncio.get_running_loop()
            call = functools.partial(
                self._resolver.create_copy, namespace, name, deadline, self._clock
            )
            try:
                result = await asyncio.wait_for(
                    loop.run_in_executor(self._executor, call), remaining
                )
            except TimeoutError:
                result = CopyResult.LATE
            except API_FAILURES as failure:
                result, error = CopyResult.FAILED, describe(failure)
        ADMISSION_COPIES.labels(result=result.value).inc()
        if result is CopyResult.CREATED:
            log.info("copy created on admission", extra=fields)
        elif result in (CopyResult.LATE, CopyResult.FAILED):
            # The review stays allowed: the pod waits for the secret until
            # the controller's next reconcile creates it.
            log.error(
                "copy on admission failed",
                extra={**fields, "result": result.value, "error": error},
            )
        else:
            log.info(
                "copy on admission not needed", extra={**fields, "result": result.value}
            )

    def _failed(self, error: BaseException) -> SecretLookup:
        if status_of(error) == 403:
            return self._failed_at_source(
                LookupStatus.FORBIDDEN,
                "the webhook may not read the source secret or the job's namespace",
            )
        return self._failed_at_source(
            LookupStatus.ERROR,
            f"the cluster-wide secret lookup failed: {describe(error)}",
        )

    def _failed_at_source(
        self, status: LookupStatus, detail: str, api_called: bool = True
    ) -> SecretLookup:
        # The lookup that failed was in the source namespace, so the message
        # names that namespace, not the job's.
        return SecretLookup.failed(
            status, detail, namespace=self.source_namespace, api_called=api_called
        )


def build_cluster_wide_lookups(
    client: ApiClient,
    executor: Executor,
    *,
    source_namespace: str = "runai",
    project_label: str = "runai/queue",
    annotation_prefix: str = "runai-secrets-webhook",
    request_timeout: float = 10.0,
    copy_on_admission: bool = True,
    registry: CollectorRegistry | None = REGISTRY,
) -> ClusterWideLookups:
    """Build the lookups that `serve` adds after the lookup in the job's namespace.

    Registers the admission copy counter in `registry`; the controller's
    metrics stay unregistered, because no controller runs here.
    """
    settings = PropagationSettings(
        source_namespace=source_namespace,
        project_label=project_label,
        marks=Marks(annotation_prefix),
    )
    resolver = ClusterWideResolver(KubeApi(client, request_timeout), settings)
    if registry is not None:
        register_admission_metrics(registry)
    return ClusterWideLookups(resolver, executor, source_namespace, copy_on_admission)
