"""Parsing of a template's data.values."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from webhook.templates.entries import (
    InvalidTemplate,
    TemplateEntry,
    parse_environments,
    read_template,
)


def test_entries_keep_order_and_lines() -> None:
    values = (
        "gpu: 1\n"
        "environments:\n"
        "  - LOG_LEVEL=debug\n"
        "  - MYPASSWORD=SECRET:my-secret,cred-pass\n"
    )

    entries = parse_environments(values)

    assert entries == [
        TemplateEntry("LOG_LEVEL", "debug", 3),
        TemplateEntry("MYPASSWORD", "SECRET:my-secret,cred-pass", 4),
    ]


def test_value_keeps_every_equals_after_first() -> None:
    entries = parse_environments("environments:\n- OPTS=a=b\n- EMPTY=\n- EQ==\n")

    assert [(entry.name, entry.value) for entry in entries] == [
        ("OPTS", "a=b"),
        ("EMPTY", ""),
        ("EQ", "="),
    ]


@pytest.mark.parametrize(
    "values",
    ["", "# only a comment\n", "gpu: 1\n", "environments:\n", "environments: []\n"],
)
def test_no_environments_gives_no_entries(values: str) -> None:
    assert parse_environments(values) == []


def test_entry_without_equals_names_entry_and_line() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_environments("environments:\n  - LOG_LEVEL=debug\n  - BROKEN\n")

    assert caught.value.line == 3
    assert "'BROKEN' has no '='" in str(caught.value)
    assert str(caught.value).startswith("data.values line 3: ")


def test_flow_list_without_equals_is_rejected() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_environments("environments: [BROKEN]\n")

    assert caught.value.line == 1
    assert "'BROKEN'" in str(caught.value)


def test_secret_reference_without_key_is_rejected() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_environments("environments:\n- X=SECRET:only-a-name\n")

    message = str(caught.value)
    assert caught.value.line == 2
    assert "'X=SECRET:only-a-name'" in message
    assert "SECRET:<secret-name>,<secret-key>" in message


@pytest.mark.parametrize("name", ["1ABC", "MY VAR", "A:B", "", ".", "..", "..A"])
def test_invalid_env_name_is_rejected(name: str) -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_environments(f"environments:\n- '{name}=value'\n")

    assert caught.value.line == 2
    assert f"invalid env var name {name!r}" in str(caught.value)


def test_invalid_name_message_leaves_value_out() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_environments("environments:\n- 'BAD NAME=hunter2'\n")

    assert "hunter2" not in str(caught.value)


def test_duplicate_name_names_both_lines() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_environments("environments:\n- A=1\n- B=2\n- A=3\n")

    assert caught.value.line == 4
    assert "'A' is already set on line 2" in str(caught.value)


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ("environments:\n- 5\n", 2),
        ("environments:\n- A: b\n", 2),
        ("environments:\n- [A=1]\n", 2),
        ("environments: A=1\n", 1),
        ("environments:\n  A: 1\n", 2),
    ],
)
def test_non_string_entries_are_rejected(values: str, line: int) -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_environments(values)

    assert caught.value.line == line
    assert "NAME=VALUE" in str(caught.value)


def test_yaml_that_does_not_parse_names_line() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_environments("environments:\n  - A=1\n - B=2\n")

    assert caught.value.line == 3
    assert "YAML does not parse" in str(caught.value)


def test_values_must_be_a_mapping() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_environments("- A=1\n")

    assert "'environments' list" in str(caught.value)


def test_read_template_keeps_error() -> None:
    configmap = {
        "metadata": {"name": "bad"},
        "data": {"values": "environments: [BROKEN]"},
    }

    template = read_template(configmap)

    assert template.name == "bad"
    assert template.entries == ()
    assert template.error is not None
    assert template.error.line == 1


def test_read_template_without_values_is_empty() -> None:
    template = read_template({"metadata": {"name": "empty"}})

    assert template.entries == ()
    assert template.error is None


# Kubernetes also rejects ".", ".." and names starting with "..".
env_names = st.from_regex(r"[-._a-zA-Z][-._a-zA-Z0-9]{0,20}", fullmatch=True).filter(
    lambda name: name != "." and not name.startswith("..")
)
# Any single-line text that is not a secret reference, "=" and YAML syntax
# characters included, since those are what a careless split or load breaks.
env_values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), max_size=40
).filter(lambda value: not value.startswith("SECRET:"))


@given(st.dictionaries(env_names, env_values, max_size=8))
def test_dumped_entries_parse_back(variables: dict[str, str]) -> None:
    lines = [f"{name}={value}" for name, value in variables.items()]
    values = yaml.safe_dump({"gpu": 1, "environments": lines})

    entries = parse_environments(values)

    assert [(entry.name, entry.value) for entry in entries] == list(variables.items())
