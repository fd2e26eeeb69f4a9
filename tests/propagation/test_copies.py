"""The copy of a source secret: what it takes, what it leaves, how it is marked."""

from __future__ import annotations

from typing import Any

from webhook.propagation.copies import (
    build_copy,
    is_current,
    is_ours,
    needs_replace,
    updated_copy,
)
from webhook.propagation.settings import PropagationSettings

SETTINGS = PropagationSettings(
    copy_labels=("team", "helm.sh/*", "app.kubernetes.io/*"),
    copy_annotations=("*",),
)


def make_source(**overrides: Any) -> dict[str, Any]:
    source: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "regcred",
            "namespace": "runai",
            "uid": "uid-1",
            "resourceVersion": "7",
            "labels": {
                "runai/cluster-wide": "true",
                "team": "ml",
                "helm.sh/chart": "x-1.0",
                "app.kubernetes.io/instance": "release",
                "app.kubernetes.io/managed-by": "Helm",
            },
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "argocd.argoproj.io/tracking-id": "app:v1/Secret:runai/regcred",
                "note": "kept",
            },
            "ownerReferences": [{"kind": "Deployment", "name": "x", "uid": "o"}],
            "finalizers": ["example.com/keep"],
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "e30="},
    }
    source.update(overrides)
    return source


def test_copy_takes_data_type_immutable() -> None:
    copy = build_copy(make_source(immutable=True), "runai-team-a", SETTINGS)

    assert copy["data"] == {".dockerconfigjson": "e30="}
    assert copy["type"] == "kubernetes.io/dockerconfigjson"
    assert copy["immutable"] is True
    assert copy["metadata"]["namespace"] == "runai-team-a"
    assert copy["metadata"]["name"] == "regcred"


def test_copy_has_no_owner_or_finalizer() -> None:
    metadata = build_copy(make_source(), "runai-team-a", SETTINGS)["metadata"]

    assert "ownerReferences" not in metadata
    assert "finalizers" not in metadata
    assert "uid" not in metadata
    assert "resourceVersion" not in metadata


def test_copy_marks() -> None:
    metadata = build_copy(make_source(), "runai-team-a", SETTINGS)["metadata"]

    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "runai-secrets-webhook"
    assert metadata["labels"]["runai-secrets-webhook/source"] == "regcred"
    assert metadata["annotations"]["runai-secrets-webhook/source-uid"] == "uid-1"


def test_copy_allow_list_skips_denied_keys() -> None:
    metadata = build_copy(make_source(), "runai-team-a", SETTINGS)["metadata"]
    labels = metadata["labels"]
    annotations = metadata["annotations"]

    assert labels["team"] == "ml"
    assert "helm.sh/chart" not in labels
    assert "app.kubernetes.io/instance" not in labels
    assert "runai/cluster-wide" not in labels
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
    assert "argocd.argoproj.io/tracking-id" not in annotations
    assert annotations["note"] == "kept"


def test_copy_default_allow_list_is_empty() -> None:
    metadata = build_copy(make_source(), "ns", PropagationSettings())["metadata"]

    assert set(metadata["labels"]) == {
        "app.kubernetes.io/managed-by",
        "runai-secrets-webhook/source",
    }
    assert set(metadata["annotations"]) == {"runai-secrets-webhook/source-uid"}


def test_copy_uses_annotation_prefix() -> None:
    from webhook.propagation.settings import Marks

    settings = PropagationSettings(marks=Marks("example.com"))
    metadata = build_copy(make_source(), "ns", settings)["metadata"]

    assert metadata["labels"]["example.com/source"] == "regcred"
    assert metadata["annotations"]["example.com/source-uid"] == "uid-1"


def as_existing(copy: dict[str, Any]) -> dict[str, Any]:
    existing = dict(copy)
    existing["metadata"] = dict(copy["metadata"], uid="copy-uid", resourceVersion="3")
    return existing


def test_is_ours_needs_both_labels() -> None:
    copy = as_existing(build_copy(make_source(), "ns", SETTINGS))
    users = {"metadata": {"name": "regcred", "namespace": "ns", "labels": {}}}
    renamed = as_existing(build_copy(make_source(), "ns", SETTINGS))
    renamed["metadata"]["name"] = "other"

    assert is_ours(copy, SETTINGS)
    assert not is_ours(users, SETTINGS)
    assert not is_ours(renamed, SETTINGS)


def test_is_current_detects_data_change() -> None:
    desired = build_copy(make_source(), "ns", SETTINGS)
    existing = as_existing(desired)
    changed = build_copy(
        make_source(data={".dockerconfigjson": "e319"}), "ns", SETTINGS
    )

    assert is_current(existing, desired)
    assert not is_current(existing, changed)


def test_needs_replace_on_type_change() -> None:
    existing = as_existing(build_copy(make_source(), "ns", SETTINGS))
    desired = build_copy(make_source(type="Opaque"), "ns", SETTINGS)

    assert needs_replace(existing, desired)


def test_needs_replace_on_immutable_data_change() -> None:
    existing = as_existing(build_copy(make_source(immutable=True), "ns", SETTINGS))
    same = build_copy(make_source(immutable=True), "ns", SETTINGS)
    changed = build_copy(
        make_source(immutable=True, data={"a": "Yg=="}), "ns", SETTINGS
    )
    mutable = build_copy(make_source(immutable=False), "ns", SETTINGS)

    assert not needs_replace(existing, same)
    assert needs_replace(existing, changed)
    assert needs_replace(existing, mutable)


def test_mutable_data_change_is_update() -> None:
    existing = as_existing(build_copy(make_source(), "ns", SETTINGS))
    desired = build_copy(make_source(data={"a": "Yg=="}), "ns", SETTINGS)
    body = updated_copy(existing, desired)

    assert not needs_replace(existing, desired)
    assert body["metadata"]["resourceVersion"] == "3"
    assert body["metadata"]["uid"] == "copy-uid"
    assert body["data"] == {"a": "Yg=="}
