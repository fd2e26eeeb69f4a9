"""Reconcile one source: read the state from the API and fix the difference.

The source is read fresh from the API and the copies are found by their
labels, never from memory, so a reconcile after a restart finishes what an
earlier leader left half done. Only the namespace list comes from the
namespace watch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.propagation import metrics
from webhook.propagation.api import API_FAILURES, KubeApi, describe, status_of
from webhook.propagation.copies import (
    MAX_SOURCE_NAME,
    Object,
    is_cluster_wide,
    is_ours,
    unsupported_reason,
)
from webhook.propagation.events import (
    conflict_message,
    unsupported_message,
    warning_event,
)
from webhook.propagation.plans import Action, desired_namespaces, plan_copies
from webhook.propagation.settings import PropagationSettings
from webhook.propagation.targets import NamespaceInfo, target_names

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """Result of one reconcile: copies in sync, and namespaces that are not."""

    synced: int = 0
    conflicts: list[str] = field(default_factory=list)
    # Namespaces where a write failed with an API error.
    failed: list[str] = field(default_factory=list)
    # A write lost a race (409) and the source needs another look soon.
    retry: bool = False


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        settings: PropagationSettings,
        namespaces: Callable[[], list[NamespaceInfo]],
        guard: Callable[[], None],
    ) -> None:
        self._api = api
        self._settings = settings
        self._namespaces = namespaces
        # Called before every write; raises when this replica may not write.
        self._guard = guard
        self._reported: set[tuple[str, str, str]] = set()

    def reconcile(self, name: str) -> Outcome:
        """Bring the copies of source `name` to the desired state.

        Raises NotLeaderError as soon as a write is not allowed, and API
        errors of the reads. Errors of single writes are counted in the
        outcome so the other namespaces still get their writes.
        """
        settings = self._settings
        source = self._api.get_secret(settings.source_namespace, name)
        namespaces = self._namespaces()
        targets = target_names(namespaces, settings)
        terminating = {ns.name for ns in namespaces if ns.terminating}
        copies = self._copies_of(name)

        reason = None if source is None else unsupported_reason(source)
        if source is not None and reason is not None and is_cluster_wide(source):
            self._report_once(source, "", reason, unsupported_message(source, reason))
        actions = plan_copies(source, targets, copies, terminating, settings)
        outcome = Outcome()
        for action in actions:
            self._apply(action, source, name, outcome)

        wanted = desired_namespaces(source, targets)
        outcome.synced = len(wanted - set(outcome.conflicts) - set(outcome.failed))
        return outcome

    def _copies_of(self, name: str) -> list[Object]:
        """List the copies of source `name` by their marks."""
        # No label value can hold a longer name, so no copy carries it, and
        # kube-apiserver rejects such a value in a selector with 400.
        if len(name) > MAX_SOURCE_NAME:
            return []
        settings = self._settings
        return [
            copy
            for copy in self._api.list_copies(settings.marks.copies_selector(name))
            if is_ours(copy, settings)
            # A secret in the source namespace is a source, even with our
            # marks (say, a copy applied back there): it is never changed.
            and copy["metadata"]["namespace"] != settings.source_namespace
        ]

    def _apply(
        self, action: Action, source: Object | None, name: str, outcome: Outcome
    ) -> None:
        try:
            written = True
            if action.kind == "delete":
                self._delete(action, name)
            elif action.kind == "update":
                assert action.body is not None
                self._guard()
                self._api.replace_secret(action.namespace, action.body)
            else:
                if action.kind == "replace":
                    self._delete(action, name)
                written = self._create(action, source, outcome)
        except API_FAILURES as error:
            if status_of(error) == 409:
                outcome.retry = True
                return
            outcome.failed.append(action.namespace)
            metrics.API_ERRORS.labels(operation=f"{action.kind}_copy").inc()
            logger.warning(
                "copy write failed",
                extra={
                    "source": name,
                    "namespace": action.namespace,
                    "action": action.kind,
                    "error": describe(error),
                },
            )
            return
        if not written:
            return
        logger.info(
            "copy written",
            extra={
                "source": name,
                "namespace": action.namespace,
                "action": action.kind,
            },
        )

    def _delete(self, action: Action, name: str) -> None:
        assert action.uid is not None and action.resource_version is not None
        self._guard()
        try:
            self._api.delete_secret(
                action.namespace, name, action.uid, action.resource_version
            )
        except API_FAILURES as error:
            # Already gone is what we wanted.
            if status_of(error) != 404:
                raise

    def _create(self, action: Action, source: Object | None, outcome: Outcome) -> bool:
        """Create a copy; return False when another secret has its name."""
        assert action.body is not None and source is not None
        self._guard()
        try:
            self._api.create_secret(action.namespace, action.body)
            return True
        except API_FAILURES as error:
            if status_of(error) != 409:
                raise

        # 409 AlreadyExists: ours (another writer was faster) or someone else's.
        name = action.body["metadata"]["name"]
        existing = self._api.get_secret(action.namespace, name)
        if existing is None or is_ours(existing, self._settings):
            outcome.retry = True
            return False
        outcome.conflicts.append(action.namespace)
        message = conflict_message(
            self._settings.source_namespace, name, action.namespace
        )
        uid = str(existing.get("metadata", {}).get("uid"))
        if self._report_once(
            source, action.namespace + "/" + uid, "CopyConflict", message
        ):
            metrics.conflicts().inc()
            logger.warning(
                "copy conflict",
                extra={"source": name, "namespace": action.namespace},
            )
        return False

    def _report_once(
        self, source: Mapping[str, Any], subject: str, reason: str, message: str
    ) -> bool:
        """Record a Warning Event once per source, subject and reason."""
        key = (str(source["metadata"].get("uid")), subject, reason)
        if key in self._reported:
            return False
        self._guard()
        try:
            self._api.create_event(
                self._settings.source_namespace, warning_event(source, reason, message)
            )
        except API_FAILURES as error:
            metrics.API_ERRORS.labels(operation="create_event").inc()
            logger.warning("event write failed", extra={"error": describe(error)})
            return True
        self._reported.add(key)
        return True
