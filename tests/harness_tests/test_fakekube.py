"""The fake API server seen through the real `kubernetes` client."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.harness.fakekube import FakeKube
from tests.harness.kubestore import resource

SECRETS = resource("", "v1", "secrets")
USER = "system:serviceaccount:runai-secrets-webhook:runai-secrets-webhook"


@pytest.fixture
def core(fake_kube: FakeKube) -> client.CoreV1Api:
    return client.CoreV1Api(fake_kube.api_client())


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body or "{}")
    return body


def test_secret_read_returns_base64_data(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"password": "s3cret"}, labels={"app": "db"})

    secret = core.read_namespaced_secret("db", "team-a")

    assert secret.data == {"password": base64.b64encode(b"s3cret").decode()}
    assert secret.type == "Opaque"
    assert secret.metadata.uid
    assert secret.metadata.creation_timestamp is not None
    assert int(secret.metadata.resource_version) > 0


def test_missing_secret_is_404_not_found(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_namespace("team-a")

    with pytest.raises(ApiException) as caught:
        core.read_namespaced_secret("nope", "team-a")

    assert caught.value.status == 404
    body = status_of(caught.value)
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["reason"] == "NotFound"
    assert body["message"] == 'secrets "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "secrets"}
    assert body["code"] == 404


def test_denied_get_is_403_with_rbac_message(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"})
    fake_kube.deny("get", "secrets", namespace="team-a")

    with pytest.raises(ApiException) as caught:
        core.read_namespaced_secret("db", "team-a")

    assert caught.value.status == 403
    body = status_of(caught.value)
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        f'secrets "db" is forbidden: User "{USER}" cannot get resource "secrets" '
        'in API group "" in the namespace "team-a"'
    )
    # Other verbs and namespaces stay allowed.
    assert core.list_namespaced_secret("team-a").items


def test_denied_list_names_no_object(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.deny("list", "namespaces")

    with pytest.raises(ApiException) as caught:
        core.list_namespace()

    assert status_of(caught.value)["message"] == (
        f'namespaces is forbidden: User "{USER}" cannot list resource "namespaces" '
        'in API group "" at the cluster scope'
    )


def test_create_sets_metadata_and_rejects_duplicate(
    fake_kube: FakeKube,
    core: Any,
) -> None:
    fake_kube.add_namespace("team-a")
    body = {"metadata": {"generateName": "job-"}, "stringData": {"a": "b"}}

    created = core.create_namespaced_secret("team-a", body)
    again = core.create_namespaced_secret("team-a", body)

    assert created.metadata.name.startswith("job-")
    assert len(created.metadata.name) == len("job-") + 5
    assert created.metadata.name != again.metadata.name
    assert created.data == {"a": "Yg=="}
    assert int(again.metadata.resource_version) > int(created.metadata.resource_version)
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret(
            "team-a", {"metadata": {"name": created.metadata.name}}
        )
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "AlreadyExists"
    assert status_of(caught.value)["message"] == (
        f'secrets "{created.metadata.name}" already exists'
    )


def test_create_in_missing_namespace_is_404(core: Any) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("ghost", {"metadata": {"name": "x"}})

    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == 'namespaces "ghost" not found'


def test_invalid_name_is_422(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_namespace("team-a")

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("team-a", {"metadata": {"name": "Bad_Name"}})

    body = status_of(caught.value)
    assert caught.value.status == 422
    assert body["reason"] == "Invalid"
    assert body["message"].startswith('Secret "Bad_Name" is invalid: metadata.name: ')
    assert body["details"]["kind"] == "Secret"
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_invalid_base64_data_is_400(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_namespace("team-a")
    body = {"metadata": {"name": "x"}, "data": {"k": "not base64!"}}

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("team-a", body)

    assert caught.value.status == 400
    assert status_of(caught.value)["reason"] == "BadRequest"


def test_update_with_stale_version_is_409(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"})
    stale = core.read_namespaced_secret("db", "team-a")
    fresh = core.read_namespaced_secret("db", "team-a")
    fresh.data["k2"] = "djI="
    updated = core.replace_namespaced_secret("db", "team-a", fresh)

    stale.data["k3"] = "djM="
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_secret("db", "team-a", stale)

    assert int(updated.metadata.resource_version) > int(fresh.metadata.resource_version)
    assert updated.metadata.uid == fresh.metadata.uid
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "Conflict"
    assert status_of(caught.value)["message"] == (
        'Operation cannot be fulfilled on secrets "db": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_create_with_resource_version_is_500(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_namespace("team-a")
    body = {"metadata": {"name": "copy", "resourceVersion": "7"}, "data": {}}

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("team-a", body)

    # The etcd storage layer rejects it with a plain error, so the Status
    # has code 500 and no reason.
    assert caught.value.status == 500
    status = status_of(caught.value)
    assert status["kind"] == "Status"
    assert status["status"] == "Failure"
    assert status["code"] == 500
    assert "reason" not in status
    assert status["message"] == (
        "resourceVersion should not be set on objects to be created"
    )
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_secret("copy", "team-a")
    assert missing.value.status == 404


def test_update_with_other_uid_is_409(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"})
    current = core.read_namespaced_secret("db", "team-a")
    uid = current.metadata.uid
    current.metadata.uid = "00000000-0000-0000-0000-000000000000"
    current.data["k2"] = "djI="

    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_secret("db", "team-a", current)

    assert caught.value.status == 409
    status = status_of(caught.value)
    assert status["reason"] == "Conflict"
    assert status["details"] == {"name": "db", "kind": "secrets"}
    assert (
        "Precondition failed: UID in precondition: "
        f"00000000-0000-0000-0000-000000000000, UID in object meta: {uid}"
    ) in status["message"]
    assert "k2" not in fake_kube.get("v1", "secrets", "team-a", "db")["data"]


def test_update_with_same_uid_succeeds(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"})
    current = core.read_namespaced_secret("db", "team-a")
    current.data["k2"] = "djI="

    updated = core.replace_namespaced_secret("db", "team-a", current)

    assert updated.metadata.uid == current.metadata.uid
    assert updated.data["k2"] == "djI="


def test_patch_changing_uid_is_422(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"})

    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret("db", "team-a", {"metadata": {"uid": "other"}})

    assert caught.value.status == 422
    status = status_of(caught.value)
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'Secret "db" is invalid: metadata.uid: Invalid value: "other": '
        "field is immutable"
    )


def test_lease_update_without_version_is_422(fake_kube: FakeKube) -> None:
    leases: Any = client.CoordinationV1Api(fake_kube.api_client())
    fake_kube.add_namespace("team-a")
    body = {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}
    leases.create_namespaced_lease("team-a", body)
    takeover = {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "b"}}

    with pytest.raises(ApiException) as caught:
        leases.replace_namespaced_lease("leader", "team-a", takeover)

    # Leases disallow unconditional updates, so a leader election can never
    # overwrite a lease it has not read.
    assert caught.value.status == 422
    status = status_of(caught.value)
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'leases.coordination.k8s.io "leader" is invalid: metadata.resourceVersion: '
        "Invalid value: 0x0: must be specified for an update"
    )
    stored = fake_kube.get("coordination.k8s.io/v1", "leases", "team-a", "leader")
    assert stored["spec"]["holderIdentity"] == "a"


def test_secret_update_without_version_succeeds(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"})
    body = {"metadata": {"name": "db"}, "data": {"k": "djI="}}

    updated = core.replace_namespaced_secret("db", "team-a", body)

    assert updated.data == {"k": "djI="}


def test_lease_patch_without_version_succeeds(fake_kube: FakeKube) -> None:
    leases: Any = client.CoordinationV1Api(fake_kube.api_client())
    fake_kube.add_namespace("team-a")
    body = {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}
    leases.create_namespaced_lease("team-a", body)

    patched = leases.patch_namespaced_lease(
        "leader", "team-a", {"spec": {"holderIdentity": "b"}}
    )

    assert patched.spec.holder_identity == "b"


def test_put_control_replaces_lease_and_ignores_versions(fake_kube: FakeKube) -> None:
    fake_kube.add_namespace("team-a")
    lease: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "leader", "namespace": "team-a", "resourceVersion": "3"},
        "spec": {"holderIdentity": "a"},
    }
    fake_kube.preload([lease])
    lease["spec"] = {"holderIdentity": "b"}
    lease["metadata"]["uid"] = "stale"

    fake_kube.preload([lease])

    stored = fake_kube.get("coordination.k8s.io/v1", "leases", "team-a", "leader")
    assert stored["spec"]["holderIdentity"] == "b"
    assert stored["metadata"]["uid"] != "stale"


def test_event_for_object_in_other_namespace_is_422(
    fake_kube: FakeKube, core: Any
) -> None:
    fake_kube.add_namespace("team-a")
    event: dict[str, Any] = {
        "metadata": {"name": "db.1"},
        "involvedObject": {"kind": "Secret", "name": "db", "namespace": "runai"},
        "reason": "CopyFailed",
        "message": "m",
        "type": "Warning",
    }

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_event("team-a", event)
    event["involvedObject"]["namespace"] = "team-a"
    created = core.create_namespaced_event("team-a", event)

    assert caught.value.status == 422
    assert status_of(caught.value)["message"] == (
        'Event "db.1" is invalid: involvedObject.namespace: Invalid value: "runai": '
        "does not match event.namespace"
    )
    assert created.involved_object.namespace == "team-a"


def test_secret_type_change_is_422(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"})
    secret = core.read_namespaced_secret("db", "team-a")
    secret.type = "kubernetes.io/basic-auth"

    with pytest.raises(ApiException) as replaced:
        core.replace_namespaced_secret("db", "team-a", secret)
    with pytest.raises(ApiException) as patched:
        core.patch_namespaced_secret("db", "team-a", {"type": "example.com/token"})

    assert replaced.value.status == 422
    assert status_of(replaced.value)["reason"] == "Invalid"
    assert status_of(replaced.value)["message"] == (
        'Secret "db" is invalid: type: Invalid value: "kubernetes.io/basic-auth": '
        "field is immutable"
    )
    assert patched.value.status == 422
    assert fake_kube.get("v1", "secrets", "team-a", "db")["type"] == "Opaque"


def test_secret_update_keeps_same_type(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"}, type_="example.com/token")
    secret = core.read_namespaced_secret("db", "team-a")
    secret.data["k2"] = "djI="

    updated = core.replace_namespaced_secret("db", "team-a", secret)

    assert updated.type == "example.com/token"
    assert updated.data["k2"] == "djI="


def test_patch_content_types(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"}, labels={"a": "1", "b": "2"})

    merged = core.patch_namespaced_secret(
        "db", "team-a", {"metadata": {"labels": {"a": None}}}
    )
    jsonpatched = core.patch_namespaced_secret(
        "db", "team-a", [{"op": "add", "path": "/metadata/labels/c", "value": "3"}]
    )

    assert merged.metadata.labels == {"b": "2"}
    assert jsonpatched.metadata.labels == {"b": "2", "c": "3"}
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret(
            "db", "team-a", [{"op": "add", "path": "/spec/missing/x", "value": 1}]
        )
    assert caught.value.status == 422


def test_patch_with_stale_version_is_409(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"})

    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret(
            "db", "team-a", {"metadata": {"resourceVersion": "1"}}
        )

    assert caught.value.status == 409


def test_delete_checks_preconditions(fake_kube: FakeKube, core: Any) -> None:
    secret = fake_kube.add_secret("team-a", "db", {"k": "v"})
    wrong = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="other"))

    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_secret("db", "team-a", body=wrong)
    right = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=secret["metadata"]["uid"])
    )
    status = core.delete_namespaced_secret("db", "team-a", body=right)

    assert caught.value.status == 409
    assert (
        "Precondition failed: UID in precondition: other"
        in status_of(caught.value)["message"]
    )
    assert status["status"] == "Success"
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_secret("db", "team-a")
    assert gone.value.status == 404


def test_namespace_deletion_terminates_then_finalizes(
    fake_kube: FakeKube,
    core: Any,
) -> None:
    fake_kube.add_secret("team-a", "db", {"k": "v"})

    core.delete_namespace("team-a")
    terminating = core.read_namespace("team-a")
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("team-a", {"metadata": {"name": "new"}})
    fake_kube.finalize_namespace("team-a")

    assert terminating.status.phase == "Terminating"
    assert terminating.metadata.deletion_timestamp is not None
    assert caught.value.status == 403
    assert "because it is being terminated" in status_of(caught.value)["message"]
    assert core.list_namespace().items == []
    assert fake_kube.store.list_objects(SECRETS, "team-a")[0] == []


def test_namespace_gets_metadata_name_label(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_namespace("team-a", {"runai/queue": "a"})

    labels = core.read_namespace("team-a").metadata.labels

    assert labels == {"runai/queue": "a", "kubernetes.io/metadata.name": "team-a"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "b"]),
        ("tier==web", ["a", "b"]),
        ("tier!=web", ["c", "d"]),
        ("tier in (db,cache)", ["c"]),
        ("tier notin (web)", ["c", "d"]),
        ("tier", ["a", "b", "c"]),
        ("!tier", ["d"]),
        ("tier=web,zone in (x)", ["a"]),
    ],
)
def test_list_label_selectors(
    fake_kube: FakeKube,
    core: Any,
    selector: str,
    expected: list[str],
) -> None:
    fake_kube.add_secret("ns", "a", {}, labels={"tier": "web", "zone": "x"})
    fake_kube.add_secret("ns", "b", {}, labels={"tier": "web"})
    fake_kube.add_secret("ns", "c", {}, labels={"tier": "db"})
    fake_kube.add_secret("ns", "d", {}, labels={})

    names = [
        item.metadata.name
        for item in core.list_namespaced_secret("ns", label_selector=selector).items
    ]

    assert names == expected


@pytest.mark.parametrize(
    "selector",
    ["source=" + "x" * 64, "source in (ok," + "x" * 64 + ")", "source=-bad"],
)
def test_list_rejects_invalid_label_value(core: Any, selector: str) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_secret("ns", label_selector=selector)

    assert caught.value.status == 400
    assert "source" in status_of(caught.value)["message"]


def test_list_field_selectors_and_all_namespaces(
    fake_kube: FakeKube,
    core: Any,
) -> None:
    fake_kube.add_secret("ns1", "a", {})
    fake_kube.add_secret("ns2", "a", {})
    fake_kube.add_secret("ns2", "b", {})

    by_name = core.list_secret_for_all_namespaces(field_selector="metadata.name=a")
    by_namespace = core.list_secret_for_all_namespaces(
        field_selector="metadata.namespace!=ns1"
    )

    assert [(s.metadata.namespace, s.metadata.name) for s in by_name.items] == [
        ("ns1", "a"),
        ("ns2", "a"),
    ]
    assert [s.metadata.name for s in by_namespace.items] == ["a", "b"]
    assert int(by_name.metadata.resource_version) > 0
    with pytest.raises(ApiException) as caught:
        core.list_secret_for_all_namespaces(field_selector="spec.foo=x")
    assert caught.value.status == 400


def test_other_resources_round_trip(fake_kube: FakeKube) -> None:
    api_client = fake_kube.api_client()
    fake_kube.add_namespace("ns")
    leases: Any = client.CoordinationV1Api(api_client)
    events: Any = client.EventsV1Api(api_client)
    hooks: Any = client.AdmissionregistrationV1Api(api_client)

    lease = leases.create_namespaced_lease(
        "ns", {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "me"}}
    )
    event = events.create_namespaced_event(
        "ns",
        {
            "metadata": {"name": "e1"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "x",
            "reportingInstance": "y",
            "action": "A",
            "reason": "R",
            "type": "Normal",
        },
    )
    hook = hooks.create_mutating_webhook_configuration(
        {"metadata": {"name": "hook"}, "webhooks": []}
    )
    configmaps = client.CoreV1Api(api_client).list_namespaced_config_map("ns")

    assert lease.spec.holder_identity == "me"
    assert event.reason == "R"
    assert hook.metadata.name == "hook"
    assert configmaps.items == []
    assert (
        fake_kube.count(resource="leases", group="coordination.k8s.io", verb="create")
        == 1
    )
    with pytest.raises(ApiException) as caught:
        leases.read_namespaced_lease("other", "ns")
    assert (
        status_of(caught.value)["message"]
        == 'leases.coordination.k8s.io "other" not found'
    )


def collect(
    stream: Iterator[dict[str, Any]], count: int, w: watch.Watch
) -> list[tuple[str, Any]]:
    events = []
    for event in stream:
        obj = event["raw_object"]
        events.append(
            (
                event["type"],
                obj["metadata"].get("name", obj["metadata"]["resourceVersion"]),
            )
        )
        if len(events) == count:
            w.stop()
    return events


def test_watch_sends_changes_after_version(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("ns", "old", {})
    start = core.list_namespaced_secret("ns").metadata.resource_version
    fake_kube.add_secret("ns", "new", {})
    fake_kube.add_secret("ns", "new", {"k": "v"})
    fake_kube.store.remove(SECRETS, "ns", "new")
    w = watch.Watch()

    stream = w.stream(
        core.list_namespaced_secret, "ns", resource_version=start, timeout_seconds=5
    )
    events = collect(stream, 3, w)

    assert events == [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "new")]


def test_watch_without_version_lists_first(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("ns", "a", {})
    w = watch.Watch()

    events = collect(
        w.stream(core.list_namespaced_secret, "ns", timeout_seconds=5), 1, w
    )

    assert events == [("ADDED", "a")]


def test_watch_selector_exit_looks_like_delete(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("ns", "a", {}, labels={"pick": "yes"})
    start = core.list_namespaced_secret("ns").metadata.resource_version
    fake_kube.add_secret("ns", "a", {}, labels={"pick": "no"})
    w = watch.Watch()

    stream = w.stream(
        core.list_namespaced_secret,
        "ns",
        label_selector="pick=yes",
        resource_version=start,
        timeout_seconds=5,
    )
    events = collect(stream, 1, w)

    assert events == [("DELETED", "a")]


def test_watch_sends_bookmarks_and_times_out(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_namespace("ns")
    start = core.list_namespaced_secret("ns").metadata.resource_version
    w = watch.Watch()
    began = time.monotonic()

    stream = w.stream(
        core.list_namespaced_secret,
        "ns",
        resource_version=start,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
    )
    events = [event["type"] for event in stream]

    assert 0.9 < time.monotonic() - began < 3
    assert events
    assert set(events) == {"BOOKMARK"}
    assert w.resource_version == start


def test_watch_too_old_version_is_410(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("ns", "a", {})
    start = core.list_namespaced_secret("ns").metadata.resource_version
    fake_kube.add_secret("ns", "b", {})
    fake_kube.store.compact()
    w = watch.Watch()

    with pytest.raises(ApiException) as caught:
        list(
            w.stream(
                core.list_namespaced_secret,
                "ns",
                resource_version=start,
                timeout_seconds=2,
            )
        )

    assert caught.value.status == 410
    assert "Expired: too old resource version" in str(caught.value.reason)


def test_watch_relists_after_410(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("ns", "a", {})
    listed = core.list_namespaced_secret("ns")
    fake_kube.add_secret("ns", "b", {})
    fake_kube.store.compact()

    with pytest.raises(ApiException):
        list(
            watch.Watch().stream(
                core.list_namespaced_secret,
                "ns",
                resource_version=listed.metadata.resource_version,
                timeout_seconds=1,
            )
        )
    relisted = core.list_namespaced_secret("ns")
    w = watch.Watch()
    fake_kube.add_secret("ns", "c", {})
    events = collect(
        w.stream(
            core.list_namespaced_secret,
            "ns",
            resource_version=relisted.metadata.resource_version,
            timeout_seconds=5,
        ),
        1,
        w,
    )

    assert [s.metadata.name for s in relisted.items] == ["a", "b"]
    assert events == [("ADDED", "c")]


def test_unknown_token_is_401_status(fake_kube: FakeKube) -> None:
    core = client.CoreV1Api(fake_kube.api_client())
    fake_kube.rotate_token("second-token")

    with pytest.raises(ApiException) as caught:
        core.list_namespace()

    assert caught.value.status == 401
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    assert fake_kube.requests[-1].token == "fakekube-token"
    assert fake_kube.requests[-1].status == 401


def test_token_file_is_rewritten_on_rotation(
    fake_kube: FakeKube, tmp_path: Any
) -> None:
    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "with-file", token_file=True)
    token_path = tmp_path / "with-file.token"
    assert "tokenFile" in kubeconfig.read_text()
    before = client.CoreV1Api(fake_kube.api_client(kubeconfig))
    before.list_namespace()

    fake_kube.rotate_token("rotated")
    after = client.CoreV1Api(fake_kube.api_client(kubeconfig))

    assert token_path.read_text() == "rotated"
    with pytest.raises(ApiException) as caught:
        before.list_namespace()
    assert caught.value.status == 401
    assert after.list_namespace().items == []
    assert fake_kube.requests[-1].user == USER


def test_revoked_extra_token_is_401(fake_kube: FakeKube, tmp_path: Any) -> None:
    fake_kube.add_token("other", "alice")
    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "alice", token="other")
    core = client.CoreV1Api(fake_kube.api_client(kubeconfig))
    core.list_namespace()

    fake_kube.revoke_token("other")

    assert fake_kube.requests[-1].user == "alice"
    with pytest.raises(ApiException) as caught:
        core.list_namespace()
    assert caught.value.status == 401


def raw_get(kube: FakeKube, path: str) -> httpx.Response:
    context = ssl.create_default_context(cadata=kube.ca_pem.decode())
    headers = {"Authorization": f"Bearer {kube.token}"}
    return httpx.get(kube.url + path, headers=headers, verify=context)


def test_fault_latency_and_500(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("ns", "a", {})
    fake_kube.add_fault(verb="get", resource="secrets", latency=0.3, times=1)
    fake_kube.add_fault(verb="get", resource="secrets", status=500, times=1)

    began = time.monotonic()
    core.read_namespaced_secret("a", "ns")
    slow = time.monotonic() - began
    with pytest.raises(ApiException) as failed:
        core.read_namespaced_secret("a", "ns")
    core.read_namespaced_secret("a", "ns")

    assert slow >= 0.3
    assert failed.value.status == 500
    assert status_of(failed.value)["reason"] == "InternalError"
    assert fake_kube.count(verb="get", resource="secrets") == 3


def test_fault_429_has_retry_after(fake_kube: FakeKube) -> None:
    fake_kube.add_namespace("ns")
    fake_kube.add_fault(verb="list", status=429, retry_after=2)

    response = raw_get(fake_kube, "/api/v1/namespaces/ns/secrets")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["reason"] == "TooManyRequests"
    assert response.json()["details"] == {"retryAfterSeconds": 2}


def test_client_retries_429_after_delay(fake_kube: FakeKube, core: Any) -> None:
    # urllib3 under the kubernetes client honours Retry-After on 429.
    fake_kube.add_namespace("ns")
    fake_kube.add_fault(verb="list", status=429, retry_after=1, times=1)
    began = time.monotonic()

    core.list_namespaced_secret("ns")

    assert time.monotonic() - began >= 1
    assert fake_kube.count(verb="list") == 2


def test_unknown_path_is_404_status(fake_kube: FakeKube) -> None:
    response = raw_get(fake_kube, "/api/v1/namespaces/ns/widgets")

    assert response.status_code == 404
    assert response.json()["kind"] == "Status"


def test_fault_403_names_user_and_resource(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("ns", "a", {})
    fake_kube.add_fault(resource="secrets", namespace="ns", status=403)

    with pytest.raises(ApiException) as caught:
        core.read_namespaced_secret("a", "ns")

    assert caught.value.status == 403
    assert status_of(caught.value)["message"].startswith(
        f'secrets "a" is forbidden: User "{USER}"'
    )


def test_fault_reset_drops_connection(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("ns", "a", {})
    fake_kube.add_fault(verb="get", reset=True)

    with pytest.raises(urllib3.exceptions.HTTPError):
        core.read_namespaced_secret("a", "ns", _request_timeout=5)

    assert fake_kube.requests[-1].status == 0
    assert fake_kube.count(verb="get") >= 1


def test_fault_silent_watch_sends_nothing(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_secret("ns", "a", {})
    fake_kube.add_fault(verb="watch", silent_watch=True)
    began = time.monotonic()

    events = list(
        watch.Watch().stream(core.list_namespaced_secret, "ns", timeout_seconds=1)
    )

    assert events == []
    assert time.monotonic() - began >= 0.9


def test_request_log_records_query_and_user(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_namespace("ns")
    fake_kube.clear_log()

    core.list_namespaced_secret("ns", label_selector="a=b", limit=5)

    (record,) = fake_kube.requests
    assert record.verb == "list"
    assert record.method == "GET"
    assert record.path == "/api/v1/namespaces/ns/secrets"
    assert record.namespace == "ns"
    assert record.query["labelSelector"] == "a=b"
    assert record.token == "fakekube-token"
    assert record.user == USER
    assert record.status == 200


def test_runs_as_subprocess_with_state_file(tmp_path: Any) -> None:
    state = tmp_path / "state.yaml"
    state.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: team-a}\n"
        "data: {password: czNjcmV0}\n---\n"
        "apiVersion: v1\nkind: Namespace\n"
        "metadata: {name: team-b, labels: {runai/queue: b}}\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.harness.fakekube",
            "--port",
            "0",
            "--state-file",
            str(state),
            "--kubeconfig",
            str(tmp_path / "kubeconfig"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=ready["kubeconfig"], client_configuration=configuration
        )
        core: Any = client.CoreV1Api(client.ApiClient(configuration))

        secret = core.read_namespaced_secret("db", "team-a")
        namespaces = [ns.metadata.name for ns in core.list_namespace().items]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)

    assert ready["server"].startswith("https://127.0.0.1:")
    assert secret.data == {"password": "czNjcmV0"}
    assert namespaces == ["team-a", "team-b"]
    assert code == 0


def test_list_pages_with_limit_and_continue(fake_kube: FakeKube, core: Any) -> None:
    for name in ("a", "b", "c", "d", "e"):
        fake_kube.add_secret("ns", name, {})

    first = core.list_namespaced_secret("ns", limit=2)
    second = core.list_namespaced_secret(
        "ns", limit=2, _continue=first.metadata._continue
    )
    third = core.list_namespaced_secret(
        "ns", limit=2, _continue=second.metadata._continue
    )

    assert [s.metadata.name for s in first.items] == ["a", "b"]
    assert first.metadata.remaining_item_count == 3
    assert [s.metadata.name for s in second.items] == ["c", "d"]
    assert second.metadata.resource_version == first.metadata.resource_version
    assert [s.metadata.name for s in third.items] == ["e"]
    assert third.metadata._continue is None


def test_continue_after_compaction_is_410(fake_kube: FakeKube, core: Any) -> None:
    for name in ("a", "b", "c"):
        fake_kube.add_secret("ns", name, {})
    first = core.list_namespaced_secret("ns", limit=1)
    fake_kube.add_secret("ns", "d", {})
    fake_kube.store.compact()

    with pytest.raises(ApiException) as caught:
        core.list_namespaced_secret("ns", limit=1, _continue=first.metadata._continue)

    assert caught.value.status == 410
    assert status_of(caught.value)["reason"] == "Expired"


def test_namespace_name_label_survives_update(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.add_namespace("team-a", {"runai/queue": "a"})
    namespace = core.read_namespace("team-a")
    namespace.metadata.labels = {"other": "x"}

    updated = core.replace_namespace("team-a", namespace)

    assert updated.metadata.labels == {
        "other": "x",
        "kubernetes.io/metadata.name": "team-a",
    }


def test_plain_client_leaves_no_traceback(
    fake_kube: FakeKube, capfd: pytest.CaptureFixture[str]
) -> None:
    """A client that does not speak TLS is dropped without a server traceback."""
    address = urllib3.util.parse_url(fake_kube.url)
    with socket.create_connection((address.host, address.port), timeout=5) as plain:
        plain.sendall(b"GET /api HTTP/1.1\r\nHost: fake\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            plain.recv(1024)
    # The server still serves the next client after dropping the first one.
    fake_kube.add_namespace("team-a")
    client.CoreV1Api(fake_kube.api_client()).read_namespace("team-a")

    assert "Traceback" not in capfd.readouterr().err
