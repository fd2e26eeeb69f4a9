"""The `SECRET:<secret>,<key>` env value syntax that Run:AI documents.

`runai submit -e MYUSERNAME=SECRET:my-secret,username` sets the env var value
to the literal text `SECRET:my-secret,username`; the webhook replaces it with
`valueFrom.secretKeyRef: {name: my-secret, key: username}`.
"""

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeGuard

PREFIX = "SECRET:"
EXPECTED_FORM = "SECRET:<secret-name>,<secret-key>"

# Kubernetes validation of secretKeyRef (k8s.io/apimachinery validation):
# the name is a DNS-1123 subdomain of at most 253 characters, and the key
# matches [-._a-zA-Z0-9]+, is at most 253 characters, is not "." and does not
# start with "..".
MAX_NAME_CHARS = 253
MAX_KEY_CHARS = 253
_DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
# Env var names that every Kubernetes version accepts. From 1.32 any printable
# ASCII but '=' is allowed. Older API servers reject other characters, and
# also ".", ".." and names that start with "..".
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
ENV_NAME_RULE = (
    "use letters, digits, '-', '_' and '.', not starting with a digit or '..'"
)
# A namespace name is a DNS-1123 label: at most 63 characters.
MAX_LABEL_CHARS = 63
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True, slots=True, order=True)
class SecretRef:
    """A secret name and one key in it."""

    secret: str
    key: str

    def placeholder(self) -> str:
        """Return the `SECRET:<secret>,<key>` text for this reference."""
        return f"{PREFIX}{self.secret},{self.key}"


class InvalidReference(ValueError):
    """A `SECRET:` value that does not follow the documented form."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_placeholder(value: object) -> TypeGuard[str]:
    """Tell whether an env value is meant as a secret reference."""
    return isinstance(value, str) and value.startswith(PREFIX)


# Distinct placeholders whose parse is kept. The pods of a job repeat the
# same placeholders, and a placeholder names a secret and a key, never a
# value, so the cache contains nothing secret.
PARSED_CACHE_SIZE = 4096


@lru_cache(maxsize=PARSED_CACHE_SIZE)
def parse_reference(value: str) -> SecretRef:
    """Parse `SECRET:<secret>,<key>`, raising `InvalidReference` with the reason.

    Valid results are cached, since every pod of a job repeats the same
    placeholders; an invalid value is checked again each time.
    """
    if not value.startswith(PREFIX):
        raise InvalidReference(f"it does not start with {PREFIX!r}")
    body = value[len(PREFIX) :]
    if body.count(",") != 1:
        raise InvalidReference(
            f"it has {body.count(',')} commas, "
            "but needs exactly one between secret and key"
        )
    secret, key = body.split(",")
    check_secret_name(secret)
    check_secret_key(key)
    return SecretRef(secret, key)


def is_env_name(text: str) -> bool:
    """Tell whether `text` is an env var name every Kubernetes version accepts."""
    return (
        _ENV_NAME.fullmatch(text) is not None
        and text != "."
        and not text.startswith("..")
    )


def is_dns_label(text: str) -> bool:
    """Tell whether `text` is a DNS-1123 label, such as a namespace name."""
    return len(text) <= MAX_LABEL_CHARS and _DNS1123_LABEL.fullmatch(text) is not None


def is_dns_subdomain(text: str) -> bool:
    """Tell whether `text` is a DNS-1123 subdomain of at most 253 characters."""
    return (
        len(text) <= MAX_NAME_CHARS and _DNS1123_SUBDOMAIN.fullmatch(text) is not None
    )


def check_secret_name(secret: str) -> None:
    """Raise `InvalidReference` unless `secret` is a valid Secret name."""
    if not secret:
        raise InvalidReference("the secret name is empty")
    if len(secret) > MAX_NAME_CHARS:
        raise InvalidReference(
            f"the secret name has {len(secret)} characters, "
            f"over the limit of {MAX_NAME_CHARS}"
        )
    if not _DNS1123_SUBDOMAIN.fullmatch(secret):
        if secret != secret.strip():
            raise InvalidReference(
                "the secret name starts or ends with white space, "
                "which a secret name cannot contain"
            )
        raise InvalidReference(
            "the secret name is not a DNS-1123 subdomain (lower case letters, digits, "
            "'-' and '.', starting and ending with a letter or digit)"
        )


def check_secret_key(key: str) -> None:
    """Raise `InvalidReference` unless `key` is a valid Secret data key."""
    if not key:
        raise InvalidReference("the secret key is empty")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidReference(
            f"the secret key has {len(key)} characters, "
            f"over the limit of {MAX_KEY_CHARS}"
        )
    if key in (".", ".."):
        raise InvalidReference(f"the secret key may not be {key!r}")
    if key.startswith(".."):
        raise InvalidReference("the secret key may not start with '..'")
    if not _SECRET_KEY.fullmatch(key):
        if key != key.strip():
            raise InvalidReference(
                "the secret key starts or ends with white space, "
                "which a secret key cannot contain"
            )
        raise InvalidReference(
            "the secret key may contain only letters, digits, '-', '_' and '.'"
        )


def secret_key_ref_entry(name: str, ref: SecretRef) -> dict[str, Any]:
    """Build the env entry that reads `ref` through `valueFrom.secretKeyRef`."""
    return {
        "name": name,
        "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}},
    }
