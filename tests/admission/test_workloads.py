"""Which kinds, operations and subresources are reviewed, and where env sits."""

import copy
from typing import Any

import pytest

from webhook.admission import (
    InjectionOptions,
    Plan,
    SecretLookup,
    load_workload_kinds,
    plan_review,
)

from .builders import apply, container, env, patch_paths, pod, review, run, secret_env

REF = env("DB_PASS", "SECRET:db-creds,password")
CONVERTED = secret_env("DB_PASS", "db-creds", "password")


def template(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": list(containers)},
    }


def workload(kind: str, api_version: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "train"},
        "spec": spec,
    }


TEMPLATED = {
    "Job": ("batch/v1", "/spec/template/spec"),
    "Deployment": ("apps/v1", "/spec/template/spec"),
    "StatefulSet": ("apps/v1", "/spec/template/spec"),
    "ReplicaSet": ("apps/v1", "/spec/template/spec"),
    "DaemonSet": ("apps/v1", "/spec/template/spec"),
    "RunaiJob": ("run.ai/v1", "/spec/template/spec"),
}


@pytest.mark.parametrize("kind", sorted(TEMPLATED))
def test_template_kinds_convert_on_create(kind: str) -> None:
    api_version, spec_path = TEMPLATED[kind]
    obj = workload(kind, api_version, {"template": template(container("app", REF))})
    rv = review(obj, kind=kind)
    decision = run(rv)
    assert patch_paths(decision) == [
        f"{spec_path}/containers/0/env/0",
        "/metadata/annotations",
    ]
    admitted = apply(rv, decision)
    assert admitted["spec"]["template"]["spec"]["containers"][0]["env"] == [CONVERTED]
    assert admitted["spec"]["template"]["metadata"] == {"labels": {"app": "x"}}


def test_cron_job_template() -> None:
    spec = {
        "schedule": "* * * * *",
        "jobTemplate": {"spec": {"template": template(container("app", REF))}},
    }
    rv = review(workload("CronJob", "batch/v1", spec), kind="CronJob")
    decision = run(rv)
    assert (
        patch_paths(decision)[0]
        == "/spec/jobTemplate/spec/template/spec/containers/0/env/0"
    )
    admitted = apply(rv, decision)
    assert admitted["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0][
        "env"
    ] == [CONVERTED]


@pytest.mark.parametrize(
    "kind", ["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "RunaiJob"]
)
def test_mutable_templates_convert_on_update(kind: str) -> None:
    api_version, _ = TEMPLATED[kind]
    obj = workload(kind, api_version, {"template": template(container("app", REF))})
    decision = run(review(obj, kind=kind, operation="UPDATE", old=obj))
    assert len(decision.patch) == 2


def test_job_update_is_allowed_untouched() -> None:
    obj = workload("Job", "batch/v1", {"template": template(container("app", REF))})
    outcome = plan_review(
        review(obj, kind="Job", operation="UPDATE", old=obj), InjectionOptions()
    )
    assert not isinstance(outcome, Plan)
    assert outcome.allowed
    assert outcome.patch == ()


def test_pod_update_is_allowed_without_patch() -> None:
    old = pod(container("app", REF), finalizers=["example.com/keep"])
    new = pod(container("app", REF))
    outcome = plan_review(review(new, operation="UPDATE", old=old), InjectionOptions())
    assert not isinstance(outcome, Plan)
    assert outcome.allowed
    assert outcome.patch == ()


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_other_operations_are_allowed(operation: str) -> None:
    obj = pod(container("app", REF)) if operation == "CONNECT" else None
    outcome = plan_review(review(obj, operation=operation), InjectionOptions())
    assert not isinstance(outcome, Plan)
    assert outcome.allowed
    assert outcome.patch == ()


def test_status_subresource_is_skipped() -> None:
    obj = workload(
        "Deployment", "apps/v1", {"template": template(container("app", REF))}
    )
    rv = review(
        obj, kind="Deployment", operation="UPDATE", old=obj, sub_resource="status"
    )
    assert not isinstance(plan_review(rv, InjectionOptions()), Plan)


def test_unknown_kind_is_allowed() -> None:
    obj = workload("PyTorchJob", "kubeflow.org/v1", {"pytorchReplicaSpecs": {}})
    outcome = plan_review(review(obj, kind="PyTorchJob"), InjectionOptions())
    assert not isinstance(outcome, Plan)
    assert outcome.allowed


def ephemeral_pod(*ephemeral: dict[str, Any]) -> dict[str, Any]:
    obj = pod(container("app", REF))
    obj["spec"]["ephemeralContainers"] = list(ephemeral)
    return obj


def test_new_ephemeral_container_is_converted() -> None:
    old = ephemeral_pod(container("debug-1", env("X", "SECRET:db-creds,nokey")))
    new = ephemeral_pod(
        container("debug-1", env("X", "SECRET:db-creds,nokey")),
        container("debug-2", REF),
    )
    rv = review(new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers")
    decision = run(rv)
    assert decision.allowed
    assert patch_paths(decision) == ["/spec/ephemeralContainers/1/env/0"]
    admitted = apply(rv, decision)
    assert admitted["spec"]["ephemeralContainers"][1]["env"] == [CONVERTED]
    assert admitted["spec"]["containers"] == new["spec"]["containers"]


def test_ephemeral_without_new_containers_is_allowed() -> None:
    obj = ephemeral_pod(container("debug-1", REF))
    rv = review(obj, operation="UPDATE", old=obj, sub_resource="ephemeralcontainers")
    outcome = plan_review(rv, InjectionOptions())
    assert not isinstance(outcome, Plan)
    assert outcome.patch == ()


def test_ephemeral_ignores_env_annotation() -> None:
    old = ephemeral_pod()
    new = ephemeral_pod(container("debug"))
    new["metadata"]["annotations"] = {
        "runai-secrets-webhook/env": "A=SECRET:db-creds,username"
    }
    rv = review(new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers")
    outcome = plan_review(rv, InjectionOptions())
    assert not isinstance(outcome, Plan)
    assert outcome.patch == ()


def test_ephemeral_create_is_not_reviewed() -> None:
    rv = review(ephemeral_pod(container("d", REF)), sub_resource="ephemeralcontainers")
    assert not isinstance(plan_review(rv, InjectionOptions()), Plan)


def v2_workload(kind: str, items: dict[str, Any]) -> dict[str, Any]:
    return workload(
        kind, "run.ai/v2alpha1", {"environment": {"items": items}, "image": "busybox"}
    )


@pytest.mark.parametrize(
    "kind", ["TrainingWorkload", "InteractiveWorkload", "DistributedWorkload"]
)
def test_v2_workloads_are_checked_not_rewritten(kind: str) -> None:
    items = {
        "DB_PASS": {"value": "SECRET:db-creds,password"},
        "MODE": {"value": "fast"},
    }
    rv = review(v2_workload(kind, items), kind=kind)
    plan = plan_review(rv, InjectionOptions())
    assert isinstance(plan, Plan)
    assert plan.secret_names == ("db-creds",)
    decision = run(rv)
    assert decision.allowed
    assert decision.patch == ()


def test_v2_workload_missing_key_is_denied() -> None:
    kind = "TrainingWorkload"
    rv = review(
        v2_workload(kind, {"DB_PASS": {"value": "SECRET:db-creds,nokey"}}), kind=kind
    )
    decision = run(rv)
    assert not decision.allowed
    assert decision.message == (
        'TrainingWorkload "train": Secret "db-creds" in namespace "runai-team-a" '
        'has no key "nokey". It is used by env var "DB_PASS". Add key "nokey" to '
        "the secret or fix the key in the reference."
    )


def test_v2_workload_malformed_reference_is_denied() -> None:
    kind = "InteractiveWorkload"
    rv = review(v2_workload(kind, {"X": {"value": "SECRET:Bad,k"}}), kind=kind)
    decision = run(rv, lookups={})
    assert decision.code == 400
    assert decision.message.startswith(
        'InteractiveWorkload "train", env var "X": value "SECRET:Bad,k" '
        "is not a valid secret reference"
    )


def test_v2_update_checks_only_changed_items() -> None:
    # A secret deleted after the workload was created must not block its
    # updates, such as the removal of a finalizer while it is deleted.
    kind = "TrainingWorkload"
    old = v2_workload(kind, {"DB_PASS": {"value": "SECRET:db-creds,password"}})
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = []
    deleted = {"db-creds": SecretLookup.not_found()}

    unchanged = run(review(new, kind=kind, operation="UPDATE", old=old), deleted)
    new["spec"]["environment"]["items"]["TOKEN"] = {"value": "SECRET:db-creds,token"}
    added = run(review(new, kind=kind, operation="UPDATE", old=old), deleted)

    assert unchanged.allowed
    assert unchanged.patch == ()
    assert not added.allowed
    assert added.code == 403
    assert 'env var "TOKEN"' in added.message
    assert 'env var "DB_PASS"' not in added.message


ENV_ANNOTATION = "runai-secrets-webhook/env"


def annotated_v2_workload(text: str) -> dict[str, Any]:
    obj = v2_workload("TrainingWorkload", {"MODE": {"value": "fast"}})
    obj["metadata"]["annotations"] = {ENV_ANNOTATION: text}
    return obj


def test_v2_env_annotation_checked_and_warned() -> None:
    rv = review(
        annotated_v2_workload("DB_PASS=SECRET:db-creds,password"),
        kind="TrainingWorkload",
    )

    plan = plan_review(rv, InjectionOptions())
    decision = run(rv)

    assert isinstance(plan, Plan)
    assert plan.secret_names == ("db-creds",)
    assert decision.allowed
    assert decision.patch == ()
    assert len(decision.warnings) == 1
    assert ENV_ANNOTATION in decision.warnings[0]
    assert "TrainingWorkload" in decision.warnings[0]
    assert "spec.environment" in decision.warnings[0]


def test_v2_env_annotation_missing_secret_denied() -> None:
    rv = review(annotated_v2_workload("X=SECRET:nope,nokey"), kind="TrainingWorkload")

    decision = run(rv, lookups={"nope": SecretLookup.not_found()})

    assert not decision.allowed
    assert decision.code == 403
    assert '"nope"' in decision.message
    assert ENV_ANNOTATION in decision.message


def test_v2_update_skips_unchanged_env_annotation() -> None:
    old = annotated_v2_workload("X=SECRET:nope,nokey")
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"team": "a"}
    rv = review(new, kind="TrainingWorkload", operation="UPDATE", old=old)

    decision = run(rv, lookups={"nope": SecretLookup.not_found()})

    assert decision.allowed
    assert decision.warnings == ()


def test_v2_env_annotation_syntax_denied() -> None:
    rv = review(annotated_v2_workload("X SECRET:nope"), kind="TrainingWorkload")

    decision = run(rv, lookups={})

    assert decision.code == 400
    assert f"annotation {ENV_ANNOTATION} line 1" in decision.message


PYTORCH = load_workload_kinds(
    {
        "kinds": [
            {
                "group": "kubeflow.org",
                "version": "v1",
                "kind": "PyTorchJob",
                "podSpecs": ["/spec/pytorchReplicaSpecs/*/template/spec"],
                "onUpdate": False,
            }
        ]
    }
)


def test_configured_kind_with_wildcard() -> None:
    spec = {
        "pytorchReplicaSpecs": {
            "Master": {"replicas": 1, "template": template(container("pytorch", REF))},
            "Worker": {"replicas": 4, "template": template(container("pytorch", REF))},
        }
    }
    rv = review(workload("PyTorchJob", "kubeflow.org/v1", spec), kind="PyTorchJob")
    options = InjectionOptions(extra_kinds=PYTORCH)
    decision = run(rv, options=options)
    assert patch_paths(decision) == [
        "/spec/pytorchReplicaSpecs/Master/template/spec/containers/0/env/0",
        "/spec/pytorchReplicaSpecs/Worker/template/spec/containers/0/env/0",
        "/metadata/annotations",
    ]
    admitted = apply(rv, decision)
    assert admitted["metadata"]["annotations"] == {
        "runai-secrets-webhook/injected": "pytorch/DB_PASS"
    }
    worker = admitted["spec"]["pytorchReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 4
    assert worker["template"]["spec"]["containers"][0]["env"] == [CONVERTED]


def test_configured_kind_on_update_off() -> None:
    spec = {
        "pytorchReplicaSpecs": {"Master": {"template": template(container("p", REF))}}
    }
    obj = workload("PyTorchJob", "kubeflow.org/v1", spec)
    rv = review(obj, kind="PyTorchJob", operation="UPDATE", old=obj)
    assert not isinstance(plan_review(rv, InjectionOptions(extra_kinds=PYTORCH)), Plan)


def test_containers_annotation_checks_all_pod_specs() -> None:
    spec = {
        "pytorchReplicaSpecs": {
            "Master": {"template": template(container("master"))},
            "Worker": {"template": template(container("worker"))},
        }
    }
    obj = workload("PyTorchJob", "kubeflow.org/v1", spec)
    obj["metadata"]["annotations"] = {
        "runai-secrets-webhook/env": "A=SECRET:db-creds,username",
        "runai-secrets-webhook/containers": "worker",
    }
    rv = review(obj, kind="PyTorchJob")
    decision = run(
        rv,
        {"db-creds": SecretLookup.found({"username"})},
        InjectionOptions(extra_kinds=PYTORCH),
    )
    admitted = apply(rv, decision)
    replicas = admitted["spec"]["pytorchReplicaSpecs"]
    assert "env" not in replicas["Master"]["template"]["spec"]["containers"][0]
    assert replicas["Worker"]["template"]["spec"]["containers"][0]["env"] == [
        secret_env("A", "db-creds", "username")
    ]


def test_unknown_container_listed_once_per_name() -> None:
    spec = {
        "pytorchReplicaSpecs": {
            "Master": {"template": template(container("pytorch"))},
            "Worker": {"template": template(container("pytorch"))},
        }
    }
    obj = workload("PyTorchJob", "kubeflow.org/v1", spec)
    obj["metadata"]["annotations"] = {"runai-secrets-webhook/containers": "trainer"}
    rv = review(obj, kind="PyTorchJob")
    decision = run(rv, {}, InjectionOptions(extra_kinds=PYTORCH))
    assert decision.message == (
        'PyTorchJob "train": annotation runai-secrets-webhook/containers names '
        'container "trainer", which is not one of its app containers ("pytorch"). '
        "Fix the name or remove it from the annotation."
    )


def test_template_containers_checked_against_own_spec() -> None:
    # Pods copy their template's annotation, so a name that only another
    # replica's template has would deny every pod made from this one.
    master = template(container("master"))
    master["metadata"]["annotations"] = {"runai-secrets-webhook/containers": "worker"}
    spec = {
        "pytorchReplicaSpecs": {
            "Master": {"template": master},
            "Worker": {"template": template(container("worker"))},
        }
    }
    rv = review(workload("PyTorchJob", "kubeflow.org/v1", spec), kind="PyTorchJob")

    decision = run(rv, {}, InjectionOptions(extra_kinds=PYTORCH))

    assert not decision.allowed
    assert decision.code == 400
    assert decision.message == (
        'PyTorchJob "train": annotation runai-secrets-webhook/containers in '
        "spec.pytorchReplicaSpecs.Master.template.metadata.annotations names "
        'container "worker", which is not one of the pod template\'s app containers '
        '("master"). Fix the name or remove it from the annotation.'
    )


def test_v2_lower_case_value_warns() -> None:
    items = {"DB_PASS": {"value": "secret:db-creds,password"}}
    rv = review(v2_workload("TrainingWorkload", items), kind="TrainingWorkload")

    decision = run(rv)

    assert decision.allowed
    assert decision.patch == ()
    (warning,) = decision.warnings
    assert warning.startswith('env var "DB_PASS" starts with "secret:"')
