"""Name checks that kube-apiserver runs on every write, with its own messages.

Each check returns a list of error texts (empty when valid) in the form the
apiserver puts after the field path, for example
`Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must ...`.
Patterns and wording follow k8s.io/apimachinery/pkg/util/validation and
k8s.io/kubernetes/pkg/apis/core/validation as of Kubernetes 1.30-1.33.
"""

from __future__ import annotations

import re

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = rf"{DNS1123_LABEL}(\.{DNS1123_LABEL})*"
DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE = rf"({QUALIFIED_NAME})?"
CONFIG_KEY = r"[-._a-zA-Z0-9]+"
_QUALIFIED_NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
    f"'123-abc', regex used for validation is '{QUALIFIED_NAME}')"
)
ENV_VAR_NAME = r"[-._a-zA-Z][-._a-zA-Z0-9]*"

# The relaxed env name rule (any printable ASCII but "=") is on by default
# from Kubernetes 1.32, when the RelaxedEnvironmentVariableValidation gate
# went to beta.
RELAXED_ENV_NAMES_FROM = (1, 32)


def _invalid(value: str, text: str) -> str:
    return f'Invalid value: "{value}": {text}'


def _too_long(value: str, limit: int) -> str:
    return _invalid(value, f"must be no more than {limit} characters")


def dns1123_subdomain(value: str) -> list[str]:
    return [_invalid(value, text) for text in subdomain_messages(value)]


def subdomain_messages(value: str) -> list[str]:
    """Check a DNS-1123 subdomain; return the bare messages of IsDNS1123Subdomain."""
    return _pattern_messages(
        value,
        253,
        DNS1123_SUBDOMAIN,
        "a lowercase RFC 1123 subdomain must consist of lower case "
        "alphanumeric characters, '-' or '.', and must start and end with "
        "an alphanumeric character (e.g. 'example.com', regex used for "
        f"validation is '{DNS1123_SUBDOMAIN}')",
    )


def dns1035_label_messages(value: str) -> list[str]:
    """Check a DNS-1035 label; return the bare messages of IsDNS1035Label."""
    return _pattern_messages(
        value,
        63,
        DNS1035_LABEL,
        "a DNS-1035 label must consist of lower case alphanumeric characters "
        "or '-', start with an alphabetic character, and end with an "
        "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used "
        f"for validation is '{DNS1035_LABEL}')",
    )


def qualified_name_messages(value: str) -> list[str]:
    """Check a label key or match condition name as IsQualifiedName does."""
    parts = value.split("/")
    if len(parts) > 2:
        return [
            f"a qualified name {_QUALIFIED_NAME_RULE} with an optional DNS "
            "subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    messages = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            messages.append("prefix part must be non-empty")
        else:
            messages += [f"prefix part {text}" for text in subdomain_messages(prefix)]
    if not name:
        messages.append("name part must be non-empty")
    elif len(name) > 63:
        messages.append("name part must be no more than 63 characters")
    if not re.fullmatch(QUALIFIED_NAME, name):
        messages.append(f"name part {_QUALIFIED_NAME_RULE}")
    return messages


def label_value_messages(value: str) -> list[str]:
    """Check a label value as IsValidLabelValue does; the empty string is valid."""
    return _pattern_messages(
        value,
        63,
        LABEL_VALUE,
        "a valid label must be an empty string or consist of alphanumeric "
        "characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
        f"'12345', regex used for validation is '{LABEL_VALUE}')",
    )


def _pattern_messages(value: str, limit: int, pattern: str, rule: str) -> list[str]:
    messages = []
    if len(value) > limit:
        messages.append(f"must be no more than {limit} characters")
    if not re.fullmatch(pattern, value):
        messages.append(rule)
    return messages


def dns1123_label(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append(_too_long(value, 63))
    if not re.fullmatch(DNS1123_LABEL, value):
        errors.append(
            _invalid(
                value,
                "a lowercase RFC 1123 label must consist of lower case "
                "alphanumeric characters or '-', and must start and end with an "
                "alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
                f"used for validation is '{DNS1123_LABEL}')",
            )
        )
    return errors


def config_key(value: str) -> list[str]:
    """Check a Secret or ConfigMap data key, as `secretKeyRef.key` is checked too."""
    errors = []
    if len(value) > 253:
        errors.append(_too_long(value, 253))
    if not re.fullmatch(CONFIG_KEY, value):
        errors.append(
            _invalid(
                value,
                "a valid config key must consist of alphanumeric characters, "
                "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                f"'key-name', regex used for validation is '{CONFIG_KEY}')",
            )
        )
    return errors + _chdir_prefix(value)


def _chdir_prefix(value: str) -> list[str]:
    """Check what hasChDirPrefix rejects: ".", ".." and a leading ".."."""
    if value == ".":
        return [_invalid(value, "must not be '.'")]
    if value == "..":
        return [_invalid(value, "must not be '..'")]
    if value.startswith(".."):
        return [_invalid(value, "must not start with '..'")]
    return []


def env_var_name(value: str, version: tuple[int, int] = (1, 30)) -> list[str]:
    """Check an env var name with the rule of the given Kubernetes minor version."""
    if not value:
        return ["Required value"]
    if version >= RELAXED_ENV_NAMES_FROM:
        if all(32 <= ord(char) <= 126 and char != "=" for char in value):
            return []
        return [
            _invalid(
                value,
                "a valid environment variable name must consist only of "
                "printable ASCII characters other than '='",
            )
        ]
    errors = []
    if not re.fullmatch(ENV_VAR_NAME, value):
        errors.append(
            _invalid(
                value,
                "a valid environment variable name must consist of alphabetic "
                "characters, digits, '_', '-', or '.', and must not start with a "
                "digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', "
                f"regex used for validation is '{ENV_VAR_NAME}')",
            )
        )
    # IsEnvVarName adds hasChDirPrefix; the relaxed rule above does not.
    return errors + _chdir_prefix(value)
