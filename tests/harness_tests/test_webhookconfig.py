"""Webhook configurations that kube-apiserver would not store, rejected up front."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.apiserver import AdmissionCaller
from tests.harness.webhookconfig import InvalidConfiguration
from tests.harness_tests.test_apiserver import configuration, webhook

Object = dict[str, Any]

QUALIFIED_NAME = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyName',  or "
    "'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def rule(**fields: Any) -> Object:
    spec: Object = {
        "operations": ["CREATE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods"],
    }
    spec.update(fields)
    return {key: value for key, value in spec.items() if value is not None}


def rejection(hook: Object) -> str:
    with pytest.raises(InvalidConfiguration) as caught:
        AdmissionCaller(mutating=[configuration(hook)])
    return str(caught.value)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"operations": []},
            "webhooks[0].rules[0].operations: Required value",
        ),
        (
            {"operations": ["create"]},
            'webhooks[0].rules[0].operations[0]: Unsupported value: "create": '
            'supported values: "*", "CONNECT", "CREATE", "DELETE", "UPDATE"',
        ),
        (
            {"operations": ["*", "CREATE"]},
            "webhooks[0].rules[0].operations: Invalid value: "
            '[]admissionregistration.OperationType{"*", "CREATE"}: '
            "if '*' is present, must not specify other operations",
        ),
        ({"apiGroups": None}, "webhooks[0].rules[0].apiGroups: Required value"),
        (
            {"apiGroups": ["*", "apps"]},
            'webhooks[0].rules[0].apiGroups: Invalid value: []string{"*", "apps"}: '
            "if '*' is present, must not specify other API groups",
        ),
        ({"apiVersions": []}, "webhooks[0].rules[0].apiVersions: Required value"),
        ({"apiVersions": [""]}, "webhooks[0].rules[0].apiVersions[0]: Required value"),
        ({"resources": []}, "webhooks[0].rules[0].resources: Required value"),
        ({"resources": [""]}, "webhooks[0].rules[0].resources[0]: Required value"),
        (
            {"resources": ["*", "pods"]},
            'webhooks[0].rules[0].resources: Invalid value: []string{"*", "pods"}: '
            "if '*' is present, must not specify other resources without "
            "subresources",
        ),
        (
            {"resources": ["*/*", "pods/status"]},
            "webhooks[0].rules[0].resources: Invalid value: "
            '[]string{"*/*", "pods/status"}: '
            "if '*/*' is present, must not specify other resources",
        ),
        (
            {"resources": ["pods/*", "pods/status"]},
            'webhooks[0].rules[0].resources[1]: Invalid value: "pods/status": '
            "if 'pods/*' is present, must not specify pods/status",
        ),
        (
            {"resources": ["*/status", "pods/status"]},
            'webhooks[0].rules[0].resources[1]: Invalid value: "pods/status": '
            "if '*/status' is present, must not specify pods/status",
        ),
        (
            {"scope": "namespaced"},
            'webhooks[0].rules[0].scope: Unsupported value: "namespaced": '
            'supported values: "*", "Cluster", "Namespaced"',
        ),
    ],
)
def test_invalid_rule_is_rejected(fields: Object, error: str) -> None:
    message = rejection(webhook(rules=[rule(**fields)]))

    assert message.endswith(f'"config" is invalid: {error}')


def test_valid_rules_are_accepted() -> None:
    rules = [
        rule(operations=["*"], resources=["*"], scope="Namespaced"),
        rule(resources=["pods", "pods/ephemeralcontainers", "*/status"]),
        rule(apiGroups=["*"], apiVersions=["*"], resources=["*/*"], scope="*"),
        rule(operations=["CONNECT"], resources=["*", "pods/exec"]),
    ]

    caller = AdmissionCaller(mutating=[configuration(webhook(rules=rules))])

    assert len(caller.mutating_hooks) == 1


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {
                "namespaceSelector": {
                    "matchExpressions": [{"key": "a", "operator": "In"}]
                }
            },
            "webhooks[0].namespaceSelector.matchExpressions[0].values: "
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        ),
        (
            {
                "objectSelector": {
                    "matchExpressions": [
                        {"key": "a", "operator": "Exists", "values": ["x"]}
                    ]
                }
            },
            "webhooks[0].objectSelector.matchExpressions[0].values: Forbidden: "
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        (
            {"objectSelector": {"matchExpressions": [{"key": "a", "operator": "in"}]}},
            "webhooks[0].objectSelector.matchExpressions[0].operator: Invalid value: "
            '"in": not a valid selector operator',
        ),
        (
            {
                "namespaceSelector": {
                    "matchExpressions": [{"key": "bad key", "operator": "Exists"}]
                }
            },
            "webhooks[0].namespaceSelector.matchExpressions[0].key: Invalid value: "
            f'"bad key": {QUALIFIED_NAME}',
        ),
        (
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "a", "operator": "NotIn", "values": ["a b"]}
                    ]
                }
            },
            "webhooks[0].namespaceSelector.matchExpressions[0].values[0]: "
            'Invalid value: "a b": a valid label must be an empty string or consist '
            "of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
            "'12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
        (
            {"objectSelector": {"matchLabels": {"Example.com/app": "x"}}},
            'webhooks[0].objectSelector.matchLabels: Invalid value: "Example.com/app": '
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'example.com', regex used for validation "
            "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        (
            {"objectSelector": {"matchLabels": {"a/b/c": "x"}}},
            'webhooks[0].objectSelector.matchLabels: Invalid value: "a/b/c": '
            "a qualified name must consist of alphanumeric characters, '-', '_' or "
            "'.', and must start and end with an alphanumeric character (e.g. "
            "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
            "subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
        (
            {"objectSelector": {"matchLabels": {"app": "-x"}}},
            'webhooks[0].objectSelector.matchLabels: Invalid value: "-x": '
            "a valid label must be an empty string",
        ),
    ],
)
def test_invalid_selector_is_rejected(fields: Object, error: str) -> None:
    message = rejection(webhook(**fields))

    assert f'"config" is invalid: {error}' in message


@pytest.mark.parametrize(
    ("conditions", "error"),
    [
        (
            [{"name": "c", "expression": "true"}, {"name": "c", "expression": "true"}],
            'webhooks[0].matchConditions[1].name: Duplicate value: "c"',
        ),
        (
            [{"name": "not valid!", "expression": "true"}],
            'webhooks[0].matchConditions[0].name: Invalid value: "not valid!": '
            f"{QUALIFIED_NAME}",
        ),
        (
            [{"expression": "true"}],
            "webhooks[0].matchConditions[0].name: Required value",
        ),
        (
            [{"name": "c", "expression": "  "}],
            "webhooks[0].matchConditions[0].expression: Required value",
        ),
        (
            [{"name": f"c{index}", "expression": "true"} for index in range(65)],
            "webhooks[0].matchConditions: Too many: 65: must have at most 64 items",
        ),
    ],
)
def test_invalid_match_conditions_are_rejected(
    conditions: list[Object], error: str
) -> None:
    message = rejection(webhook(matchConditions=conditions))

    assert message.endswith(f'"config" is invalid: {error}')


def test_match_condition_must_compile() -> None:
    conditions = [{"name": "broken", "expression": "object.metadata.name =="}]

    message = rejection(webhook(matchConditions=conditions))

    assert (
        "webhooks[0].matchConditions[0].expression: Invalid value: "
        '"object.metadata.name ==": compilation failed: ERROR: <input>:1:24: '
        "Syntax error:"
    ) in message


@pytest.mark.parametrize(
    ("versions", "error"),
    [
        (
            ["v1", "v1"],
            'webhooks[0].admissionReviewVersions[1]: Invalid value: "v1": '
            "duplicate version",
        ),
        (
            ["v1", "V2"],
            'webhooks[0].admissionReviewVersions[1]: Invalid value: "V2": '
            "a DNS-1035 label must consist of lower case alphanumeric characters "
            "or '-', start with an alphabetic character, and end with an "
            "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used "
            "for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ),
    ],
)
def test_invalid_review_versions_are_rejected(versions: list[str], error: str) -> None:
    message = rejection(webhook(admissionReviewVersions=versions))

    assert message.endswith(f'"config" is invalid: {error}')


def test_errors_in_apiserver_order() -> None:
    hook = webhook(
        rules=[rule(operations=[])],
        reinvocationPolicy="Sometimes",
        admissionReviewVersions=["v1", "v1"],
    )

    message = rejection(hook)

    assert message.endswith(
        "is invalid: [webhooks[0].rules[0].operations: Required value, "
        'webhooks[0].reinvocationPolicy: Unsupported value: "Sometimes": '
        'supported values: "IfNeeded", "Never", '
        'webhooks[0].admissionReviewVersions[1]: Invalid value: "v1": '
        "duplicate version]"
    )
