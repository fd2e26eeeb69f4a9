"""Label and field selectors as kube-apiserver parses and matches them.

Two forms exist: the query-string form of `?labelSelector=` (`a=b,c in (d),!e`)
and the structured `LabelSelector` of webhook configurations (`matchLabels`
and `matchExpressions`). Both are matched against an object's labels here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Labels = Mapping[str, str]


class SelectorError(ValueError):
    """A selector string that kube-apiserver would reject with 400 BadRequest."""


# k8s.io/apimachinery validation.IsValidLabelValue, which labels.Parse applies
# to every value of a `?labelSelector=` term.
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_VALUE_MAX = 63


def _check_values(key: str, values: tuple[str, ...]) -> tuple[str, ...]:
    for index, value in enumerate(values):
        if len(value) > _LABEL_VALUE_MAX:
            raise SelectorError(
                f"values[{index}][{key}]: Invalid value: {value!r}: "
                f"must be no more than {_LABEL_VALUE_MAX} characters"
            )
        if not _LABEL_VALUE.match(value):
            raise SelectorError(
                f"values[{index}][{key}]: Invalid value: {value!r}: a valid label "
                "must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric "
                "character"
            )
    return values


@dataclass(frozen=True)
class Requirement:
    """One comma-separated term of a label selector string."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Labels) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" also match objects without the label.
        return not present or value not in self.values


_TERM = re.compile(
    r"""^\s*(?:
        (?P<not>!)\s*(?P<nkey>[^\s=!(),]+)
      | (?P<skey>[^\s=!(),]+)\s+(?P<setop>in|notin)\s*\((?P<set>[^()]*)\)
      | (?P<key>[^\s=!(),]+)\s*(?P<op>==|!=|=)\s*(?P<value>[^\s=!(),]*)
      | (?P<ekey>[^\s=!(),]+)
    )\s*$""",
    re.VERBOSE,
)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside an `in (...)` value set."""
    terms: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
            continue
        current += char
    terms.append(current)
    return terms


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse a `?labelSelector=` string; an empty string selects everything."""
    if not text.strip():
        return []
    requirements = []
    for term in _split_terms(text):
        match = _TERM.match(term)
        if match is None:
            raise SelectorError(f"unable to parse requirement: {term.strip()!r}")
        groups = match.groupdict()
        if groups["nkey"]:
            requirements.append(Requirement(groups["nkey"], "!exists"))
        elif groups["skey"]:
            values = tuple(v.strip() for v in groups["set"].split(",") if v.strip())
            _check_values(groups["skey"], values)
            requirements.append(Requirement(groups["skey"], groups["setop"], values))
        elif groups["key"]:
            operator = "!=" if groups["op"] == "!=" else "="
            _check_values(groups["key"], (groups["value"],))
            requirements.append(
                Requirement(groups["key"], operator, (groups["value"],))
            )
        else:
            requirements.append(Requirement(groups["ekey"], "exists"))
    return requirements


def matches_all(requirements: list[Requirement], labels: Labels) -> bool:
    return all(requirement.matches(labels) for requirement in requirements)


def parse_field_selector(
    text: str, supported: tuple[str, ...]
) -> Callable[[dict[str, Any]], bool]:
    """Parse a `?fieldSelector=` string into a predicate on whole objects.

    Only `=`, `==` and `!=` exist for fields; `supported` lists the field
    paths the resource accepts (for example `metadata.name`).
    """
    checks: list[tuple[str, bool, str]] = []
    for term in text.split(",") if text.strip() else []:
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(\S*)\s*$", term)
        if match is None:
            raise SelectorError(f"invalid selector: {term.strip()!r}")
        field, operator, value = match.groups()
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        checks.append((field, operator != "!=", value))

    def predicate(obj: dict[str, Any]) -> bool:
        return all(
            (_field_value(obj, field) == value) == equal
            for field, equal, value in checks
        )

    return predicate


def _field_value(obj: dict[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return "" if current is None else str(current)


def selector_matches(selector: Mapping[str, Any] | None, labels: Labels) -> bool:
    """Match a structured LabelSelector; None or `{}` selects everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        if not _expression_matches(expression, labels):
            return False
    return True


def _expression_matches(expression: Mapping[str, Any], labels: Labels) -> bool:
    key = expression["key"]
    operator = expression["operator"]
    values = expression.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise SelectorError(
        f"invalid label selector operator {operator!r}: "
        "use In, NotIn, Exists or DoesNotExist"
    )
