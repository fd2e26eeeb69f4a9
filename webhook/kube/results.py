"""The result of looking up a secret's key names."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """How a secret lookup ended."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    ERROR = "error"


@dataclass(frozen=True)
class SecretKeys:
    """Key names of one secret, or why they could not be read.

    Only key names are ever stored here, never values. `detail` is a short
    reason for FORBIDDEN and ERROR, safe to log and to show to the author.
    """

    namespace: str
    name: str
    outcome: Outcome
    keys: frozenset[str] = field(default_factory=frozenset)
    detail: str = ""

    def has_key(self, key: str) -> bool:
        return self.outcome is Outcome.FOUND and key in self.keys


def found(namespace: str, name: str, keys: frozenset[str]) -> SecretKeys:
    return SecretKeys(namespace, name, Outcome.FOUND, keys)


def not_found(namespace: str, name: str) -> SecretKeys:
    return SecretKeys(namespace, name, Outcome.NOT_FOUND)


def forbidden(namespace: str, name: str, detail: str) -> SecretKeys:
    return SecretKeys(namespace, name, Outcome.FORBIDDEN, detail=detail)


def failed(namespace: str, name: str, detail: str) -> SecretKeys:
    return SecretKeys(namespace, name, Outcome.ERROR, detail=detail)
