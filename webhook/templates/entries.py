"""Parsing of a Run:AI template's `data.values` into env entries.

A template is a ConfigMap whose `data.values` is YAML. Only its
`environments` key matters here: a list of `NAME=VALUE` strings, for example
`- MYPASSWORD=SECRET:my-secret,cred-pass`. Each entry is split on its first
`=` only, so `OPTS=a=b` sets `OPTS` to `a=b`. Run:AI's old command line split
on every `=` and skipped malformed entries without a word. Here a malformed
entry makes the whole template invalid, and the error names its line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from webhook.admission.references import (
    ENV_NAME_RULE,
    EXPECTED_FORM,
    InvalidReference,
    is_env_name,
    is_placeholder,
    parse_reference,
)

ENVIRONMENTS_KEY = "environments"

_YAML_STR = "tag:yaml.org,2002:str"
_YAML_NULL = "tag:yaml.org,2002:null"


class InvalidTemplate(ValueError):
    """A template whose `data.values` cannot be used, with the line at fault.

    `line` is 1-based and counts lines of `data.values`; it is None when the
    problem is not on one line, such as a missing `data.values`.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"data.values line {self.line}: {self.message}"


@dataclass(frozen=True)
class TemplateEntry:
    """One `NAME=VALUE` entry of a template, with its line in `data.values`."""

    name: str
    value: str
    line: int


def parse_environments(values: str) -> list[TemplateEntry]:
    """Parse the `environments` list of a template's `data.values`.

    Raises InvalidTemplate for YAML that does not parse, an `environments`
    key that is not a list of strings, an entry without `=`, an invalid env
    name, a name that appears twice, or a malformed `SECRET:` value.
    """
    items = _environment_nodes(values)

    entries: list[TemplateEntry] = []
    first_line: dict[str, int] = {}
    for node in items:
        entry = _parse_entry(node)
        if entry.name in first_line:
            raise InvalidTemplate(
                f"env var {entry.name!r} is already set on line "
                f"{first_line[entry.name]}; keep one of the two entries",
                entry.line,
            )
        first_line[entry.name] = entry.line
        entries.append(entry)
    return entries


def _environment_nodes(values: str) -> list[yaml.Node]:
    """Return the YAML nodes of the `environments` list, each with its position."""
    # Composing, not loading, keeps each node's line and its resolved tag, so
    # an entry such as `- 5` shows up as an integer and not as the string "5".
    try:
        root = yaml.compose(values, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise _yaml_error(error) from None

    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _YAML_NULL):
        return []
    if not isinstance(root, yaml.MappingNode):
        raise InvalidTemplate(
            "expected a YAML mapping with an 'environments' list", _line_of(root)
        )

    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == ENVIRONMENTS_KEY:
            return _sequence_items(value)
    return []


def _sequence_items(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.ScalarNode) and node.tag == _YAML_NULL:
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise InvalidTemplate(
            "'environments' must be a list of NAME=VALUE strings, "
            "for example '- LOG_LEVEL=debug'",
            _line_of(node),
        )
    return list(node.value)


def _parse_entry(node: yaml.Node) -> TemplateEntry:
    line = _line_of(node)
    if not isinstance(node, yaml.ScalarNode) or node.tag != _YAML_STR:
        raise InvalidTemplate(
            "an 'environments' entry must be a NAME=VALUE string; quote it "
            "if YAML reads it as another type",
            line,
        )

    text: str = node.value
    name, separator, value = text.partition("=")
    if not separator:
        raise InvalidTemplate(
            f"entry {text!r} has no '='; write it as NAME=VALUE", line
        )
    if not is_env_name(name):
        raise InvalidTemplate(f"invalid env var name {name!r}; {ENV_NAME_RULE}", line)

    if is_placeholder(value):
        try:
            parse_reference(value)
        except InvalidReference as error:
            # A reference names a secret and a key, never secret data, so the
            # whole entry can be shown.
            raise InvalidTemplate(
                f"entry {text!r} is not a valid secret reference because "
                f"{error.reason}; expected NAME={EXPECTED_FORM}",
                line,
            ) from None
    return TemplateEntry(name=name, value=value, line=line)


def _line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _yaml_error(error: yaml.YAMLError) -> InvalidTemplate:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or "invalid YAML"
    line = None if mark is None else int(mark.line) + 1
    return InvalidTemplate(f"YAML does not parse: {problem}", line)


@dataclass(frozen=True)
class Template:
    """A template as read from its ConfigMap.

    `error` is set, and `entries` empty, when the ConfigMap exists but its
    `data.values` is invalid, so that objects naming it can be denied with
    the reason instead of a message that it does not exist.
    """

    name: str
    entries: tuple[TemplateEntry, ...]
    error: InvalidTemplate | None = None


def read_template(configmap: Mapping[str, Any]) -> Template:
    """Read a template ConfigMap given as the API's JSON object.

    A ConfigMap without `data.values` is a template without env entries.
    """
    metadata = configmap.get("metadata") or {}
    name = str(metadata.get("name", ""))
    data = configmap.get("data") or {}
    if not isinstance(data, Mapping):
        error = InvalidTemplate("data must be a map of string values")
        return Template(name=name, entries=(), error=error)
    values = data.get("values")
    if values is None:
        return Template(name=name, entries=())
    if not isinstance(values, str):
        error = InvalidTemplate("data.values must be a string of YAML")
        return Template(name=name, entries=(), error=error)

    try:
        entries = parse_environments(values)
    except InvalidTemplate as error:
        return Template(name=name, entries=(), error=error)
    return Template(name=name, entries=tuple(entries))
