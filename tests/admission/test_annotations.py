import pytest

from webhook.admission.additions import EnvAddition
from webhook.admission.annotations import (
    AnnotationKeys,
    annotations_of,
    injection_disabled,
    parse_container_names,
    parse_env_annotation,
)
from webhook.admission.errors import Denied

KEY = "runai-secrets-webhook/env"


def test_keys_follow_prefix() -> None:
    keys = AnnotationKeys.for_prefix("example.com/webhook")
    assert keys.env == "example.com/webhook/env"
    assert keys.containers == "example.com/webhook/containers"
    assert keys.inject == "example.com/webhook/inject"
    assert keys.injected == "example.com/webhook/injected"
    assert keys.templates == "example.com/webhook/templates"


def test_default_keys() -> None:
    assert AnnotationKeys.for_prefix().env == KEY


def test_env_annotation_lines() -> None:
    text = "DB_USER=SECRET:db-creds,username\n\n  \nDB_PASS=SECRET:db-creds,password\n"
    assert parse_env_annotation(text, KEY, 'Pod "train"') == [
        EnvAddition("DB_USER", "SECRET:db-creds,username", f"annotation {KEY} line 1"),
        EnvAddition("DB_PASS", "SECRET:db-creds,password", f"annotation {KEY} line 4"),
    ]


def test_env_annotation_strips_spaces_and_crlf() -> None:
    additions = parse_env_annotation("  A=SECRET:s,k  \r\n", KEY, 'Pod "train"')
    assert additions == [EnvAddition("A", "SECRET:s,k", f"annotation {KEY} line 1")]


def denial(text: str) -> Denied:
    with pytest.raises(Denied) as caught:
        parse_env_annotation(text, KEY, 'Pod "train"')
    return caught.value


def test_line_without_equals_is_denied() -> None:
    error = denial("A=SECRET:s,k\nSECRET:db-creds,password")
    assert error.code == 400
    assert error.message == (
        f'Pod "train": annotation {KEY} line 2 "SECRET:db-creds,password" is invalid: '
        "it has no '='. Expected one NAME=SECRET:<secret-name>,<secret-key> per line, "
        "for example DB_PASSWORD=SECRET:db-creds,password."
    )


def test_invalid_env_name_is_denied() -> None:
    assert denial("1PASS=SECRET:s,k").message == (
        f'Pod "train": annotation {KEY} line 1 "1PASS=SECRET:s,k" is invalid: '
        "env var name \"1PASS\" is not valid: use letters, digits, '-', '_' and '.', "
        "not starting with a digit or '..'. Expected one "
        "NAME=SECRET:<secret-name>,<secret-key> per line, "
        "for example DB_PASSWORD=SECRET:db-creds,password."
    )


def test_spaces_around_equals_named() -> None:
    assert denial("DB_USER = SECRET:db,user").message == (
        f'Pod "train": annotation {KEY} line 1 is invalid: env var name '
        "\"DB_USER \" ends with white space: remove the white space around '='. "
        "Expected one NAME=SECRET:<secret-name>,<secret-key> per line, for "
        "example DB_PASSWORD=SECRET:db-creds,password."
    )
    tab = denial("DB_USER=\tSECRET:db,user")
    assert "starts with white space before 'SECRET:': remove the white" in tab.message
    assert "DB_USER" not in tab.log_message


def test_spaces_and_bad_reference_named_together() -> None:
    message = denial("A =  SECRET:db-creds").message
    assert "ends with white space: remove the white space around '='" in message
    assert "and the reference is not valid because it has 0 commas" in message


@pytest.mark.parametrize("name", [".", "..", "..PASS"])
def test_env_name_kubernetes_reserves_for_paths_is_denied(name: str) -> None:
    # Kubernetes before 1.32 rejects an env var named "." or "..", or one
    # starting with "..", so the object could never be stored.
    assert f'env var name "{name}" is not valid' in denial(f"{name}=SECRET:s,k").message


def test_empty_env_name_is_denied() -> None:
    assert 'env var name "" is not valid' in denial("=SECRET:s,k").message


def test_literal_value_denied_unquoted() -> None:
    # A literal value in the annotation is most likely a credential, and
    # kube-apiserver keeps denial messages in its audit log and in events.
    assert denial("DB_PASSWORD=hunter2").message == (
        f'Pod "train": annotation {KEY} line 1 is invalid: the value of '
        "\"DB_PASSWORD\" does not start with 'SECRET:' (the value is not shown, as "
        "it may be a credential). Expected one "
        "NAME=SECRET:<secret-name>,<secret-key> per line, for example "
        "DB_PASSWORD=SECRET:db-creds,password."
    )


def test_line_without_equals_unquoted() -> None:
    message = denial("hunter2").message
    assert "hunter2" not in message
    assert "line 1 is invalid: it has no '='" in message


def test_bad_reference_is_denied() -> None:
    assert denial("A=SECRET:db-creds").message == (
        f'Pod "train": annotation {KEY} line 1 "A=SECRET:db-creds" is invalid: value '
        '"SECRET:db-creds" is not a secret reference because it has 0 commas, '
        "but needs exactly one between secret and key. Expected one "
        "NAME=SECRET:<secret-name>,<secret-key> per line, for example "
        "DB_PASSWORD=SECRET:db-creds,password."
    )


def test_value_split_on_first_equals() -> None:
    assert "the secret key may contain only" in denial("A=SECRET:s,k=v").message


def test_container_names() -> None:
    assert parse_container_names("main, sidecar,,") == ["main", "sidecar"]
    assert parse_container_names("") == []


def test_annotations_of_missing_or_null() -> None:
    assert annotations_of({}) == {}
    assert annotations_of({"metadata": None}) == {}
    assert annotations_of({"metadata": {"annotations": None}}) == {}
    assert annotations_of({"metadata": {"annotations": {"a": "b"}}}) == {"a": "b"}


@pytest.mark.parametrize(
    ("value", "disabled"),
    [
        ("false", True),
        ("False", True),
        (" false ", True),
        ("true", False),
        ("no", False),
    ],
)
def test_opt_out_annotation(value: str, disabled: bool) -> None:
    keys = AnnotationKeys.for_prefix()
    assert injection_disabled({keys.inject: value}, keys) is disabled


def test_no_opt_out_annotation() -> None:
    assert not injection_disabled({}, AnnotationKeys.for_prefix())
