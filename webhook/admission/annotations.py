"""The annotations the webhook reads and writes, all under one prefix."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.admission.additions import EnvAddition
from webhook.admission.decisions import quote
from webhook.admission.errors import Denied
from webhook.admission.references import (
    ENV_NAME_RULE,
    EXPECTED_FORM,
    PREFIX,
    InvalidReference,
    is_dns_subdomain,
    is_env_name,
    is_placeholder,
    parse_reference,
)

DEFAULT_PREFIX = "runai-secrets-webhook"

# kube-apiserver rejects an object whose annotations, keys and values
# together, pass 256 KiB. It checks this after the mutating webhooks, so a
# larger env annotation can never be admitted; it is denied before parsing.
MAX_ANNOTATIONS_BYTES = 256 * 1024


def check_prefix(prefix: str) -> None:
    """Raise `ValueError` unless `prefix` is a valid annotation key prefix.

    Kubernetes requires the prefix of an annotation or label key to be a
    DNS-1123 subdomain of at most 253 characters.
    """
    if not is_dns_subdomain(prefix):
        raise ValueError(
            f"annotation prefix {prefix!r} is not valid: use a DNS-1123 subdomain "
            "of at most 253 characters, such as runai-secrets-webhook or "
            "secrets.example.com"
        )


@dataclass(frozen=True, slots=True)
class AnnotationKeys:
    """The full annotation keys for one prefix."""

    env: str
    containers: str
    inject: str
    injected: str
    templates: str

    @classmethod
    def for_prefix(cls, prefix: str = DEFAULT_PREFIX) -> "AnnotationKeys":
        """Build the keys `<prefix>/env`, `<prefix>/containers` and so on."""
        return cls(
            env=f"{prefix}/env",
            containers=f"{prefix}/containers",
            inject=f"{prefix}/inject",
            injected=f"{prefix}/injected",
            templates=f"{prefix}/templates",
        )


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the object's annotations, or an empty map when it has none."""
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def injection_disabled(annotations: Mapping[str, Any], keys: AnnotationKeys) -> bool:
    """Tell whether the object opts out of converting its literal env values."""
    value = annotations.get(keys.inject)
    return isinstance(value, str) and value.strip().lower() == "false"


def parse_env_annotation(text: str, key: str, subject: str) -> list[EnvAddition]:
    """Parse the env annotation: one `NAME=SECRET:<secret>,<key>` per line.

    Blank lines are skipped. Raises `Denied` (400) naming the first bad line
    of `subject` (the object, for example `Pod "web"`) and the expected form,
    or naming the annotation's size when it is over the Kubernetes limit.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_ANNOTATIONS_BYTES:
        raise Denied(
            400,
            f"{subject}: annotation {key} has {size} bytes, over the Kubernetes "
            f"limit of {MAX_ANNOTATIONS_BYTES} bytes for all annotations of an "
            "object together, so the object could not be stored. Move env vars "
            "into fewer lines or into the containers' env.",
        )
    additions = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        name, equals, value = line.partition("=")
        problem, logged_problem = _line_problem(name, equals, value)
        if problem:
            # Only a line with a reference is quoted: other text after "=",
            # or a line without "=", may be a credential, and kube-apiserver
            # keeps a denial's message in its audit log and in events.
            quoted_line = f" {quote(line)}" if is_placeholder(value or line) else ""
            raise Denied(
                400,
                f"{subject}: annotation {key} line {number}{quoted_line} is invalid: "
                f"{problem}. Expected one NAME={EXPECTED_FORM} per line, for example "
                "DB_PASSWORD=SECRET:db-creds,password.",
                log_message=f"{subject}: annotation {key} line {number} (not "
                f"logged) is invalid: {logged_problem}",
            )
        additions.append(EnvAddition(name, value, f"annotation {key} line {number}"))
    return additions


def _line_problem(name: str, equals: str, value: str) -> tuple[str, str]:
    """Return what is wrong with a line, for the author and for the log.

    The log's version leaves out the line's text, which may contain a
    credential written by mistake. Both are empty for a valid line.
    """
    if not equals:
        if is_placeholder(name):
            return "it has no '='", "it has no '='"
        problem = "it has no '=' (the line is not shown, as it may be a credential)"
        return problem, "it has no '='"
    stripped = value.lstrip()
    if not is_env_name(name):
        if name != name.rstrip() and is_env_name(name.rstrip()):
            fix = f": remove the white space around '='{_also_invalid(stripped)}"
            return (
                f"env var name {quote(name)} ends with white space{fix}",
                f"the env var name ends with white space{fix}",
            )
        return (
            f"env var name {quote(name)} is not valid: {ENV_NAME_RULE}",
            f"the env var name is not valid: {ENV_NAME_RULE}",
        )
    if value != stripped and is_placeholder(stripped):
        problem = f"starts with white space before {PREFIX!r}"
        fix = f": remove the white space around '='{_also_invalid(stripped)}"
        return (
            f"the value of {quote(name)} {problem}{fix}",
            f"the value {problem}{fix}",
        )
    if not is_placeholder(value):
        problem = (
            f"the value of {quote(name)} does not start with {PREFIX!r} "
            "(the value is not shown, as it may be a credential)"
        )
        return problem, f"the value does not start with {PREFIX!r}"
    try:
        parse_reference(value)
    except InvalidReference as error:
        reason = f"is not a secret reference because {error.reason}"
        return f"value {quote(value)} {reason}", f"the value {reason}"
    return "", ""


def _also_invalid(value: str) -> str:
    """Return why `value` is still not a valid reference, or "" if it is one.

    The value itself is not quoted: the caller's message may be logged.
    """
    if not is_placeholder(value):
        return ""
    try:
        parse_reference(value)
    except InvalidReference as error:
        return f", and the reference is not valid because {error.reason}"
    return ""


def parse_container_names(text: str) -> list[str]:
    """Parse the comma-separated container names annotation, dropping blanks."""
    return [name.strip() for name in text.split(",") if name.strip()]
