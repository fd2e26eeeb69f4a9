"""The rendered MutatingWebhookConfiguration: rules, selectors and policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import NAMESPACE, RELEASE, Manifest, find, render
from webhook.admission.podspecs import load_workload_kinds


def webhook_entry(helm: Path, values: dict[str, Any] | None = None) -> dict[str, Any]:
    configuration = find(render(helm, values), "MutatingWebhookConfiguration")
    entries: list[dict[str, Any]] = configuration["webhooks"]
    assert len(entries) == 1
    return entries[0]


def resources_by_operation(entry: dict[str, Any]) -> dict[str, set[str]]:
    table: dict[str, set[str]] = {}
    for rule in entry["rules"]:
        for group in rule["apiGroups"]:
            for version in rule["apiVersions"]:
                for resource in rule["resources"]:
                    key = f"{group or 'core'}/{version}/{resource}"
                    table[key] = set(rule["operations"])
    return table


def test_policies(helm: Path) -> None:
    entry = webhook_entry(helm)
    assert entry["failurePolicy"] == "Fail"
    assert entry["timeoutSeconds"] == 5
    assert entry["sideEffects"] == "None"
    assert entry["reinvocationPolicy"] == "IfNeeded"
    assert entry["admissionReviewVersions"] == ["v1", "v1beta1"]
    assert entry["matchPolicy"] == "Equivalent"


def test_side_effects_with_propagation(helm: Path) -> None:
    entry = webhook_entry(helm, {"propagation": {"enabled": True}})
    assert entry["sideEffects"] == "NoneOnDryRun"


def test_client_config(helm: Path) -> None:
    client = webhook_entry(helm)["clientConfig"]
    assert client["service"] == {
        "name": RELEASE,
        "namespace": NAMESPACE,
        "path": "/mutate",
        "port": 443,
    }
    # The webhook (selfManaged) or cert-manager writes the caBundle, never Helm.
    assert "caBundle" not in client


def test_ca_bundle_in_secret_mode(helm: Path) -> None:
    values = {
        "certificates": {
            "mode": "secret",
            "secret": {"name": "tls", "caBundle": "Y2EK"},
        }
    }
    assert webhook_entry(helm, values)["clientConfig"]["caBundle"] == "Y2EK"


def test_cert_manager_injects_ca(helm: Path) -> None:
    manifests = render(helm, {"certificates": {"mode": "certManager"}})
    configuration = find(manifests, "MutatingWebhookConfiguration")
    annotation = configuration["metadata"]["annotations"][
        "cert-manager.io/inject-ca-from"
    ]
    certificate = find(manifests, "Certificate", RELEASE)
    assert annotation == f"{NAMESPACE}/{certificate['metadata']['name']}"
    assert f"{RELEASE}.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]


def test_rules_default(helm: Path) -> None:
    table = resources_by_operation(webhook_entry(helm))
    assert table == {
        "core/v1/pods": {"CREATE"},
        "core/v1/pods/ephemeralcontainers": {"UPDATE"},
        "batch/v1/jobs": {"CREATE"},
        "batch/v1/cronjobs": {"CREATE", "UPDATE"},
        "apps/v1/deployments": {"CREATE", "UPDATE"},
        "apps/v1/statefulsets": {"CREATE", "UPDATE"},
        "apps/v1/replicasets": {"CREATE", "UPDATE"},
        "apps/v1/daemonsets": {"CREATE", "UPDATE"},
        "run.ai/v1/runaijobs": {"CREATE", "UPDATE"},
        "run.ai/v2alpha1/trainingworkloads": {"CREATE", "UPDATE"},
        "run.ai/v2alpha1/interactiveworkloads": {"CREATE", "UPDATE"},
        "run.ai/v2alpha1/distributedworkloads": {"CREATE", "UPDATE"},
    }
    assert all(rule["scope"] == "Namespaced" for rule in webhook_entry(helm)["rules"])


@pytest.mark.parametrize(
    ("switch", "resource"),
    [
        ("pods", "core/v1/pods"),
        ("ephemeralContainers", "core/v1/pods/ephemeralcontainers"),
        ("jobs", "batch/v1/jobs"),
        ("cronJobs", "batch/v1/cronjobs"),
        ("deployments", "apps/v1/deployments"),
        ("statefulSets", "apps/v1/statefulsets"),
        ("replicaSets", "apps/v1/replicasets"),
        ("daemonSets", "apps/v1/daemonsets"),
        ("runaiJobs", "run.ai/v1/runaijobs"),
        ("runaiWorkloads", "run.ai/v2alpha1/trainingworkloads"),
    ],
)
def test_rule_switch(helm: Path, switch: str, resource: str) -> None:
    table = resources_by_operation(
        webhook_entry(helm, {"webhook": {"rules": {switch: False}}})
    )
    assert resource not in table
    # Every other kind stays.
    assert len(table) >= 9


def test_all_apps_rules_off_leaves_no_empty_rule(helm: Path) -> None:
    off = {
        "deployments": False,
        "statefulSets": False,
        "replicaSets": False,
        "daemonSets": False,
    }
    entry = webhook_entry(helm, {"webhook": {"rules": off}})
    assert all(rule["resources"] for rule in entry["rules"])
    assert "apps" not in {
        group for rule in entry["rules"] for group in rule["apiGroups"]
    }


def test_namespace_selector(helm: Path) -> None:
    expressions = webhook_entry(helm)["namespaceSelector"]["matchExpressions"]
    assert {"key": "runai/queue", "operator": "Exists"} in expressions
    assert {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": [NAMESPACE, "kube-system"],
    } in expressions
    assert len(expressions) == 2


def test_namespace_selector_configurable(helm: Path) -> None:
    values = {
        "projectLabel": "example.com/project",
        "webhook": {
            "namespaceSelector": {"excludeNamespaces": ["kube-system", "monitoring"]}
        },
    }
    expressions = webhook_entry(helm, values)["namespaceSelector"]["matchExpressions"]
    assert expressions[0] == {"key": "example.com/project", "operator": "Exists"}
    assert expressions[1]["values"] == [NAMESPACE, "kube-system", "monitoring"]


def test_release_namespace_excluded_even_if_dropped(helm: Path) -> None:
    values: dict[str, Any] = {
        "webhook": {"namespaceSelector": {"excludeNamespaces": []}}
    }
    expressions = webhook_entry(helm, values)["namespaceSelector"]["matchExpressions"]
    assert expressions[1]["values"] == [NAMESPACE]


def test_object_selector(helm: Path) -> None:
    expressions = webhook_entry(helm)["objectSelector"]["matchExpressions"]
    assert {
        "key": "runai-secrets-webhook/inject",
        "operator": "NotIn",
        "values": ["false"],
    } in expressions
    assert {
        "key": "app.kubernetes.io/name",
        "operator": "NotIn",
        "values": ["runai-secrets-webhook"],
    } in expressions


def test_own_pods_carry_opt_out(helm: Path) -> None:
    manifests = render(helm, {"propagation": {"enabled": True}})
    deployments: list[Manifest] = [
        doc for doc in manifests if doc["kind"] == "Deployment"
    ]
    assert len(deployments) == 2
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["runai-secrets-webhook/inject"] == "false"
        assert labels["app.kubernetes.io/name"] == "runai-secrets-webhook"


def test_annotation_prefix_applies_everywhere(helm: Path) -> None:
    manifests = render(helm, {"annotationPrefix": "secrets.example.com"})
    entry = find(manifests, "MutatingWebhookConfiguration")["webhooks"][0]
    keys = [item["key"] for item in entry["objectSelector"]["matchExpressions"]]
    assert "secrets.example.com/inject" in keys
    assert "'secrets.example.com/'" in entry["matchConditions"][0]["expression"]
    container = find(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert "--annotation-prefix=secrets.example.com" in container["args"]


def test_match_conditions_switch(helm: Path) -> None:
    assert len(webhook_entry(helm)["matchConditions"]) == 1
    off = webhook_entry(helm, {"webhook": {"matchConditions": {"enabled": False}}})
    assert "matchConditions" not in off


def test_match_conditions_off_with_templates(helm: Path) -> None:
    # An admin template adds env vars to objects with no placeholder, so none
    # may be skipped.
    assert "matchConditions" not in webhook_entry(
        helm, {"templates": {"enabled": True}}
    )


def test_template_validating_webhook(helm: Path) -> None:
    manifests = render(helm, {"templates": {"enabled": True}})
    configuration = find(manifests, "ValidatingWebhookConfiguration")
    (entry,) = configuration["webhooks"]
    assert entry["clientConfig"]["service"]["path"] == "/validate-template"
    assert entry["failurePolicy"] == "Fail"
    assert entry["sideEffects"] == "None"
    assert entry["objectSelector"] == {"matchLabels": {"runai/template": "true"}}
    assert entry["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["runai"]}
    ]
    assert resources_by_operation(entry) == {"core/v1/configmaps": {"CREATE", "UPDATE"}}


def test_no_template_webhook_by_default(helm: Path) -> None:
    kinds = {doc["kind"] for doc in render(helm)}
    assert "ValidatingWebhookConfiguration" not in kinds


PYTORCH_JOB = {
    "group": "kubeflow.org",
    "version": "v1",
    "kind": "PyTorchJob",
    "resource": "pytorchjobs",
    "podSpecs": ["/spec/pytorchReplicaSpecs/*/template/spec"],
}
IMMUTABLE_KIND = {
    "group": "example.com",
    "version": "v1",
    "kind": "Batch",
    "resource": "batches",
    "podSpecs": ["/spec/template/spec"],
    "onUpdate": False,
}


def test_workload_kinds_rules(helm: Path) -> None:
    values = {"workloadKinds": [PYTORCH_JOB, IMMUTABLE_KIND]}
    table = resources_by_operation(webhook_entry(helm, values))
    assert table["kubeflow.org/v1/pytorchjobs"] == {"CREATE", "UPDATE"}
    assert table["example.com/v1/batches"] == {"CREATE"}


def test_workload_kinds_file_loads(helm: Path) -> None:
    manifests = render(helm, {"workloadKinds": [PYTORCH_JOB, IMMUTABLE_KIND]})
    config_map = find(manifests, "ConfigMap", f"{RELEASE}-workload-kinds")
    # The service's own loader accepts what the chart writes.
    kinds = load_workload_kinds(yaml.safe_load(config_map["data"]["kinds.yaml"]))
    assert [kind.kind for kind in kinds] == ["PyTorchJob", "Batch"]
    assert kinds[0].pointers == ("/spec/pytorchReplicaSpecs/*/template/spec",)
    assert kinds[1].on_update is False

    pod = find(manifests, "Deployment", RELEASE)["spec"]["template"]
    container = pod["spec"]["containers"][0]
    path = "/etc/runai-secrets-webhook/workload-kinds/kinds.yaml"
    assert f"--workload-kinds-file={path}" in container["args"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts["workload-kinds"] == str(Path(path).parent)
    # A changed file rolls the pods, which read it at start-up only.
    assert pod["metadata"]["annotations"]["checksum/workload-kinds"]


def test_no_workload_kinds_file_by_default(helm: Path) -> None:
    manifests = render(helm)
    assert "ConfigMap" not in {doc["kind"] for doc in manifests}
    container = find(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert not any(arg.startswith("--workload-kinds-file") for arg in container["args"])
