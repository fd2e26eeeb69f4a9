"""Rules, selectors, name checks and warning limits, without any server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import kubevalidation
from tests.harness.admissionmatch import (
    Attributes,
    check_match_conditions,
    rule_matches,
)
from tests.harness.labels import (
    SelectorError,
    matches_all,
    parse_field_selector,
    parse_label_selector,
    selector_matches,
)
from tests.harness.warnings import WarningRecorder


def attributes(
    resource: str = "pods",
    sub_resource: str = "",
    namespace: str = "ns",
    group: str = "",
) -> Attributes:
    return Attributes(
        "CREATE", group, "v1", resource, sub_resource, namespace, "x", {}, None, {}
    )


def rule(
    resources: list[str], scope: str | None = None, **fields: Any
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "operations": ["CREATE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": resources,
    }
    if scope is not None:
        base["scope"] = scope
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("resources", "sub_resource", "expected"),
    [
        (["pods"], "", True),
        (["pods"], "ephemeralcontainers", False),
        (["pods/ephemeralcontainers"], "ephemeralcontainers", True),
        (["pods/ephemeralcontainers"], "", False),
        (["pods/*"], "ephemeralcontainers", True),
        (["pods/*"], "", True),
        (["*"], "", True),
        (["*"], "ephemeralcontainers", False),
        (["*/*"], "ephemeralcontainers", True),
        (["*/ephemeralcontainers"], "ephemeralcontainers", True),
        (["deployments"], "", False),
    ],
)
def test_rule_resources(
    resources: list[str], sub_resource: str, expected: bool
) -> None:
    assert (
        rule_matches(rule(resources), attributes(sub_resource=sub_resource)) is expected
    )


@pytest.mark.parametrize(
    ("scope", "resource", "namespace", "expected"),
    [
        ("Namespaced", "pods", "ns", True),
        ("Namespaced", "namespaces", "ns", False),
        ("Cluster", "namespaces", "ns", True),
        ("Cluster", "pods", "ns", False),
        ("Cluster", "nodes", "", True),
        ("*", "pods", "ns", True),
        (None, "nodes", "", True),
    ],
)
def test_rule_scope(
    scope: str | None, resource: str, namespace: str, expected: bool
) -> None:
    matched = rule_matches(
        rule(["*"], scope), attributes(resource=resource, namespace=namespace)
    )

    assert matched is expected


def test_rule_operations_groups_versions() -> None:
    pods = attributes()

    assert rule_matches(rule(["pods"], operations=["*"]), pods)
    assert not rule_matches(rule(["pods"], operations=["UPDATE"]), pods)
    assert not rule_matches(rule(["pods"], apiGroups=["apps"]), pods)
    assert rule_matches(rule(["pods"], apiGroups=["*"], apiVersions=["*"]), pods)
    assert not rule_matches(rule(["pods"], apiVersions=["v2"]), pods)


def test_label_selector_errors() -> None:
    for text in ("a in b", "a=b=c", "(x)", "a in (b", "a notin"):
        with pytest.raises(SelectorError):
            parse_label_selector(text)


def test_label_selector_sets_with_spaces() -> None:
    requirements = parse_label_selector("tier in (web, db), !legacy, env!=prod")

    assert matches_all(requirements, {"tier": "db", "env": "dev"})
    assert not matches_all(requirements, {"tier": "db", "legacy": "1"})
    assert not matches_all(requirements, {"tier": "cache"})


def test_field_selector_rejects_unknown_field() -> None:
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.x"):
        parse_field_selector("spec.x=1", ("metadata.name",))


def test_structured_selector_operators() -> None:
    selector = {
        "matchLabels": {"team": "a"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web"]},
            {"key": "skip", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
        ],
    }

    assert selector_matches(selector, {"team": "a", "tier": "web"})
    assert not selector_matches(selector, {"team": "a", "tier": "web", "skip": "1"})
    assert not selector_matches(selector, {"team": "a", "tier": "web", "env": "prod"})
    assert selector_matches(None, {})
    assert selector_matches({}, {"any": "thing"})
    with pytest.raises(SelectorError, match="use In, NotIn, Exists or DoesNotExist"):
        selector_matches({"matchExpressions": [{"key": "a", "operator": "Equals"}]}, {})


@pytest.mark.parametrize(
    ("name", "version", "valid"),
    [
        ("DB_PASSWORD", (1, 30), True),
        ("my.env-name", (1, 30), True),
        ("1ST", (1, 30), False),
        ("1ST", (1, 32), True),
        ("has space", (1, 32), True),
        ("A=B", (1, 33), False),
        ("tab\there", (1, 33), False),
        ("", (1, 33), False),
        (".", (1, 30), False),
        ("..", (1, 31), False),
        ("..A", (1, 30), False),
        (".A", (1, 30), True),
        ("..A", (1, 32), True),
    ],
)
def test_env_var_names_by_version(
    name: str, version: tuple[int, int], valid: bool
) -> None:
    assert (kubevalidation.env_var_name(name, version) == []) is valid


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("password", True),
        ("tls.crt", True),
        ("a_b-c", True),
        (".", False),
        ("..", False),
        ("..x", False),
        ("a/b", False),
        ("k" * 254, False),
    ],
)
def test_config_keys(key: str, valid: bool) -> None:
    assert (kubevalidation.config_key(key) == []) is valid


def test_warnings_truncate_after_total() -> None:
    recorder = WarningRecorder()
    recorder.add("first")
    recorder.add("x" * 4000)
    recorder.add("y" * 300)  # passes 4096: everything is cut to 256 from now on
    for index in range(20):
        recorder.add(f"{index:02d}" + "z" * 300)

    headers = recorder.headers()

    assert headers[:3] == ["first", "x" * 256, "y" * 256]
    assert all(len(text) <= 256 for text in headers)
    # Additions stop once the cut texts fill 4096 characters again.
    assert sum(len(text) for text in headers[:-1]) < 4096
    assert len(headers) < 23


def test_condition_variables_are_checked() -> None:
    def hook(expression: str) -> dict[str, Any]:
        return {
            "name": "h.example.com",
            "matchConditions": [{"name": "c", "expression": expression}],
        }

    check_match_conditions(hook("object.metadata.annotations['variables'] == 'x'"))
    check_match_conditions(hook("has(object.spec.params)"))
    with pytest.raises(ValueError, match="uses 'namespaceObject'"):
        check_match_conditions(hook("namespaceObject.metadata.name == 'a'"))
    with pytest.raises(ValueError, match="does not emulate"):
        check_match_conditions(
            hook("authorizer.requestResource.check('get').allowed()")
        )
