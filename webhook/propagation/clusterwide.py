"""Let the webhook accept references to cluster-wide secrets not yet copied.

When a job references a secret that is missing from its namespace, the
webhook's lookup calls `ClusterWideLookups`. If the source namespace has a
secret of that name with the `runai/cluster-wide: "true"` label and the
job's namespace is a project, the resolver returns the source's key names
and, unless the review is a dry run, creates the copy right away so the pod
can start without waiting for the controller.

The create never overwrites: a secret that appeared in the meantime makes
the API answer 409 and stays as it is. The copy carries the same marks as the
controller's copies, so the controller keeps it in sync and removes it when
the source or the project label goes away.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Collection
from concurrent.futures import Executor

from webhook.admission.lookups import LookupStatus, SecretLookup
from webhook.kube.lookups import Resolver
from webhook.propagation import metrics
from webhook.propagation.api import API_FAILURES, KubeApi, describe, status_of
from webhook.propagation.copies import build_copy, is_cluster_wide, is_supported
from webhook.propagation.settings import PropagationSettings
from webhook.propagation.targets import NamespaceInfo, is_target

logger = logging.getLogger(__name__)


class ClusterWideResolver:
    def __init__(self, api: KubeApi, settings: PropagationSettings) -> None:
        self._api = api
        self._settings = settings

    def resolve(
        self, namespace: str, name: str, dry_run: bool
    ) -> frozenset[str] | None:
        """Return the key names of cluster-wide secret `name` for `namespace`.

        Returns None when no cluster-wide secret of that name applies to the
        namespace, so the caller reports the secret as missing. Only key names
        leave this function; the values are dropped with the response.
        Raises the API errors of the reads.
        """
        settings = self._settings
        if namespace == settings.source_namespace:
            return None
        source = self._api.get_secret(settings.source_namespace, name)
        if source is None or not is_cluster_wide(source) or not is_supported(source):
            return None
        target = self._api.get_namespace(namespace)
        if target is None or not is_target(NamespaceInfo.from_object(target), settings):
            return None

        keys = frozenset((source.get("data") or {}).keys())
        if not dry_run:
            self._create_copy(build_copy(source, namespace, settings), namespace, name)
        return keys

    def _create_copy(self, body: dict[str, object], namespace: str, name: str) -> None:
        try:
            self._api.create_secret(namespace, body)
        except API_FAILURES as error:
            # 409: the copy or another secret appeared since the lookup; either
            # way nothing is overwritten and the pod uses what is there.
            if status_of(error) == 409:
                return
            # The controller creates the copy on its next reconcile, so the
            # review still passes; the pod waits for the secret until then.
            metrics.API_ERRORS.labels(operation="create_copy_on_admission").inc()
            logger.warning(
                "copy on admission failed",
                extra={
                    "namespace": namespace,
                    "secret": name,
                    "error": describe(error),
                },
            )
            return
        logger.info(
            "copy created on admission", extra={"namespace": namespace, "secret": name}
        )


class ClusterWideLookups:
    """The resolver in the shape of `webhook.kube.lookups.Resolver`.

    The blocking client runs in `executor`. A review's dry-run flag is bound
    with `for_review`, so the copy is written only for real reviews.
    """

    def __init__(
        self,
        resolver: ClusterWideResolver,
        executor: Executor,
        source_namespace: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = resolver
        self._executor = executor
        self._source_namespace = source_namespace
        self._clock = clock

    def for_review(self, dry_run: bool) -> Resolver:
        """Return the resolver to ask for one review's missing secrets."""
        return functools.partial(self.lookup, dry_run=dry_run)

    async def lookup(
        self,
        namespace: str,
        name: str,
        keys: Collection[str],
        deadline: float,
        *,
        dry_run: bool,
    ) -> SecretLookup:
        """Return FOUND with the source's key names, or why not.

        `deadline` is a `clock()` value. A write still running when the
        deadline passes finishes in the background; it never overwrites.
        """
        remaining = deadline - self._clock()
        if remaining <= 0:
            return SecretLookup.failed(
                LookupStatus.TIMEOUT, "no time was left before the review's deadline"
            )
        loop = asyncio.get_running_loop()
        call = functools.partial(self._resolver.resolve, namespace, name, dry_run)
        try:
            found = await asyncio.wait_for(
                loop.run_in_executor(self._executor, call), remaining
            )
        except TimeoutError:
            return SecretLookup.failed(
                LookupStatus.TIMEOUT, "the cluster-wide secret lookup timed out"
            )
        except API_FAILURES as error:
            return self._failed(error)
        if found is None:
            return SecretLookup.not_found()
        return SecretLookup.found(found, namespace=self._source_namespace)

    def _failed(self, error: BaseException) -> SecretLookup:
        where = f"namespace {self._source_namespace}"
        if status_of(error) == 403:
            return SecretLookup.failed(
                LookupStatus.FORBIDDEN,
                f"the webhook may not read secrets or namespaces for {where}",
            )
        return SecretLookup.failed(
            LookupStatus.ERROR,
            f"the cluster-wide secret lookup in {where} failed: {describe(error)}",
        )
