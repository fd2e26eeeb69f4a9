"""values.yaml documents every key, the README table is current, and the
schema covers every key."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.chart.helm import CHART_DIR
from tests.chart.values_doc import (
    README_FILE,
    VALUES_FILE,
    build_table,
    read_keys,
    readme_table,
    undocumented,
)

SCHEMA_FILE = CHART_DIR / "values.schema.json"


def schema_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for name, child in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        paths.add(path)
        if child.get("additionalProperties") is False:
            paths |= schema_paths(child, path + ".")
    return paths


def test_every_key_documented() -> None:
    assert undocumented(read_keys(VALUES_FILE.read_text())) == []


def test_undocumented_key_reported() -> None:
    text = "# A section.\nimage:\n  tag: x\n# Sets it.\n# Example: y: 1\ny: 1\n"
    problems = undocumented(read_keys(text))
    assert problems == [
        "values.yaml:3: image.tag has no comment",
        "values.yaml:6: y does not say when to change it",
    ]


def test_readme_table_current() -> None:
    expected = build_table(VALUES_FILE.read_text())
    assert readme_table(README_FILE.read_text()) == expected, (
        "regenerate the table: python -m tests.chart.values_doc --write"
    )


def test_schema_matches_values() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    keys = read_keys(VALUES_FILE.read_text())
    settings = {key.path for key in keys if key.is_setting}
    # Keys inside a setting's default (resources.requests, say) are free-form
    # Kubernetes fields, checked when the rendered manifests are validated.
    documented = {
        key.path
        for key in keys
        if not any(key.path.startswith(setting + ".") for setting in settings)
    }
    in_schema = schema_paths(schema)
    assert documented - in_schema == set()
    unknown_to_values = {
        path
        for path in in_schema - {"global"} - documented
        if not any(path.startswith(setting + ".") for setting in settings)
    }
    assert unknown_to_values == set()


def test_schema_closed_everywhere() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    values = yaml.safe_load(VALUES_FILE.read_text())

    def check(node: dict[str, Any], value: Any, path: str) -> None:
        # Every map of the chart's own keys rejects unknown keys.
        if node.get("properties"):
            assert node.get("additionalProperties") is False, path
            for name, child in node["properties"].items():
                if isinstance(value, dict) and name in value:
                    check(child, value[name], f"{path}.{name}")

    check(schema, values, "values")
