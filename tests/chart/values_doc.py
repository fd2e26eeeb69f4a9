"""Read the comments of the chart's values.yaml and build the README's table.

Every key in values.yaml is either a section (a comment saying what it groups,
followed by documented keys) or a setting, whose comment states what it sets,
when to change it ("Change it ...") and gives an example ("Example: ...").
The nested keys of a setting's default (resources.requests.cpu, say) are
part of that default and need no comment of their own.

`python -m tests.chart.values_doc` prints the table and `--write` puts it
into the chart README between the VALUES-TABLE markers; a test checks that
the README's copy is current.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

import yaml

from tests.chart.helm import CHART_DIR

VALUES_FILE = CHART_DIR / "values.yaml"
README_FILE = CHART_DIR / "README.md"
TABLE_START = "<!-- VALUES-TABLE-START -->"
TABLE_END = "<!-- VALUES-TABLE-END -->"

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][A-Za-z0-9]*):(?P<rest>.*)$")


@dataclass
class ValuesKey:
    """One key of values.yaml with the comment block just above it."""

    path: str
    comment: list[str]
    line: int

    @property
    def is_setting(self) -> bool:
        return any(line.startswith("Example:") for line in self.comment)


def read_keys(text: str) -> list[ValuesKey]:
    """Return every mapping key in `text`, with its dotted path and comment."""
    keys: list[ValuesKey] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        match = _KEY_LINE.match(line)
        if not match:
            comment = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        keys.append(ValuesKey(".".join(key for _, key in stack), comment, number))
        comment = []
    return keys


def undocumented(keys: list[ValuesKey]) -> list[str]:
    """Return a message for each key that breaks the documentation rule."""
    settings = [key.path for key in keys if key.is_setting]
    problems = []
    for key in keys:
        if any(key.path.startswith(setting + ".") for setting in settings):
            continue
        if not key.comment:
            problems.append(f"values.yaml:{key.line}: {key.path} has no comment")
        elif key.is_setting and not any(
            line.startswith("Change it") for line in key.comment
        ):
            problems.append(
                f"values.yaml:{key.line}: {key.path} does not say when to change it"
            )
    return problems


def _default(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    return node


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _description(comment: list[str]) -> str:
    prose = " ".join(line for line in comment if not line.startswith("Example:"))
    examples = [
        line.removeprefix("Example:").strip()
        for line in comment
        if line.startswith("Example:")
    ]
    return _cell(prose) + "".join(
        f" Example: `{_cell(example)}`" for example in examples
    )


def build_table(text: str) -> str:
    """Return the Markdown table of every setting in values.yaml."""
    values = yaml.safe_load(text)
    rows = ["| Key | Default | Description |", "| --- | --- | --- |"]
    for key in read_keys(text):
        if not key.is_setting:
            continue
        default = json.dumps(_default(values, key.path), separators=(", ", ": "))
        rows.append(
            f"| `{key.path}` | `{_cell(default)}` | {_description(key.comment)} |"
        )
    return "\n".join(rows)


def readme_table(readme: str) -> str:
    """Return the table between the markers of the chart README."""
    start = readme.index(TABLE_START) + len(TABLE_START)
    end = readme.index(TABLE_END)
    return readme[start:end].strip()


def write_readme_table() -> None:
    """Replace the table between the markers of the chart README."""
    readme = README_FILE.read_text()
    start = readme.index(TABLE_START) + len(TABLE_START)
    end = readme.index(TABLE_END)
    table = build_table(VALUES_FILE.read_text())
    README_FILE.write_text(f"{readme[:start]}\n{table}\n{readme[end:]}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_readme_table()
    else:
        sys.stdout.write(build_table(VALUES_FILE.read_text()) + "\n")
