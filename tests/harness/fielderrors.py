"""Field errors worded as k8s.io/apimachinery/pkg/util/validation/field prints them.

Each function returns one error, `<path>: <type>[: <detail>]`, the text that
kube-apiserver lists after `... is invalid: ` in a 422 Invalid response.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def go_value(value: Any, slice_type: str = "[]string") -> str:
    """Format a value as field.Error does: strings quoted, slices as Go's %#v."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        items = ", ".join(f'"{item}"' for item in value)
        return f"{slice_type}{{{items}}}"
    return str(value)


def required(path: str, detail: str = "") -> str:
    return f"{path}: Required value: {detail}" if detail else f"{path}: Required value"


def invalid(path: str, value: Any, detail: str, slice_type: str = "[]string") -> str:
    return f"{path}: Invalid value: {go_value(value, slice_type)}: {detail}"


def unsupported(path: str, value: Any, supported: Iterable[str]) -> str:
    # sets.String.List() sorts the supported values.
    listed = ", ".join(f'"{item}"' for item in sorted(supported))
    return f"{path}: Unsupported value: {go_value(value)}: supported values: {listed}"


def forbidden(path: str, detail: str) -> str:
    return f"{path}: Forbidden: {detail}"


def duplicate(path: str, value: Any) -> str:
    return f"{path}: Duplicate value: {go_value(value)}"


def too_many(path: str, count: int, limit: int) -> str:
    return f"{path}: Too many: {count}: must have at most {limit} items"


def aggregate(errors: list[str]) -> str:
    """Join errors as utilerrors.Aggregate does: once each, bracketed when several."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"
