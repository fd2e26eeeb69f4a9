"""Compute the writes that bring the copies of one source to the desired state.

This is the pure half of a reconcile: the source as read from the API, the
target namespaces and the copies found by their labels go in, a list of
actions comes out. `webhook.propagation.reconciler` carries them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from webhook.propagation.copies import (
    Object,
    build_copy,
    is_cluster_wide,
    is_current,
    is_supported,
    needs_replace,
    updated_copy,
)
from webhook.propagation.settings import PropagationSettings

ActionKind = Literal["create", "update", "replace", "delete"]


@dataclass(frozen=True)
class Action:
    """One write on the copy in `namespace`.

    `uid` and `resource_version` identify the existing copy for "replace" and
    "delete", whose deletes carry them as preconditions. `body` is the copy to
    write for "create", "update" and "replace".
    """

    kind: ActionKind
    namespace: str
    body: Object | None = None
    uid: str | None = None
    resource_version: str | None = None


def desired_namespaces(
    source: Mapping[str, Any] | None, targets: Iterable[str]
) -> set[str]:
    """Return the namespaces that should hold a copy of `source`."""
    if source is None or not is_cluster_wide(source) or not is_supported(source):
        return set()
    return set(targets)


def _action_for_existing(
    existing: Mapping[str, Any], desired: Object, namespace: str
) -> Action | None:
    if is_current(existing, desired):
        return None
    metadata = existing["metadata"]
    if needs_replace(existing, desired):
        return Action(
            "replace",
            namespace,
            body=desired,
            uid=metadata["uid"],
            resource_version=metadata["resourceVersion"],
        )
    return Action("update", namespace, body=updated_copy(existing, desired))


def plan_copies(
    source: Mapping[str, Any] | None,
    targets: Iterable[str],
    copies: Iterable[Mapping[str, Any]],
    terminating: Iterable[str],
    settings: PropagationSettings,
) -> list[Action]:
    """Return the actions that make `copies` match `source` and `targets`.

    `copies` are the secrets that carry our marks for this source, in any
    namespace. Copies in namespaces being deleted are left to the namespace
    controller, which removes them with the namespace, and a marked secret in
    the source namespace is never touched.
    """
    wanted = desired_namespaces(source, targets)
    skip_delete = set(terminating)
    existing = {
        copy["metadata"]["namespace"]: copy
        for copy in copies
        if copy["metadata"]["namespace"] != settings.source_namespace
    }
    actions: list[Action] = []

    for namespace in sorted(existing.keys() - wanted - skip_delete):
        metadata = existing[namespace]["metadata"]
        actions.append(
            Action(
                "delete",
                namespace,
                uid=metadata["uid"],
                resource_version=metadata["resourceVersion"],
            )
        )

    for namespace in sorted(wanted):
        assert source is not None  # wanted is empty without a source
        desired = build_copy(source, namespace, settings)
        if namespace not in existing:
            actions.append(Action("create", namespace, body=desired))
            continue
        action = _action_for_existing(existing[namespace], desired, namespace)
        if action is not None:
            actions.append(action)
    return actions
