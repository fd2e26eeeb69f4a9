import pytest

from webhook.admission.references import (
    InvalidReference,
    SecretRef,
    is_placeholder,
    parse_reference,
    secret_key_ref_entry,
)


@pytest.mark.parametrize(
    ("value", "secret", "key"),
    [
        ("SECRET:my-secret,username", "my-secret", "username"),
        ("SECRET:db-creds,password", "db-creds", "password"),
        ("SECRET:a.b-c.d,.dockerconfigjson", "a.b-c.d", ".dockerconfigjson"),
        ("SECRET:x,tls.crt", "x", "tls.crt"),
        ("SECRET:0,Key_1-2", "0", "Key_1-2"),
        ("SECRET:" + "a" * 253 + "," + "k" * 253, "a" * 253, "k" * 253),
    ],
)
def test_parse_valid_reference(value: str, secret: str, key: str) -> None:
    assert parse_reference(value) == SecretRef(secret, key)


def reason(value: str) -> str:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(value)
    return caught.value.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("secret:a,b", "it does not start with 'SECRET:'"),
        (
            "SECRET:db-creds",
            "it has 0 commas, but needs exactly one between secret and key",
        ),
        (
            "SECRET:a,b,c",
            "it has 2 commas, but needs exactly one between secret and key",
        ),
        ("SECRET:,password", "the secret name is empty"),
        ("SECRET:db-creds,", "the secret key is empty"),
        (
            "SECRET:" + "a" * 254 + ",k",
            "the secret name has 254 characters, over the limit of 253",
        ),
        (
            "SECRET:a," + "k" * 254,
            "the secret key has 254 characters, over the limit of 253",
        ),
        ("SECRET:a,.", "the secret key may not be '.'"),
        ("SECRET:a,..", "the secret key may not be '..'"),
        ("SECRET:a,..data", "the secret key may not start with '..'"),
        (
            "SECRET: db-creds,password",
            "the secret name starts or ends with white space, "
            "which a secret name cannot contain",
        ),
        (
            "SECRET:db-creds ,password",
            "the secret name starts or ends with white space, "
            "which a secret name cannot contain",
        ),
        (
            "SECRET:db-creds, password",
            "the secret key starts or ends with white space, "
            "which a secret key cannot contain",
        ),
        (
            "SECRET:db-creds,password\n",
            "the secret key starts or ends with white space, "
            "which a secret key cannot contain",
        ),
        (
            "SECRET:a,user name",
            "the secret key may contain only letters, digits, '-', '_' and '.'",
        ),
        (
            "SECRET:a,key/x",
            "the secret key may contain only letters, digits, '-', '_' and '.'",
        ),
    ],
)
def test_parse_invalid_reference(value: str, expected: str) -> None:
    assert reason(value) == expected


@pytest.mark.parametrize(
    "secret",
    [
        "DB-creds",
        "-db",
        "db-",
        "db_creds",
        "db..creds",
        ".db",
        "db.",
        "db creds",
    ],
)
def test_secret_name_must_be_dns_subdomain(secret: str) -> None:
    assert reason(f"SECRET:{secret},key") == (
        "the secret name is not a DNS-1123 subdomain (lower case letters, digits, "
        "'-' and '.', starting and ending with a letter or digit)"
    )


def test_placeholder_detection() -> None:
    assert is_placeholder("SECRET:a,b")
    assert is_placeholder("SECRET:")
    assert not is_placeholder("secret:a,b")
    assert not is_placeholder(" SECRET:a,b")
    assert not is_placeholder(None)
    assert not is_placeholder(7)


def test_secret_key_ref_entry_shape() -> None:
    entry = secret_key_ref_entry("DB_USER", SecretRef("db-creds", "username"))
    assert entry == {
        "name": "DB_USER",
        "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "username"}},
    }


def test_placeholder_round_trip() -> None:
    ref = SecretRef("db-creds", "password")
    assert parse_reference(ref.placeholder()) == ref
