"""Check API requests against the RBAC rules a rendered chart grants.

Used by the end-to-end tests that run a program with the chart's own
arguments: every request the fake Kubernetes API logged must be allowed by
a Role or ClusterRole that the chart binds to the program's ServiceAccount.
"""

from __future__ import annotations

from typing import Any

from tests.chart.helm import Manifest
from tests.harness.fakekube import RequestRecord

# (namespace the rules apply in, rules); None for a ClusterRoleBinding.
Grant = tuple[str | None, list[dict[str, Any]]]


def granted_rules(manifests: list[Manifest], account: str) -> list[Grant]:
    """Return the rules of every role bound to ServiceAccount `account`."""
    roles = {
        (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc
        for doc in manifests
        if doc["kind"] in ("Role", "ClusterRole")
    }
    granted: list[Grant] = []
    for binding in manifests:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if account not in [subject["name"] for subject in binding["subjects"]]:
            continue
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role_namespace = namespace if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_namespace, ref["name"])]
        granted.append((namespace, role["rules"]))
    return granted


def rule_allows(rule: dict[str, Any], record: RequestRecord) -> bool:
    """Tell whether one PolicyRule allows a logged request."""
    if (
        record.group not in rule["apiGroups"]
        or record.resource not in rule["resources"]
    ):
        return False
    if record.verb not in rule["verbs"]:
        return False
    names = rule.get("resourceNames")
    # RBAC cannot name an object that does not exist yet, nor filter a list.
    if names and (
        record.verb in ("create", "list", "watch") or record.name not in names
    ):
        return False
    return True


def unauthorized(records: list[RequestRecord], granted: list[Grant]) -> list[str]:
    """Describe each request that no granted rule allows."""
    denied = []
    for record in records:
        if not record.resource:
            # API discovery (/api/v1/ and the like), which Kubernetes grants
            # every authenticated user through system:discovery.
            if not record.path.startswith(("/api", "/apis")):
                denied.append(f"{record.method} {record.path}")
            continue
        allowed = any(
            namespace in (None, record.namespace)
            and any(rule_allows(rule, record) for rule in rules)
            for namespace, rules in granted
        )
        if not allowed:
            where = (
                f"{record.namespace}/{record.name}" if record.namespace else record.name
            )
            denied.append(f"{record.verb} {record.group}/{record.resource} {where}")
    return denied
