"""Cases from public bug reports against injection webhooks, end to end.

The webhook runs as a subprocess with real certificates, the fake API
server contains secret `db-creds` (keys `username`, `password`) in namespaces
`runai-team-a` and `runai-team-b`, and the harness's caller plays
kube-apiserver: TLS verified for the Service name, `?timeout=`, response
checks, the patch applied and the result validated against the schema.
"""

from __future__ import annotations

import json

from tests.e2e.conftest import Cluster, caller_for
from tests.e2e.pods import (
    container,
    env_of,
    last_response,
    patch_of,
    placeholder,
    pod,
    secret_ref,
)

MARKER = "runai-secrets-webhook/injected"


def test_init_container_only(cluster: Cluster) -> None:
    manifest = pod(
        container("main"),
        init=[container("migrate", placeholder("DB_PASS", key="password"))],
    )

    result = cluster.caller.admit(manifest, namespace="runai-team-a")

    assert result.allowed, result.message
    assert env_of(result, field="initContainers") == [
        secret_ref("DB_PASS", key="password")
    ]
    assert env_of(result) == []


def test_optional_own_ref_left_alone(cluster: Cluster) -> None:
    own = {
        "name": "OPTIONAL",
        "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}},
    }
    manifest = pod(container("main", own, placeholder("DB_USER")))

    result = cluster.caller.admit(manifest, namespace="runai-team-a")

    assert result.allowed, result.message
    assert env_of(result) == [own, secret_ref("DB_USER")]
    assert cluster.kube.count(verb="get", resource="secrets", name="absent") == 0
    assert cluster.secret_gets("runai-team-a") == 1


def test_no_placeholders_v1(cluster: Cluster) -> None:
    result = cluster.caller.admit(pod(), namespace="runai-team-a")
    review = result.calls[-1].response

    assert result.allowed, result.message
    assert review is not None
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert review["kind"] == "AdmissionReview"
    assert review["response"]["uid"] == result.requests[-1]["request"]["uid"]
    assert "patch" not in review["response"]
    assert "patchType" not in review["response"]
    assert cluster.secret_gets() == 0


def test_no_placeholders_v1beta1(cluster: Cluster) -> None:
    with caller_for(
        cluster.service, cluster.kube, cluster.certificates, versions=["v1beta1"]
    ) as caller:
        result = caller.admit(pod(), namespace="runai-team-a")
    review = result.calls[-1].response

    assert result.allowed, result.message
    assert result.requests[-1]["apiVersion"] == "admission.k8s.io/v1beta1"
    assert review is not None
    assert review["apiVersion"] == "admission.k8s.io/v1beta1"
    assert review["response"]["uid"] == result.requests[-1]["request"]["uid"]
    assert "patch" not in review["response"]
    assert "patchType" not in review["response"]


def test_odd_annotation_keys_survive(cluster: Cluster) -> None:
    annotations = {"team.example.com/owner": "ml-team", "odd~key": "tilde"}
    manifest = pod(container("main", placeholder("DB_USER")), annotations=annotations)

    result = cluster.caller.admit(manifest, namespace="runai-team-a")

    assert result.allowed, result.message
    assert result.object is not None
    stored = result.object["metadata"]["annotations"]
    assert stored["team.example.com/owner"] == "ml-team"
    assert stored["odd~key"] == "tilde"
    assert MARKER in stored


def test_marker_on_pod_without_annotations(cluster: Cluster) -> None:
    result = cluster.caller.admit(
        pod(container("main", placeholder("DB_USER"))), namespace="runai-team-a"
    )

    assert result.allowed, result.message
    assert result.object is not None
    assert list(result.object["metadata"]["annotations"]) == [MARKER]


def test_annotation_form_three_env_shapes(cluster: Cluster) -> None:
    manifest = pod(
        container("no-env"),
        container("empty-env", env=[]),
        container("one-env", {"name": "EXISTING", "value": "1"}),
        annotations={"runai-secrets-webhook/env": "DB_USER=SECRET:db-creds,username\n"},
    )

    result = cluster.caller.admit(manifest, namespace="runai-team-a")

    assert result.allowed, result.message
    assert env_of(result, 0) == [secret_ref("DB_USER")]
    assert env_of(result, 1) == [secret_ref("DB_USER")]
    assert env_of(result, 2) == [
        {"name": "EXISTING", "value": "1"},
        secret_ref("DB_USER"),
    ]


def test_request_namespace_only_consulted(cluster: Cluster) -> None:
    manifest = pod(container("main", placeholder("DB_USER")), namespace="")

    result = cluster.caller.admit(manifest, namespace="runai-team-a")

    assert result.allowed, result.message
    assert result.requests[-1]["request"]["object"]["metadata"]["namespace"] == (
        "runai-team-a"
    )
    assert cluster.secret_gets("runai-team-a") == 1
    assert cluster.secret_gets("runai-team-b") == 0


def test_object_in_other_namespace_never_reaches_webhook(cluster: Cluster) -> None:
    manifest = pod(container("main", placeholder("DB_USER")), namespace="runai-team-b")

    result = cluster.caller.admit(manifest, namespace="runai-team-a")

    assert result.code == 400
    assert result.calls == []
    assert cluster.secret_gets() == 0


def test_generate_name_with_owner(cluster: Cluster) -> None:
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "train",
        "uid": "6f0d5b2c-1111-4c3e-9a55-2f1f5e3c0a01",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    manifest = pod(
        container("main", placeholder("DB_USER")),
        name=None,
        generateName="train-",
        ownerReferences=[owner],
    )

    result = cluster.caller.admit(manifest, namespace="runai-team-a")

    assert result.allowed, result.message
    assert "name" not in result.requests[-1]["request"]
    assert env_of(result) == [secret_ref("DB_USER")]


def test_native_sidecar_fields_untouched(cluster: Cluster) -> None:
    sidecar = container(
        "proxy", placeholder("DB_USER"), restartPolicy="Always", futureField="kept"
    )
    manifest = pod(container("main"), init=[sidecar])

    result = cluster.caller.admit(manifest, namespace="runai-team-a")
    operations = json.dumps(patch_of(result))

    assert result.allowed, result.message
    assert "restartPolicy" not in operations
    assert "futureField" not in operations
    assert result.object is not None
    assert result.object["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    assert env_of(result, field="initContainers") == [secret_ref("DB_USER")]


def test_pod_update_allowed_unpatched(cluster: Cluster) -> None:
    old = pod(
        container("main", placeholder("DB_USER")), finalizers=["example.com/hold"]
    )
    new = pod(container("main", placeholder("DB_USER")))

    result = cluster.caller.admit(
        new, operation="UPDATE", namespace="runai-team-a", old_object=old
    )

    assert result.allowed, result.message
    assert "patch" not in last_response(result)
    assert cluster.secret_gets() == 0


def test_dry_run_identical_response(cluster: Cluster) -> None:
    manifest = pod(container("main", placeholder("DB_USER")))

    real = last_response(cluster.caller.admit(manifest, namespace="runai-team-a"))
    dry = last_response(
        cluster.caller.admit(manifest, namespace="runai-team-a", dry_run=True)
    )

    assert real.pop("uid") != dry.pop("uid")
    assert dry == real


def test_second_pass_changes_only_new(cluster: Cluster) -> None:
    first = cluster.caller.admit(
        pod(container("main", placeholder("DB_USER"))), namespace="runai-team-a"
    )
    assert first.object is not None
    converted = first.object
    converted["spec"]["containers"].append(
        container("added", placeholder("DB_PASS", key="password"))
    )

    second = cluster.caller.admit(converted, namespace="runai-team-a")
    paths = [operation["path"] for operation in patch_of(second)]

    assert second.allowed, second.message
    assert env_of(second, 0) == [secret_ref("DB_USER")]
    assert env_of(second, 1) == [secret_ref("DB_PASS", key="password")]
    assert all(not path.startswith("/spec/containers/0") for path in paths)
    assert any(path.startswith("/spec/containers/1") for path in paths)


def test_forbidden_gives_rbac_message(cluster: Cluster) -> None:
    cluster.kube.deny("get", "secrets", namespace="runai-team-a")

    result = cluster.caller.admit(
        pod(container("main", placeholder("DB_USER"))), namespace="runai-team-a"
    )

    assert not result.allowed
    assert result.code == 500
    assert 'resources ["secrets"], verbs ["get"]' in result.message
    assert "not found" not in result.message


def test_kube_system_skipped_by_selector(cluster: Cluster) -> None:
    result = cluster.caller.admit(pod(namespace="kube-system"), namespace="kube-system")

    assert result.allowed, result.message
    assert result.calls == []
    assert cluster.secret_gets() == 0


def test_kube_system_called_without_lookup(cluster: Cluster) -> None:
    with caller_for(
        cluster.service, cluster.kube, cluster.certificates, exclude_namespaces=False
    ) as caller:
        result = caller.admit(pod(namespace="kube-system"), namespace="kube-system")

    assert result.allowed, result.message
    assert len(result.calls) == 1
    assert "patch" not in last_response(result)
    assert cluster.secret_gets() == 0
