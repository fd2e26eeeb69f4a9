"""The writes one reconcile plans, from the source, targets and copies."""

from __future__ import annotations

from typing import Any

from webhook.propagation.copies import build_copy
from webhook.propagation.plans import plan_copies
from webhook.propagation.settings import PropagationSettings

SETTINGS = PropagationSettings()


def make_source(labelled: bool = True, **overrides: Any) -> dict[str, Any]:
    labels = {"runai/cluster-wide": "true"} if labelled else {}
    source: dict[str, Any] = {
        "metadata": {
            "name": "regcred",
            "namespace": "runai",
            "uid": "s1",
            "labels": labels,
        },
        "type": "Opaque",
        "data": {"token": "dA=="},
    }
    source.update(overrides)
    return source


def existing_copy(namespace: str, source: dict[str, Any]) -> dict[str, Any]:
    copy = build_copy(source, namespace, SETTINGS)
    copy["metadata"].update(uid=f"uid-{namespace}", resourceVersion="5")
    return copy


def kinds(actions: list[Any]) -> list[tuple[str, str]]:
    return [(a.kind, a.namespace) for a in actions]


def test_plan_creates_missing_copies() -> None:
    actions = plan_copies(make_source(), {"a", "b"}, [], [], SETTINGS)

    assert kinds(actions) == [("create", "a"), ("create", "b")]


def test_plan_nothing_when_in_sync() -> None:
    source = make_source()
    copies = [existing_copy("a", source)]

    assert plan_copies(source, {"a"}, copies, [], SETTINGS) == []


def test_plan_deletes_copies_outside_targets() -> None:
    source = make_source()
    copies = [existing_copy("a", source), existing_copy("gone", source)]
    actions = plan_copies(source, {"a"}, copies, [], SETTINGS)

    assert kinds(actions) == [("delete", "gone")]
    assert actions[0].uid == "uid-gone"
    assert actions[0].resource_version == "5"


def test_plan_unlabelled_source_deletes_all() -> None:
    copies = [existing_copy(ns, make_source()) for ns in ("a", "b")]
    actions = plan_copies(make_source(labelled=False), {"a", "b"}, copies, [], SETTINGS)

    assert kinds(actions) == [("delete", "a"), ("delete", "b")]


def test_plan_deleted_source_deletes_all() -> None:
    copies = [existing_copy(ns, make_source()) for ns in ("a", "b")]

    assert kinds(plan_copies(None, {"a", "b"}, copies, [], SETTINGS)) == [
        ("delete", "a"),
        ("delete", "b"),
    ]


def test_plan_leaves_terminating_namespaces() -> None:
    copies = [existing_copy("dying", make_source())]

    assert plan_copies(None, set(), copies, ["dying"], SETTINGS) == []


def test_plan_updates_changed_data() -> None:
    copies = [existing_copy("a", make_source())]
    changed = make_source(data={"token": "dTI="})
    actions = plan_copies(changed, {"a"}, copies, [], SETTINGS)

    assert kinds(actions) == [("update", "a")]
    assert actions[0].body is not None
    assert actions[0].body["metadata"]["resourceVersion"] == "5"
    assert actions[0].body["data"] == {"token": "dTI="}


def test_plan_replaces_on_type_change() -> None:
    copies = [existing_copy("a", make_source())]
    actions = plan_copies(
        make_source(type="example.com/t"), {"a"}, copies, [], SETTINGS
    )

    assert kinds(actions) == [("replace", "a")]
    assert actions[0].uid == "uid-a"


def test_plan_replaces_immutable_with_new_data() -> None:
    copies = [existing_copy("a", make_source(immutable=True))]
    changed = make_source(immutable=True, data={"token": "dTI="})

    assert kinds(plan_copies(changed, {"a"}, copies, [], SETTINGS)) == [
        ("replace", "a")
    ]


def test_plan_skips_service_account_tokens() -> None:
    source = make_source(type="kubernetes.io/service-account-token")

    assert plan_copies(source, {"a"}, [], [], SETTINGS) == []


def test_plan_never_touches_source_namespace() -> None:
    marked = existing_copy("runai", make_source())

    assert plan_copies(None, set(), [marked], [], SETTINGS) == []


def test_plan_skips_names_too_long_for_labels() -> None:
    long_name = "a" * 64
    source = make_source()
    source["metadata"]["name"] = long_name

    assert plan_copies(source, {"a"}, [], [], SETTINGS) == []
    source["metadata"]["name"] = long_name[:63]
    assert kinds(plan_copies(source, {"a"}, [], [], SETTINGS)) == [("create", "a")]
