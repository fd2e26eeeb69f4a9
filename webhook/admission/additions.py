"""Env vars added to containers from outside the object's own env."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EnvAddition:
    """One env var to add to app containers.

    `value` is either a `SECRET:<secret>,<key>` reference, which is checked
    and added as a secretKeyRef, or a literal value added as is. `origin`
    names where the var came from for messages, for example
    `annotation runai-secrets-webhook/env line 2` or `template gpu-defaults`.
    """

    name: str
    value: str
    origin: str
