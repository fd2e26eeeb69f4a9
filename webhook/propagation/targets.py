"""Decide which namespaces receive copies of cluster-wide secrets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook.propagation.settings import PropagationSettings


@dataclass(frozen=True)
class NamespaceInfo:
    """The parts of a Namespace that decide whether it is a target."""

    name: str
    labels: Mapping[str, str]
    terminating: bool

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> NamespaceInfo:
        metadata = obj.get("metadata", {})
        terminating = bool(metadata.get("deletionTimestamp")) or (
            obj.get("status", {}).get("phase") == "Terminating"
        )
        return cls(
            name=metadata["name"],
            labels=dict(metadata.get("labels") or {}),
            terminating=terminating,
        )


def is_target(namespace: NamespaceInfo, settings: PropagationSettings) -> bool:
    """Return whether a namespace should hold a copy of every cluster-wide secret.

    A target carries the project label, is not the source namespace, is not
    being deleted, and has not opted out with the propagate label "false".
    """
    if namespace.name == settings.source_namespace or namespace.terminating:
        return False
    if settings.project_label not in namespace.labels:
        return False
    return namespace.labels.get(settings.marks.opt_out_label) != "false"


def target_names(
    namespaces: Iterable[NamespaceInfo], settings: PropagationSettings
) -> set[str]:
    return {ns.name for ns in namespaces if is_target(ns, settings)}
