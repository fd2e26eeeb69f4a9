"""Control annotations on a workload's pod template, and the pods made from it."""

from __future__ import annotations

import copy
from typing import Any

from webhook.admission import SecretLookup

from .builders import apply, container, env, review, run

PREFIX = "runai-secrets-webhook"
INJECT = f"{PREFIX}/inject"
CONTAINERS = f"{PREFIX}/containers"
ENV = f"{PREFIX}/env"
MISSING = {"not-there": SecretLookup.not_found()}


def job(
    own: dict[str, str] | None = None, template: dict[str, str] | None = None
) -> dict[str, Any]:
    pod_template: dict[str, Any] = {
        "spec": {
            "containers": [
                container("app", env("TOKEN", "SECRET:not-there,k")),
                container("sidecar"),
            ],
            "restartPolicy": "Never",
        }
    }
    if template is not None:
        pod_template["metadata"] = {"annotations": template}
    metadata: dict[str, Any] = {"name": "train"}
    if own is not None:
        metadata["annotations"] = own
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {"template": pod_template},
    }


def pod_from(workload: dict[str, Any]) -> dict[str, Any]:
    """Build the Pod a Job controller creates: the template's metadata and spec."""
    pod_template = copy.deepcopy(workload["spec"]["template"])
    metadata = pod_template.get("metadata", {})
    metadata["generateName"] = "train-"
    metadata["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "1"}
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": pod_template["spec"],
    }


def env_names(pod: dict[str, Any], name: str) -> list[str]:
    for item in pod["spec"]["containers"]:
        if item["name"] == name:
            return [entry["name"] for entry in item.get("env", [])]
    raise AssertionError(f"no container {name}")


def test_template_opt_out_reaches_pod() -> None:
    workload = job(template={INJECT: "false"})

    job_decision = run(review(workload, kind="Job"), MISSING)
    pod_decision = run(review(pod_from(workload)), MISSING)

    assert job_decision.allowed
    assert job_decision.patch == ()
    assert job_decision.warnings == ()
    assert pod_decision.allowed
    assert pod_decision.patch == ()


def test_own_opt_out_warns_about_pods() -> None:
    workload = job(own={INJECT: "false"})

    decision = run(review(workload, kind="Job"), MISSING)

    assert decision.allowed
    assert decision.patch == ()
    assert len(decision.warnings) == 1
    assert INJECT in decision.warnings[0]
    assert "spec.template.metadata.annotations" in decision.warnings[0]


def test_template_annotation_wins_over_own() -> None:
    workload = job(own={INJECT: "false"}, template={INJECT: "true"})

    decision = run(review(workload, kind="Job"), MISSING)

    assert not decision.allowed
    assert decision.code == 403
    assert '"not-there"' in decision.message


def test_template_containers_and_env_reach_pod() -> None:
    annotations = {CONTAINERS: "app", ENV: "DB=SECRET:db-creds,password"}
    workload = job(template={INJECT: "false", **annotations})

    rv = review(workload, kind="Job")
    decision = run(rv)
    patched = apply(rv, decision)
    pod = pod_from(patched)
    pod_decision = run(review(pod))

    assert decision.allowed
    assert decision.warnings == ()
    assert env_names(pod, "app") == ["TOKEN", "DB"]
    assert env_names(pod, "sidecar") == []
    assert pod_decision.allowed
    assert pod_decision.patch == ()


def test_own_containers_warns_about_pods() -> None:
    workload = job(own={CONTAINERS: "app", INJECT: "false"}, template={INJECT: "false"})

    decision = run(review(workload, kind="Job"), MISSING)

    assert decision.allowed
    assert len(decision.warnings) == 1
    assert CONTAINERS in decision.warnings[0]
    assert "spec.template.metadata.annotations" in decision.warnings[0]
