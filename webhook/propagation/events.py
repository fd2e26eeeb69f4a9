"""Kubernetes Events on source secrets, so `kubectl describe` shows problems."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Mapping
from typing import Any

from webhook.propagation.copies import Object
from webhook.propagation.settings import MANAGED_BY_VALUE

COMPONENT = "runai-secrets-webhook-propagation"

# Maximum length of an object name, a DNS-1123 subdomain, in Kubernetes.
MAX_NAME_LENGTH = 253


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_name(source_name: str) -> str:
    """Return a new Event name for the object `source_name`.

    Each Event needs its own name, so a random suffix is added. A name has
    at most 253 characters, as does the source's, so a long source name is
    cut to fit. The cut part ends in a letter or digit, as a name must.
    """
    suffix = secrets.token_hex(8)
    prefix = source_name[: MAX_NAME_LENGTH - len(suffix) - 1].rstrip(".-")
    return f"{prefix}.{suffix}"


def warning_event(source: Mapping[str, Any], reason: str, message: str) -> Object:
    """Return a core/v1 Warning Event about `source`."""
    metadata = source["metadata"]
    now = _now()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": _event_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY_VALUE},
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Secret",
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def conflict_message(source_namespace: str, name: str, namespace: str) -> str:
    return (
        f"Secret {namespace}/{name} already exists and was not created by "
        f"{MANAGED_BY_VALUE}, so the copy of {source_namespace}/{name} was not "
        f"written there. The existing secret is left as it is; delete or rename "
        f"it to receive the cluster-wide copy."
    )


def unsupported_message(source: Mapping[str, Any], reason: str) -> str:
    if reason == "NameTooLong":
        return (
            f"Secret name {source['metadata']['name']!r} is longer than 63 "
            "characters, so it cannot be the label value that marks its copies; "
            "it is not copied to projects. Use a shorter name."
        )
    return (
        f"Secrets of type {source.get('type')} are not copied to projects "
        "because Kubernetes manages their contents. Use an Opaque secret or "
        "remove the runai/cluster-wide label."
    )
