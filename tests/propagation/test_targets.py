"""Which namespaces receive copies."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.propagation.settings import PropagationSettings
from webhook.propagation.targets import NamespaceInfo, is_target

SETTINGS = PropagationSettings()


def namespace(name: str, labels: dict[str, str], **extra: Any) -> NamespaceInfo:
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    metadata.update(extra)
    return NamespaceInfo.from_object({"metadata": metadata})


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (namespace("runai-a", {"runai/queue": "a"}), True),
        (namespace("runai-a", {}), False),
        (namespace("runai", {"runai/queue": "x"}), False),
        (
            namespace(
                "runai-a",
                {"runai/queue": "a", "runai-secrets-webhook/propagate": "false"},
            ),
            False,
        ),
        (
            namespace(
                "runai-a",
                {"runai/queue": "a", "runai-secrets-webhook/propagate": "true"},
            ),
            True,
        ),
        (
            namespace(
                "runai-a",
                {"runai/queue": "a"},
                deletionTimestamp="2026-01-01T00:00:00Z",
            ),
            False,
        ),
    ],
    ids=["project", "unlabelled", "source", "opted-out", "opt-in-true", "deleting"],
)
def test_is_target(info: NamespaceInfo, expected: bool) -> None:
    assert is_target(info, SETTINGS) is expected


def test_is_target_terminating_phase() -> None:
    info = NamespaceInfo.from_object(
        {
            "metadata": {"name": "runai-a", "labels": {"runai/queue": "a"}},
            "status": {"phase": "Terminating"},
        }
    )

    assert not is_target(info, SETTINGS)


def test_is_target_custom_project_label() -> None:
    settings = PropagationSettings(project_label="example.com/project")

    assert is_target(namespace("p", {"example.com/project": "p"}), settings)
    assert not is_target(namespace("p", {"runai/queue": "p"}), settings)
