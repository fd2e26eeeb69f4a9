"""Fuzz targets for the placeholder parser and the patch builder.

Each target takes raw bytes and raises only when it finds a bug: an
exception other than the documented rejection, or a result that breaks an
invariant. `fuzz/run.py` runs them under atheris (coverage-guided); the
tests replay the seed corpus through them.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from typing import Any

import jsonpatch

from webhook.admission import (
    Decision,
    Denied,
    InjectionOptions,
    InvalidReference,
    SecretLookup,
    decide,
    parse_reference,
    plan_review,
)
from webhook.admission.annotations import parse_env_annotation
from webhook.admission.patches import escape_token, unescape_token
from webhook.admission.references import is_dns_subdomain

OPTIONS = InjectionOptions()
SECRET_KEY_CHARACTERS = frozenset(
    "-._abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)


def text_of(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def check_reference(data: bytes) -> None:
    """Parse one env value; a result must be a valid secret name and key."""
    value = text_of(data)
    try:
        reference = parse_reference(value)
    except InvalidReference as error:
        assert str(error), "a rejection must give a reason"
        return

    # The name may not reach outside the namespace: no '/', '%', unicode.
    assert is_dns_subdomain(reference.secret), reference
    assert set(reference.key) <= SECRET_KEY_CHARACTERS, reference
    assert reference.key != ".", reference
    assert not reference.key.startswith(".."), reference
    assert parse_reference(reference.placeholder()) == reference
    assert value == reference.placeholder(), "parsing must not normalise the value"


def check_annotation(data: bytes) -> None:
    """Parse an env annotation; each line must keep its name and value as given."""
    text = text_of(data)
    try:
        additions = parse_env_annotation(text, "runai-secrets-webhook/env", "Pod")
    except Denied as error:
        assert error.code == 400
        assert error.message
        return
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert len(additions) == len(lines)
    for addition, line in zip(additions, lines, strict=True):
        assert f"{addition.name}={addition.value}" == line


def check_pointer(data: bytes) -> None:
    token = text_of(data)
    assert unescape_token(escape_token(token)) == token
    assert "/" not in escape_token(token)


def as_object(data: bytes) -> Any:
    """Read the input as a JSON object, or else as the value of one env var."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        return obj
    env = [{"name": "FUZZ", "value": text_of(data)}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fuzz"},
        "spec": {"containers": [{"name": "main", "image": "x", "env": env}]},
    }


def review_of(obj: Any) -> Any:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "team-a",
            "operation": "CREATE",
            "object": obj,
            "oldObject": None,
        },
    }


def decide_all_found(obj: Any) -> Decision:
    """Plan a Pod review and decide it as if every referenced key existed."""
    planned = plan_review(review_of(obj), OPTIONS)
    if isinstance(planned, Decision):
        return planned
    keys: dict[str, set[str]] = {}
    for reference in planned.references:
        keys.setdefault(reference.secret, set()).add(reference.key)
    lookups = {
        name: SecretLookup.found(frozenset(found)) for name, found in keys.items()
    }
    return decide(planned, lookups)


def check_patch(data: bytes) -> None:
    """Patch a Pod; the patch must apply, and a second review must add nothing."""
    obj = as_object(data)
    first = decide_all_found(copy.deepcopy(obj))
    if not first.patch:
        return
    assert first.allowed
    patched = jsonpatch.apply_patch(copy.deepcopy(obj), list(first.patch))

    second = decide_all_found(patched)
    assert second.allowed, second.message
    assert not second.patch, "a reinvoked review must not patch again"


TARGETS: dict[str, Callable[[bytes], None]] = {
    "reference": check_reference,
    "annotation": check_annotation,
    "pointer": check_pointer,
    "patch": check_patch,
}
