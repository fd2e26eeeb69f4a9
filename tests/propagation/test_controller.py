"""The controller against the fake API server: copies follow labels and sources."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client import ApiException
from prometheus_client import REGISTRY

from tests.harness.fakekube import FakeKube
from tests.harness.kubestore import find_resource
from tests.propagation.conftest import (
    CLUSTER_WIDE,
    LEASE_NAMESPACE,
    NAMESPACES,
    PROJECT,
    delete_secret,
    fast_settings,
    secret,
    set_labels,
    wait_for,
    wait_for_copy,
    writes,
)
from webhook.propagation.api import KubeApi
from webhook.propagation.controller import Controller
from webhook.propagation.reconciler import Reconciler

Start = Callable[..., Any]


EVENTS = find_resource("", "v1", "events")


def events(kube: FakeKube, namespace: str) -> list[dict[str, Any]]:
    assert EVENTS is not None
    listed, _ = kube.store.list_objects(EVENTS, namespace)
    return listed


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_user_secret_is_never_overwritten(
    fake_kube: FakeKube, run_controller: Start
) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_namespace("runai-team-b", PROJECT)
    users = fake_kube.add_secret("runai-team-a", "regcred", {"auth": "users-own"})
    source = fake_kube.add_secret("runai", "regcred", {"auth": "cluster"}, CLUSTER_WIDE)
    conflicts_before = metric("runai_secrets_webhook_propagation_conflicts_total")

    run_controller()
    wait_for(
        lambda: secret(fake_kube, "runai-team-b", "regcred"), message="team-b copy"
    )
    reasons = wait_for(
        lambda: [
            e for e in events(fake_kube, "runai") if e["reason"] == "CopyConflict"
        ],
        message="a CopyConflict event",
    )

    after = secret(fake_kube, "runai-team-a", "regcred")
    assert after == users
    assert "runai-team-a/regcred" in reasons[0]["message"]
    assert reasons[0]["involvedObject"]["uid"] == source["metadata"]["uid"]
    assert reasons[0]["type"] == "Warning"
    assert (
        metric("runai_secrets_webhook_propagation_conflicts_total")
        == conflicts_before + 1
    )
    user_writes = [w for w in writes(fake_kube) if w.namespace == "runai-team-a"]
    assert all(w.verb == "create" and w.status == 409 for w in user_writes)


def test_copy_appears_once_user_secret_deleted(
    fake_kube: FakeKube, run_controller: Start
) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_secret("runai-team-a", "regcred", {"auth": "users-own"})
    source = fake_kube.add_secret("runai", "regcred", {"auth": "cluster"}, CLUSTER_WIDE)
    run_controller()
    wait_for(
        lambda: [
            e for e in events(fake_kube, "runai") if e["reason"] == "CopyConflict"
        ],
        message="a CopyConflict event",
    )

    delete_secret(fake_kube, "runai-team-a", "regcred")
    copy = wait_for(
        lambda: secret(fake_kube, "runai-team-a", "regcred"), message="the copy"
    )

    labels = copy["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "runai-secrets-webhook"
    assert labels["runai-secrets-webhook/source"] == "regcred"
    assert copy["data"] == source["data"]
    assert secret(fake_kube, "runai", "regcred") == source
    assert not [
        w
        for w in writes(fake_kube)
        if w.namespace == "runai" and w.resource == "secrets"
    ]


def test_project_label_removed_deletes_copy(
    fake_kube: FakeKube, run_controller: Start
) -> None:
    for name in ("runai-team-a", "runai-team-b"):
        fake_kube.add_namespace(name, PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    run_controller()
    wait_for(lambda: secret(fake_kube, "runai-team-a", "regcred"), message="copy in a")

    set_labels(fake_kube, "v1", "namespaces", "", "runai-team-a", {"runai/queue": None})

    wait_for(
        lambda: secret(fake_kube, "runai-team-a", "regcred") is None,
        message="the copy in runai-team-a to go",
    )
    assert secret(fake_kube, "runai-team-b", "regcred") is not None


def test_cluster_wide_label_removed_deletes_all(
    fake_kube: FakeKube, run_controller: Start
) -> None:
    names = [f"runai-team-{i}" for i in range(5)]
    for name in names:
        fake_kube.add_namespace(name, PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    run_controller()
    wait_for(
        lambda: all(secret(fake_kube, n, "regcred") for n in names), message="5 copies"
    )

    set_labels(
        fake_kube, "v1", "secrets", "runai", "regcred", {"runai/cluster-wide": None}
    )

    wait_for(
        lambda: not any(secret(fake_kube, n, "regcred") for n in names),
        message="every copy to go",
    )
    assert secret(fake_kube, "runai", "regcred") is not None


def test_source_deleted_deletes_all(fake_kube: FakeKube, run_controller: Start) -> None:
    names = ["runai-team-a", "runai-team-b"]
    for name in names:
        fake_kube.add_namespace(name, PROJECT)
    fake_kube.add_secret("runai", "token", {"t": "x"}, CLUSTER_WIDE)
    run_controller()
    wait_for(
        lambda: all(secret(fake_kube, n, "token") for n in names), message="copies"
    )

    delete_secret(fake_kube, "runai", "token")

    wait_for(
        lambda: not any(secret(fake_kube, n, "token") for n in names),
        message="every copy to go",
    )


def test_namespace_labelled_after_start(
    fake_kube: FakeKube, run_controller: Start
) -> None:
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    run_controller()

    fake_kube.add_namespace("runai-late")
    fake_kube.add_namespace("runai-late", PROJECT)

    copy = wait_for(
        lambda: secret(fake_kube, "runai-late", "regcred"), timeout=5, message="copy"
    )
    assert copy["metadata"]["annotations"]["runai-secrets-webhook/source-uid"]


def test_non_targets_get_no_copy(fake_kube: FakeKube, run_controller: Start) -> None:
    fake_kube.add_namespace(
        "runai-opted-out", {**PROJECT, "runai-secrets-webhook/propagate": "false"}
    )
    fake_kube.add_namespace("plain")
    fake_kube.add_namespace("runai", PROJECT)
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    fake_kube.add_secret("runai", "local", {"auth": "x"})
    run_controller()
    wait_for_copy(fake_kube, "runai-team-a")

    assert secret(fake_kube, "runai-opted-out", "regcred") is None
    assert secret(fake_kube, "plain", "regcred") is None
    assert secret(fake_kube, "runai-team-a", "local") is None
    runai_writes = [
        w
        for w in writes(fake_kube)
        if w.namespace == "runai" and w.resource == "secrets"
    ]
    assert runai_writes == []


def test_data_change_reaches_copies(fake_kube: FakeKube, run_controller: Start) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": "v1"}, CLUSTER_WIDE)
    run_controller()
    first = wait_for_copy(fake_kube, "runai-team-a")

    changed = fake_kube.add_secret("runai", "regcred", {"auth": "v2"}, CLUSTER_WIDE)

    copy = wait_for_copy(
        fake_kube,
        "runai-team-a",
        where=lambda c: c["data"] == changed["data"],
        message="the new data in the copy",
    )
    assert copy["metadata"]["uid"] == first["metadata"]["uid"]


def test_type_change_replaces_copy(fake_kube: FakeKube, run_controller: Start) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": "v1"}, CLUSTER_WIDE)
    controller = run_controller()
    first = wait_for_copy(fake_kube, "runai-team-a")
    controller.stop()

    # The API rejects a change of `type`, so the source is deleted and made
    # again, while no controller runs. The next one then finds a copy of the
    # old type and has to replace it.
    secrets = find_resource("", "v1", "secrets")
    assert secrets is not None
    fake_kube.store.remove(secrets, "runai", "regcred")
    fake_kube.add_secret(
        "runai", "regcred", {"auth": "v1"}, CLUSTER_WIDE, type_="example.com/token"
    )
    fake_kube.clear_log()
    run_controller()

    copy = wait_for_copy(
        fake_kube,
        "runai-team-a",
        where=lambda c: c["type"] == "example.com/token",
        message="the new type in the copy",
    )
    assert copy["metadata"]["uid"] != first["metadata"]["uid"]
    copy_writes = [
        (record.verb, record.status)
        for record in fake_kube.requests
        if record.resource == "secrets"
        and record.namespace == "runai-team-a"
        and record.verb in ("update", "patch", "delete", "create")
    ]
    assert copy_writes == [("delete", 200), ("create", 201)]


def test_immutable_data_change_replaces_copy(
    fake_kube: FakeKube, run_controller: Start
) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    source = fake_kube.add_secret("runai", "regcred", {"auth": "v1"}, CLUSTER_WIDE)
    source["immutable"] = True
    fake_kube.store.put(source)
    run_controller()
    first = wait_for_copy(fake_kube, "runai-team-a")
    assert first["immutable"] is True

    delete_secret(fake_kube, "runai", "regcred")
    replacement = fake_kube.add_secret("runai", "regcred", {"auth": "v2"}, CLUSTER_WIDE)
    replacement["immutable"] = True
    replacement = fake_kube.store.put(replacement)

    copy = wait_for_copy(
        fake_kube,
        "runai-team-a",
        where=lambda c: c["data"] == replacement["data"],
        message="the new data in the copy",
    )
    assert copy["metadata"]["uid"] != first["metadata"]["uid"]
    assert (
        copy["metadata"]["annotations"]["runai-secrets-webhook/source-uid"]
        == replacement["metadata"]["uid"]
    )


def test_edited_copy_is_restored(fake_kube: FakeKube, run_controller: Start) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    source = fake_kube.add_secret("runai", "regcred", {"auth": "v1"}, CLUSTER_WIDE)
    run_controller()
    copy = wait_for_copy(fake_kube, "runai-team-a")

    copy["data"] = {"auth": "ZWRpdGVk"}
    fake_kube.store.put(copy)

    wait_for_copy(
        fake_kube,
        "runai-team-a",
        where=lambda c: c["data"] == source["data"],
        message="the copy to be restored",
    )


def test_metrics_report_states(fake_kube: FakeKube, run_controller: Start) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_namespace("runai-team-b", PROJECT)
    fake_kube.add_secret("runai-team-a", "regcred", {"auth": "users-own"})
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    successes_before = metric(
        "runai_secrets_webhook_propagation_reconciles_total", result="success"
    )

    run_controller()

    wait_for(
        lambda: (
            metric("runai_secrets_webhook_propagation_copies", state="conflict") == 1
        ),
        message="one conflict in the copies gauge",
    )
    assert metric("runai_secrets_webhook_propagation_copies", state="synced") == 1
    assert metric("runai_secrets_webhook_propagation_copies", state="failed") == 0
    assert metric("runai_secrets_webhook_propagation_leader") == 1
    resync = metric(
        "runai_secrets_webhook_propagation_last_full_resync_timestamp_seconds"
    )
    assert resync > time.time() - 60
    assert (
        metric("runai_secrets_webhook_propagation_reconciles_total", result="success")
        > successes_before
    )


def test_delete_precondition_protects_changed_copy(fake_kube: FakeKube) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    stale = fake_kube.add_secret("runai-team-a", "regcred", {"auth": "old"})
    fake_kube.add_secret("runai-team-a", "regcred", {"auth": "new"})
    api = KubeApi(fake_kube.api_client(), 5.0)
    metadata = stale["metadata"]

    with pytest.raises(ApiException) as raised:
        api.delete_secret(
            "runai-team-a", "regcred", metadata["uid"], metadata["resourceVersion"]
        )

    assert raised.value.status == 409
    assert secret(fake_kube, "runai-team-a", "regcred") is not None


def test_marked_secret_in_source_namespace_kept(
    fake_kube: FakeKube, run_controller: Start
) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    marks = {
        "app.kubernetes.io/managed-by": "runai-secrets-webhook",
        "runai-secrets-webhook/source": "applied-back",
    }
    applied_back = fake_kube.add_secret("runai", "applied-back", {"auth": "x"}, marks)
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)

    run_controller()
    wait_for_copy(fake_kube, "runai-team-a")

    assert secret(fake_kube, "runai", "applied-back") == applied_back
    assert [
        w
        for w in writes(fake_kube)
        if w.namespace == "runai" and w.resource == "secrets"
    ] == []


# 253 characters is the longest Secret name, too long for an Event name with
# a suffix. The name is cut where it would end in "-".
@pytest.mark.parametrize("long_name", ["x" * 64, "x" * 235 + "-" + "y" * 17])
def test_long_source_name_reported(
    fake_kube: FakeKube, run_controller: Start, long_name: str
) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_secret("runai", long_name, {"auth": "x"}, CLUSTER_WIDE)

    run_controller()

    found = wait_for(
        lambda: [e for e in events(fake_kube, "runai") if e["reason"] == "NameTooLong"],
        message="a NameTooLong event",
    )
    assert "63 characters" in found[0]["message"]
    assert secret(fake_kube, "runai-team-a", long_name) is None


def test_long_source_name_deleted_cleanly(fake_kube: FakeKube) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_namespace("runai")
    api = KubeApi(fake_kube.api_client(), 5.0)
    reconciler = Reconciler(api, fast_settings(), lambda: [], lambda: None)

    outcome = reconciler.reconcile("x" * 64)

    assert outcome.failed == []
    assert fake_kube.count(verb="list", resource="secrets") == 0


def test_crashed_thread_marks_controller_failed(
    fake_kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)

    def crash(self: Reconciler, name: str) -> None:
        raise RuntimeError("a bug in reconcile")

    monkeypatch.setattr(Reconciler, "reconcile", crash)
    fake_kube.add_namespace(LEASE_NAMESPACE)
    controller = Controller(
        fake_kube.api_client(), fast_settings(), LEASE_NAMESPACE, "propagation", "test"
    )
    stop = threading.Event()
    runner = threading.Thread(target=controller.run, args=(stop,))

    runner.start()
    runner.join(10)

    assert not runner.is_alive()
    assert controller.failed.is_set()


def test_failed_write_retried(fake_kube: FakeKube, run_controller: Start) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_namespace("runai-team-b", PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    fault = fake_kube.add_fault(
        verb="create", resource="secrets", namespace="runai-team-b", status=500
    )

    run_controller()
    wait_for_copy(fake_kube, "runai-team-a")
    wait_for(
        lambda: metric("runai_secrets_webhook_propagation_copies", state="failed") == 1,
        message="one failed copy in the gauge",
    )
    assert metric("runai_secrets_webhook_propagation_copies", state="synced") == 1

    fake_kube.clear_faults()

    wait_for_copy(fake_kube, "runai-team-b", timeout=10)
    assert fault.hits >= 1
    wait_for(
        lambda: metric("runai_secrets_webhook_propagation_copies", state="synced") == 2,
        message="two synced copies in the gauge",
    )
    assert metric("runai_secrets_webhook_propagation_copies", state="failed") == 0


def test_terminating_namespace_left_alone(
    fake_kube: FakeKube, run_controller: Start
) -> None:
    fake_kube.add_namespace("runai-team-a", PROJECT)
    fake_kube.add_namespace("runai-leaving", PROJECT)
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    run_controller()
    wait_for_copy(fake_kube, "runai-leaving")

    assert NAMESPACES is not None
    fake_kube.store.delete(NAMESPACES, "", "runai-leaving")
    fake_kube.add_namespace("runai-late-leaving", PROJECT)
    fake_kube.store.delete(NAMESPACES, "", "runai-late-leaving")
    fake_kube.add_namespace("runai-team-b", PROJECT)
    wait_for_copy(fake_kube, "runai-team-b")

    # The namespace controller removes the copy with the namespace; the
    # controller neither deletes it nor creates one in a new leaving namespace.
    assert secret(fake_kube, "runai-leaving", "regcred") is not None
    assert secret(fake_kube, "runai-late-leaving", "regcred") is None
    verbs = {
        namespace: [w.verb for w in writes(fake_kube) if w.namespace == namespace]
        for namespace in ("runai-leaving", "runai-late-leaving")
    }
    assert verbs["runai-leaving"] == ["create"]
    # The controller may see runai-late-leaving before it is marked
    # Terminating and try one create, which the API rejects. None may follow.
    assert verbs["runai-late-leaving"] in ([], ["create"])
