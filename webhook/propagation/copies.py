"""Build the copy of a cluster-wide secret and compare it with what exists.

Objects are the plain JSON dicts the API server sends. A copy takes only
`data`, `type` and `immutable` from its source, plus the labels and
annotations on the allow-list, and carries the marks that say it is ours.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from webhook.propagation.settings import (
    CLUSTER_WIDE_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    UNSUPPORTED_TYPES,
    PropagationSettings,
)

Object = dict[str, Any]

# Keys that never reach a copy, even when an allow-list entry matches them:
# they would make Helm, Argo CD or `kubectl apply` treat the copy as part of
# the release or manifest that created the source.
DENIED_KEYS = (
    "helm.sh/*",
    "meta.helm.sh/*",
    "argocd.*",
    "argocd.argoproj.io/*",
    "app.kubernetes.io/instance",
    "kubectl.kubernetes.io/last-applied-configuration",
    CLUSTER_WIDE_LABEL,
    MANAGED_BY_LABEL,
)


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("annotations") or {})


def is_cluster_wide(source: Mapping[str, Any]) -> bool:
    """Return whether the source carries Run:AI's cluster-wide label."""
    return labels_of(source).get(CLUSTER_WIDE_LABEL) == "true"


# Copies carry the source's name as a label value, which Kubernetes limits
# to 63 characters; secret names may have up to 253.
MAX_SOURCE_NAME = 63


def unsupported_reason(source: Mapping[str, Any]) -> str | None:
    """Return the Event reason why a source cannot be copied, or None."""
    if source.get("type", "Opaque") in UNSUPPORTED_TYPES:
        return "UnsupportedType"
    if len(source["metadata"]["name"]) > MAX_SOURCE_NAME:
        return "NameTooLong"
    return None


def is_supported(source: Mapping[str, Any]) -> bool:
    return unsupported_reason(source) is None


def is_ours(secret: Mapping[str, Any], settings: PropagationSettings) -> bool:
    """Return whether a secret is a copy made by this controller or the webhook."""
    labels = labels_of(secret)
    source = labels.get(settings.marks.source_label)
    name = secret.get("metadata", {}).get("name")
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and source == name


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def _allowed(values: Mapping[str, str], allow: Iterable[str]) -> dict[str, str]:
    allow = tuple(allow)
    return {
        key: value
        for key, value in values.items()
        if _matches(key, allow) and not _matches(key, DENIED_KEYS)
    }


def build_copy(
    source: Mapping[str, Any], namespace: str, settings: PropagationSettings
) -> Object:
    """Return the copy of `source` that belongs in `namespace`."""
    marks = settings.marks
    metadata = source["metadata"]
    name = metadata["name"]

    labels = _allowed(labels_of(source), settings.copy_labels)
    labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE
    labels[marks.source_label] = name
    annotations = _allowed(annotations_of(source), settings.copy_annotations)
    annotations[marks.source_uid_annotation] = metadata["uid"]

    copy: Object = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "type": source.get("type", "Opaque"),
        "data": dict(source.get("data") or {}),
    }
    if source.get("immutable") is not None:
        copy["immutable"] = source["immutable"]
    return copy


def _marks_of(obj: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    return labels_of(obj), annotations_of(obj)


def is_current(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Return whether an existing copy already matches the desired one."""
    return (
        existing.get("type", "Opaque") == desired["type"]
        and (existing.get("data") or {}) == desired["data"]
        and bool(existing.get("immutable")) == bool(desired.get("immutable"))
        and _marks_of(existing) == _marks_of(desired)
    )


def needs_replace(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Return whether the API rejects an update, so a delete and create is needed.

    The API server rejects a change of `type`, and any change of `data` or
    `immutable` on a secret whose `immutable` is true.
    """
    if existing.get("type", "Opaque") != desired["type"]:
        return True
    if not existing.get("immutable"):
        return False
    same_data = (existing.get("data") or {}) == desired["data"]
    return not same_data or not desired.get("immutable")


def updated_copy(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> Object:
    """Return `desired` with the identity of `existing`, for an update (PUT).

    The resourceVersion makes the update fail with 409 Conflict when the copy
    changed since it was read, instead of overwriting that change.
    """
    body = dict(desired)
    metadata = dict(desired["metadata"])
    metadata["resourceVersion"] = existing["metadata"]["resourceVersion"]
    metadata["uid"] = existing["metadata"]["uid"]
    body["metadata"] = metadata
    return body
