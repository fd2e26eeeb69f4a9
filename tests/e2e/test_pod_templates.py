"""Control annotations on a Job's pod template reach the Job's pods, end to end.

The webhook runs as a subprocess, and the harness plays kube-apiserver for
the Job and then for the Pod that the Job controller makes from the stored
Job's template.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.e2e.conftest import Cluster
from tests.e2e.pods import container, placeholder

INJECT = "runai-secrets-webhook/inject"
NAMESPACE = "runai-team-a"


def job(own: dict[str, str], template: dict[str, str]) -> dict[str, Any]:
    pod_spec = {
        "containers": [
            container("app", placeholder("TOKEN", secret="not-there", key="k"))
        ],
        "restartPolicy": "Never",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": NAMESPACE, "annotations": own},
        "spec": {"template": {"metadata": {"annotations": template}, "spec": pod_spec}},
    }


def pod_from(stored_job: dict[str, Any]) -> dict[str, Any]:
    """Build the Pod the Job controller creates from the stored Job's template."""
    template = copy.deepcopy(stored_job["spec"]["template"])
    metadata = template.get("metadata") or {}
    metadata["generateName"] = "train-"
    metadata["namespace"] = NAMESPACE
    metadata["ownerReferences"] = [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "train",
            "uid": "9d1f0c3a-0000-4000-8000-000000000001",
            "controller": True,
        }
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template["spec"],
    }


def test_template_opt_out_reaches_pod(cluster: Cluster) -> None:
    result = cluster.caller.admit(job({}, {INJECT: "false"}), namespace=NAMESPACE)
    assert result.allowed, result.message
    assert result.object is not None

    pod_result = cluster.caller.admit(pod_from(result.object), namespace=NAMESPACE)

    assert result.warnings == []
    assert pod_result.allowed, pod_result.message
    assert pod_result.object is not None
    env = pod_result.object["spec"]["containers"][0]["env"]
    assert env == [placeholder("TOKEN", secret="not-there", key="k")]


def test_own_opt_out_warns(cluster: Cluster) -> None:
    result = cluster.caller.admit(job({INJECT: "false"}, {}), namespace=NAMESPACE)
    assert result.allowed, result.message
    assert result.object is not None

    pod_result = cluster.caller.admit(pod_from(result.object), namespace=NAMESPACE)

    assert len(result.warnings) == 1
    assert INJECT in result.warnings[0]
    assert "spec.template.metadata.annotations" in result.warnings[0]
    assert not pod_result.allowed
    assert '"not-there"' in pod_result.message
