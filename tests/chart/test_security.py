"""Security defaults and least-privilege RBAC of the rendered chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chart.helm import NAMESPACE, RELEASE, Manifest, find, render

PROPAGATION = f"{RELEASE}-propagation"


def rules_of(manifests: list[Manifest], kind: str, name: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = find(manifests, kind, name)["rules"]
    return rules


def verbs_on(rules: list[dict[str, Any]], resource: str) -> set[str]:
    return {
        verb
        for rule in rules
        if resource in rule["resources"]
        for verb in rule["verbs"]
    }


def pod_specs(manifests: list[Manifest]) -> list[dict[str, Any]]:
    return [
        doc["spec"]["template"]["spec"]
        for doc in manifests
        if doc["kind"] == "Deployment"
    ]


def test_pod_security_context(helm: Path) -> None:
    for spec in pod_specs(render(helm, {"propagation": {"enabled": True}})):
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True
        assert isinstance(context["runAsUser"], int)
        assert context["runAsUser"] > 0
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_container_security_context(helm: Path) -> None:
    for spec in pod_specs(render(helm, {"propagation": {"enabled": True}})):
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert "/tmp" in mounts


def test_service_account_token_only_where_needed(helm: Path) -> None:
    manifests = render(helm, {"propagation": {"enabled": True}})
    for account in (doc for doc in manifests if doc["kind"] == "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False
    # Both deployments call the Kubernetes API and ask for the token themselves.
    for spec in pod_specs(manifests):
        assert spec["automountServiceAccountToken"] is True


def test_webhook_reads_secrets_only(helm: Path) -> None:
    manifests = render(helm)
    cluster_rules = rules_of(manifests, "ClusterRole", RELEASE)
    assert verbs_on(cluster_rules, "secrets") == {"get"}
    resources = {resource for rule in cluster_rules for resource in rule["resources"]}
    assert resources == {"secrets", "mutatingwebhookconfigurations"}


def test_webhook_configuration_patch_by_name(helm: Path) -> None:
    rules = rules_of(render(helm), "ClusterRole", RELEASE)
    (rule,) = [
        rule for rule in rules if "mutatingwebhookconfigurations" in rule["resources"]
    ]
    assert rule["resourceNames"] == [RELEASE]
    assert set(rule["verbs"]) == {"get", "patch"}


def test_ca_secret_rights_in_release_namespace(helm: Path) -> None:
    manifests = render(helm)
    role = find(manifests, "Role", RELEASE)
    assert role["metadata"]["namespace"] == NAMESPACE
    by_verbs = {frozenset(rule["verbs"]): rule for rule in role["rules"]}
    # create cannot be limited by name; everything else is limited to the CA.
    assert by_verbs[frozenset({"create"})]["resources"] == ["secrets"]
    named = by_verbs[frozenset({"get", "update", "patch"})]
    assert named["resourceNames"] == [f"{RELEASE}-ca"]


def test_no_write_rights_outside_self_managed_mode(helm: Path) -> None:
    for mode in ("certManager", "secret"):
        values: dict[str, Any] = {"certificates": {"mode": mode}}
        if mode == "secret":
            values["certificates"]["secret"] = {"name": "tls", "caBundle": "Y2EK"}
        manifests = render(helm, values)
        assert "Role" not in {doc["kind"] for doc in manifests}
        rules = rules_of(manifests, "ClusterRole", RELEASE)
        assert rules == [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
        ]


def test_propagation_has_own_account(helm: Path) -> None:
    manifests = render(helm, {"propagation": {"enabled": True}})
    deployment = find(manifests, "Deployment", PROPAGATION)
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == PROPAGATION
    binding = find(manifests, "ClusterRoleBinding", PROPAGATION)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": PROPAGATION, "namespace": NAMESPACE}
    ]
    rules = rules_of(manifests, "ClusterRole", PROPAGATION)
    assert {"create", "update", "delete", "watch"} <= verbs_on(rules, "secrets")
    assert verbs_on(rules, "namespaces") == {"get", "list", "watch"}
    assert "patch" not in verbs_on(rules, "secrets")
    assert verbs_on(rules, "events") == set()


def test_propagation_lease_by_name(helm: Path) -> None:
    manifests = render(helm, {"propagation": {"enabled": True}})
    lease_role = find(manifests, "Role", PROPAGATION)
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    by_verbs = {frozenset(rule["verbs"]): rule for rule in lease_role["rules"]}
    assert "resourceNames" not in by_verbs[frozenset({"create"})]
    assert by_verbs[frozenset({"get", "update"})]["resourceNames"] == [PROPAGATION]
    args = find(manifests, "Deployment", PROPAGATION)["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert f"--lease-name={PROPAGATION}" in args
    assert f"--lease-namespace={NAMESPACE}" in args


def test_propagation_events_in_source_namespace(helm: Path) -> None:
    manifests = render(helm, {"propagation": {"enabled": True}})
    events_role = find(manifests, "Role", f"{PROPAGATION}-events")
    assert events_role["metadata"]["namespace"] == "runai"
    assert events_role["rules"] == [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}
    ]


def test_webhook_never_lists_secrets(helm: Path) -> None:
    values = {"propagation": {"enabled": True}, "templates": {"enabled": True}}
    rules = rules_of(render(helm, values), "ClusterRole", RELEASE)
    # Propagation adds create for on-the-spot copies, never list or watch.
    assert verbs_on(rules, "secrets") == {"get", "create"}
    assert verbs_on(rules, "namespaces") == {"get"}


def test_template_reads_own_configuration(helm: Path) -> None:
    values = {
        "templates": {"enabled": True},
        "certificates": {"mode": "certManager"},
    }
    rules = rules_of(render(helm, values), "ClusterRole", RELEASE)
    (rule,) = [r for r in rules if "mutatingwebhookconfigurations" in r["resources"]]
    assert rule["resourceNames"] == [RELEASE]
    assert rule["verbs"] == ["get"]


def test_template_rights_in_template_namespace(helm: Path) -> None:
    manifests = render(helm, {"templates": {"enabled": True}})
    role = find(manifests, "Role", f"{RELEASE}-templates")
    assert role["metadata"]["namespace"] == "runai"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get", "list", "watch"],
        }
    ]


def test_every_rule_commented() -> None:
    templates = (
        Path(__file__).resolve().parents[2] / "charts/runai-secrets-webhook/templates"
    )
    for path in templates.glob("*-*role.yaml"):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip().startswith("- apiGroups:"):
                assert lines[number - 1].strip().startswith("#"), (
                    f"{path.name}:{number + 1}"
                )
