"""Configuration checks on the fields that pick a webhook's requests.

These are the parts of ValidateMutatingWebhookConfiguration (kubernetes
pkg/apis/admissionregistration/validation, and ValidateLabelSelector in
k8s.io/apimachinery) that cover `rules`, `namespaceSelector`,
`objectSelector` and `matchConditions`. Each function returns field errors
worded by `fielderrors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cel

from tests.harness import fielderrors, kubevalidation

OPERATIONS = ("*", "CREATE", "UPDATE", "DELETE", "CONNECT")
SCOPES = ("*", "Cluster", "Namespaced")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
MAX_MATCH_CONDITIONS = 64


def rule_errors(path: str, rule: Mapping[str, Any]) -> list[str]:
    """Check one RuleWithOperations as validateRuleWithOperations does."""
    operations = list(rule.get("operations") or [])
    errors = []

    if not operations:
        errors.append(fielderrors.required(f"{path}.operations"))
    if len(operations) > 1 and "*" in operations:
        errors.append(
            fielderrors.invalid(
                f"{path}.operations",
                operations,
                "if '*' is present, must not specify other operations",
                slice_type="[]admissionregistration.OperationType",
            )
        )
    for index, operation in enumerate(operations):
        if operation not in OPERATIONS:
            errors.append(
                fielderrors.unsupported(
                    f"{path}.operations[{index}]", operation, OPERATIONS
                )
            )

    errors += _list_errors(f"{path}.apiGroups", rule.get("apiGroups"), "API groups")
    versions = list(rule.get("apiVersions") or [])
    errors += _list_errors(f"{path}.apiVersions", versions, "API versions")
    errors += [
        fielderrors.required(f"{path}.apiVersions[{index}]")
        for index, version in enumerate(versions)
        if version == ""
    ]

    errors += _resource_errors(f"{path}.resources", list(rule.get("resources") or []))
    scope = rule.get("scope")
    if scope is not None and scope not in SCOPES:
        errors.append(fielderrors.unsupported(f"{path}.scope", scope, SCOPES))
    return errors


def _list_errors(path: str, values: Any, what: str) -> list[str]:
    values = list(values or [])
    if not values:
        return [fielderrors.required(path)]
    if len(values) > 1 and "*" in values:
        return [
            fielderrors.invalid(
                path, values, f"if '*' is present, must not specify other {what}"
            )
        ]
    return []


def _resource_errors(path: str, resources: list[str]) -> list[str]:
    """Check `resources` as validateResources does, wildcards and subresources too."""
    errors = [] if resources else [fielderrors.required(path)]
    wildcard_subresource: set[str] = set()  # "pods" from "pods/*"
    wildcard_resource: set[str] = set()  # "status" from "*/status"
    has_plain_resource = False
    for index, entry in enumerate(resources):
        if entry == "":
            errors.append(fielderrors.required(f"{path}[{index}]"))
            continue
        if "/" not in entry:
            # Like the Go code, only the last plain entry decides this.
            has_plain_resource = entry != "*"
            continue
        resource, _, sub_resource = entry.partition("/")
        if resource in wildcard_subresource:
            errors.append(
                fielderrors.invalid(
                    f"{path}[{index}]",
                    entry,
                    f"if '{resource}/*' is present, must not specify {entry}",
                )
            )
        if sub_resource in wildcard_resource:
            errors.append(
                fielderrors.invalid(
                    f"{path}[{index}]",
                    entry,
                    f"if '*/{sub_resource}' is present, must not specify {entry}",
                )
            )
        if sub_resource == "*":
            wildcard_subresource.add(resource)
        if resource == "*":
            wildcard_resource.add(sub_resource)
    if len(resources) > 1 and "*/*" in resources:
        errors.append(
            fielderrors.invalid(
                path, resources, "if '*/*' is present, must not specify other resources"
            )
        )
    if "*" in resources and has_plain_resource:
        errors.append(
            fielderrors.invalid(
                path,
                resources,
                "if '*' is present, must not specify other resources without "
                "subresources",
            )
        )
    return errors


def selector_errors(path: str, selector: Mapping[str, Any] | None) -> list[str]:
    """Check a LabelSelector as ValidateLabelSelector does (invalid values rejected)."""
    if not selector:
        return []
    errors = []
    for key, value in (selector.get("matchLabels") or {}).items():
        errors += _label_errors(f"{path}.matchLabels", key)
        errors += [
            fielderrors.invalid(f"{path}.matchLabels", value, message)
            for message in kubevalidation.label_value_messages(str(value))
        ]
    for index, expression in enumerate(selector.get("matchExpressions") or []):
        errors += _requirement_errors(f"{path}.matchExpressions[{index}]", expression)
    return errors


def _requirement_errors(path: str, expression: Mapping[str, Any]) -> list[str]:
    operator = expression.get("operator")
    values = list(expression.get("values") or [])
    errors = []
    if operator in ("In", "NotIn") and not values:
        errors.append(
            fielderrors.required(
                f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'"
            )
        )
    elif operator in ("Exists", "DoesNotExist") and values:
        errors.append(
            fielderrors.forbidden(
                f"{path}.values",
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )
        )
    elif operator not in SELECTOR_OPERATORS:
        errors.append(
            fielderrors.invalid(
                f"{path}.operator", operator or "", "not a valid selector operator"
            )
        )
    errors += _label_errors(f"{path}.key", str(expression.get("key") or ""))
    for index, value in enumerate(values):
        errors += [
            fielderrors.invalid(f"{path}.values[{index}]", value, message)
            for message in kubevalidation.label_value_messages(str(value))
        ]
    return errors


def _label_errors(path: str, key: str) -> list[str]:
    return [
        fielderrors.invalid(path, key, message)
        for message in kubevalidation.qualified_name_messages(key)
    ]


def match_condition_errors(path: str, conditions: list[Mapping[str, Any]]) -> list[str]:
    """Check `matchConditions` as validateMatchConditions does, CEL syntax included.

    NOTE: the `cel` module checks syntax only. kube-apiserver also type-checks
    the expression against the declared variables and its cost limit.
    """
    errors = []
    if len(conditions) > MAX_MATCH_CONDITIONS:
        errors.append(fielderrors.too_many(path, len(conditions), MAX_MATCH_CONDITIONS))
    names: set[str] = set()
    for index, condition in enumerate(conditions):
        errors += _condition_errors(f"{path}[{index}]", condition)
        name = str(condition.get("name") or "")
        if name and name in names:
            errors.append(fielderrors.duplicate(f"{path}[{index}].name", name))
        names.add(name)
    return errors


def _condition_errors(path: str, condition: Mapping[str, Any]) -> list[str]:
    errors = []
    expression = str(condition.get("expression") or "").strip()
    if not expression:
        errors.append(fielderrors.required(f"{path}.expression"))
    else:
        errors += _compile_errors(f"{path}.expression", expression)
    name = str(condition.get("name") or "")
    if not name:
        errors.append(fielderrors.required(f"{path}.name"))
    else:
        errors += [
            fielderrors.invalid(f"{path}.name", name, message)
            for message in kubevalidation.qualified_name_messages(name)
        ]
    return errors


def _compile_errors(path: str, expression: str) -> list[str]:
    try:
        cel.compile(expression)
    except ValueError as error:
        # The cel module prefixes the parser's text, which starts at "ERROR:".
        text = str(error)
        detail = text[text.find("ERROR:") :] if "ERROR:" in text else text
        return [fielderrors.invalid(path, expression, f"compilation failed: {detail}")]
    return []
