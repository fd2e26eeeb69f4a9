"""Which webhooks kube-apiserver calls for a request, and why it skips the others.

The order follows ShouldCallHook in k8s.io/apiserver (1.30): namespace
selector, object selector, rules, then CEL match conditions. A selector
that cannot be checked only matters when the rules match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cel

from tests.harness import kubestatus
from tests.harness.kubestatus import ApiError
from tests.harness.labels import selector_matches

# Webhook match conditions see these variables; `authorizer` is not emulated.
CEL_VARIABLES = ("object", "oldObject", "request")
# Variables of admission policies, as bare identifiers (not fields or strings).
_POLICY_ONLY = re.compile(r"(?<![\w.'\"])(namespaceObject|params|variables)\b")
_AUTHORIZER = re.compile(r"(?<![\w.'\"])authorizer\b")


@dataclass(frozen=True)
class Attributes:
    """The request under admission, as the matchers see it."""

    operation: str
    group: str
    version: str
    resource: str
    sub_resource: str
    namespace: str
    name: str
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    request: dict[str, Any]  # the AdmissionRequest without object and oldObject


NamespaceLabels = Callable[[str], Mapping[str, str] | None]


def rule_matches(rule: Mapping[str, Any], attributes: Attributes) -> bool:
    """Match one RuleWithOperations; `pods` does not match its subresources."""
    checks = (
        _listed(rule.get("operations"), attributes.operation),
        _listed(rule.get("apiGroups"), attributes.group),
        _listed(rule.get("apiVersions"), attributes.version),
        _resource_listed(rule.get("resources") or [], attributes),
        _scope_matches(rule.get("scope", "*"), attributes),
    )
    return all(checks)


def _listed(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in values or value in values)  # type: ignore[operator]


def _resource_listed(resources: list[str], attributes: Attributes) -> bool:
    for entry in resources:
        resource, _, sub_resource = entry.partition("/")
        resource_ok = resource in ("*", attributes.resource)
        sub_ok = sub_resource in ("*", attributes.sub_resource)
        if resource_ok and sub_ok:
            return True
    return False


def _scope_matches(scope: str, attributes: Attributes) -> bool:
    is_namespace = attributes.group == "" and attributes.resource == "namespaces"
    if scope == "Namespaced":
        return not is_namespace and attributes.namespace != ""
    if scope == "Cluster":
        return is_namespace or attributes.namespace == ""
    return True


def namespace_selector_matches(
    webhook: Mapping[str, Any],
    attributes: Attributes,
    namespace_labels: NamespaceLabels,
) -> bool:
    """Match `namespaceSelector`; a missing namespace raises 404 NotFound."""
    is_namespace = attributes.group == "" and attributes.resource == "namespaces"
    if not attributes.namespace and not is_namespace:
        return True  # cluster-scoped objects are never exempted
    selector = webhook.get("namespaceSelector")
    if not selector:
        return True
    if is_namespace:
        source = attributes.obj or attributes.old or {}
        labels = dict(source.get("metadata", {}).get("labels") or {})
        labels.setdefault("kubernetes.io/metadata.name", attributes.name)
    else:
        found = namespace_labels(attributes.namespace)
        if found is None:
            raise kubestatus.not_found("", "namespaces", attributes.namespace)
        labels = dict(found)
        # Set on every namespace since Kubernetes 1.22.
        labels.setdefault("kubernetes.io/metadata.name", attributes.namespace)
    return selector_matches(selector, labels)


def object_selector_matches(webhook: Mapping[str, Any], attributes: Attributes) -> bool:
    """Match `objectSelector` against the object or, failing that, the old object."""
    selector = webhook.get("objectSelector")
    if not selector:
        return True
    for candidate in (attributes.obj, attributes.old):
        if candidate is not None:
            labels = candidate.get("metadata", {}).get("labels") or {}
            if selector_matches(selector, labels):
                return True
    return False


def check_match_conditions(webhook: Mapping[str, Any]) -> None:
    """Reject match conditions that use CEL variables the harness does not provide."""
    conditions = webhook.get("matchConditions") or []
    for condition in conditions:
        expression = condition["expression"]
        used = _POLICY_ONLY.search(expression)
        if used:
            raise ValueError(
                f"matchCondition {condition['name']!r} of webhook {webhook['name']!r} "
                f"uses {used.group(1)!r}, but webhook match conditions only see "
                f"{', '.join(CEL_VARIABLES)} and authorizer"
            )
        if _AUTHORIZER.search(expression):
            raise ValueError(
                f"matchCondition {condition['name']!r} of webhook {webhook['name']!r} "
                "uses 'authorizer', which the harness does not emulate"
            )


@dataclass(frozen=True)
class ConditionResult:
    """The outcome of a webhook's match conditions."""

    matches: bool
    failed_condition: str = ""
    error: ApiError | None = None


def evaluate_match_conditions(
    webhook: Mapping[str, Any], attributes: Attributes
) -> ConditionResult:
    """Evaluate CEL match conditions: any false skips; errors follow `failurePolicy`."""
    variables = {
        "object": attributes.obj,
        "oldObject": attributes.old,
        "request": attributes.request,
    }
    errors: list[str] = []
    for condition in webhook.get("matchConditions") or []:
        try:
            value = cel.evaluate(condition["expression"], variables)
        except (ValueError, TypeError, RuntimeError, KeyError, IndexError) as error:
            errors.append(
                f"expression '{condition['expression']}' resulted in error: {error}"
            )
            continue
        if not isinstance(value, bool):
            errors.append(
                f"expression '{condition['expression']}' must evaluate to bool, "
                f"got {value!r}"
            )
        elif not value:
            return ConditionResult(False, failed_condition=condition["name"])
    if not errors:
        return ConditionResult(True)
    if webhook.get("failurePolicy", "Fail") == "Ignore":
        return ConditionResult(
            False, error=None, failed_condition="(error, failurePolicy Ignore)"
        )
    detail = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    subject = (
        f'{_qualified(attributes)} "{attributes.name}"'
        if attributes.name
        else _qualified(attributes)
    )
    forbidden = kubestatus.forbidden_because(
        attributes.group,
        attributes.resource,
        attributes.name,
        f"{subject} is forbidden: {detail}",
    )
    return ConditionResult(False, error=forbidden)


def _qualified(attributes: Attributes) -> str:
    return kubestatus.qualified(attributes.group, attributes.resource)
